"""The cuda_alternating kernels on a machine with no GPU: NVRTC compiles every
shipped instantiation for the H100 (sm_90) and the oldest supported GPU (sm_80)
without register spills, and every launch the host makes passes exactly the
kernel's parameters (pointers as 64-bit, ints as 32-bit, in order), read from
the PTX signature NVRTC emits."""
import os
import re
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

pytest.importorskip("cuda.core")

import fusedrnn  # noqa: E402
from fusedrnn.backends.cuda import alternating_compile, alternating_pointwise  # noqa: E402
from fusedrnn.backends.cuda import compile as nvrtc_compile  # noqa: E402
from fusedrnn.backends.cuda.alternating_pointwise import Call, NvrtcPointwise  # noqa: E402
from fusedrnn.backends.cuda.alternating_workspace import Shape, make_workspace  # noqa: E402

SHIPPED = alternating_compile.shipped_alternating_kernels()


def _build(job):
    name, arch = job
    compiled = nvrtc_compile.compile_kernel(name, arch, alternating_compile.SOURCE)
    return name, arch, compiled.registers, compiled.spill_bytes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    os.environ.setdefault("FUSEDRNN_CACHE_DIR", str(tmp_path_factory.mktemp("cubin-cache")))
    jobs = [(name, "sm_90") for name in SHIPPED] + [(name, "sm_80") for name in SHIPPED if "step<" in name][:10]
    with ProcessPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(_build, jobs))


def test_every_shipped_kernel_compiles_without_spills(built):
    # 5 cells x (fp32: 1 product type, fp16/bf16: 2) x 2 directions, 6 staging kernels, the call kernel
    assert len(SHIPPED) == 5 * 5 * 2 + 6 + 1
    spilled = [(name, arch, spill) for name, arch, _, spill in built if spill]
    assert not spilled, spilled
    assert all(0 < registers <= 128 for _, _, registers, _ in built), max(r for _, _, r, _ in built)


def test_cache_key_is_not_kernels_cu_one():
    name = SHIPPED[0]
    key = nvrtc_compile.cache_key(name, "sm_90", alternating_compile.SOURCE)
    assert key != nvrtc_compile.cache_key(name, "sm_90")
    assert key != nvrtc_compile.cache_key(name, "sm_80", alternating_compile.SOURCE)


def _ptx_parameters(name_expression):
    """The kinds ('u64', 'u32', ...) of the kernel's parameters, in order."""
    from cuda.bindings import nvrtc

    source = (nvrtc_compile.CSRC / alternating_compile.SOURCE).read_bytes()
    _, program = nvrtc.nvrtcCreateProgram(source, alternating_compile.SOURCE.encode(), 0, [], [])
    nvrtc.nvrtcAddNameExpression(program, name_expression.encode())
    options = [b"--std=c++17", b"--gpu-architecture=compute_90", f"-I{nvrtc_compile.CSRC}".encode(),
               *(f"-I{d}".encode() for d in nvrtc_compile.include_dirs())]
    (error,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
    assert error == nvrtc.nvrtcResult.NVRTC_SUCCESS, name_expression
    _, lowered = nvrtc.nvrtcGetLoweredName(program, name_expression.encode())
    _, size = nvrtc.nvrtcGetPTXSize(program)
    ptx = b" " * size
    nvrtc.nvrtcGetPTX(program, ptx)
    ptx = ptx.decode()
    start = ptx.index(".entry " + lowered.decode())
    return re.findall(r"\.param \.(\w+)", ptx[start:ptx.index(")", start)])


def _recorded_launches(monkeypatch, cell, dtype, product_dtype, backward):
    launches = []
    monkeypatch.setattr(alternating_pointwise, "launch", lambda name, elements, device, *args, **kw:
                        launches.append((name, args)))
    ws = make_workspace(Shape(torch.device("cpu"), 0, backward, cell, dtype, product_dtype, 3, 2, 8))
    some = torch.empty(1)
    pointwise = NvrtcPointwise()
    pointwise.set_call(ws, Call(steps=5, x=some, y=some, saved=None, h0=some, y_in=some, dy=some, saved_in=some,
                                dx=some, drec=some))
    pointwise.stage(ws, 4)
    pointwise.step(ws, 3, 4)
    return launches


@pytest.mark.parametrize("cell", list(fusedrnn.CELLS))
@pytest.mark.parametrize("backward", [False, True])
def test_launch_arguments_match_kernel_signatures(monkeypatch, cell, backward):
    for dtype, product in ((torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                          (torch.float16, torch.float16)):
        launches = _recorded_launches(monkeypatch, cell, dtype, product, backward)
        assert [name.split("<")[0] for name, _ in launches] == [
            alternating_compile.SET_CALL, alternating_compile.stage_kernel(dtype, backward).split("<")[0],
            alternating_compile.step_kernel(cell, dtype, product, backward).split("<")[0]]
        for name, args in launches:
            assert name in SHIPPED, name
            if dtype != torch.float32:
                continue  # the parameter kinds do not depend on the types
            passed = ["u64" if a is None or isinstance(a, torch.Tensor) else "u32" for a in args]
            assert all(isinstance(a, (torch.Tensor, int)) or a is None for a in args), (name, args)
            assert passed == _ptx_parameters(name), name
