"""NVRTC compile, disk cache and launch of the cuda_alternating kernels
(csrc/alternating.cu), and the list of every instantiation a call can select.

The cache, headers, options and launch plumbing are compile.py's and
launch.py's; only the translation unit differs (kernels.cu holds the
persistent skeletons, which these small kernels do not need: a compile here
takes ~0.1 s instead of ~1 s).
"""
from __future__ import annotations

import functools
import hashlib
import io

import numpy as np
import torch

from . import compile as nvrtc
from .launch import _cuda_device, _stream, device_arch, pointer

SOURCE = "alternating.cu"
CELL_TYPES = {
    "lstm": "fusedrnn::Lstm", "gru": "fusedrnn::Gru", "elman": "fusedrnn::ElmanTanh",
    "elman_relu": "fusedrnn::ElmanRelu", "slstm": "fusedrnn::Slstm",
}
STORAGE_TYPES = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}
THREADS = 256  # ALTERNATING_THREADS in csrc/alternating_steps.cuh
SET_CALL = "fusedrnn::alternating_set_call"


def step_kernel(cell: str, dtype: torch.dtype, product_dtype: torch.dtype, backward: bool) -> str:
    """The pointwise step of `cell` in storage `dtype`, reading GEMM results of `product_dtype`.
    Fast MUFU tanh in bfloat16 only, as cuda_fused (its error is under bf16's rounding)."""
    fast = str(dtype == torch.bfloat16).lower()
    kind = "backward" if backward else "forward"
    return (f"fusedrnn::alternating_{kind}_step<{CELL_TYPES[cell]}, {STORAGE_TYPES[dtype]}, "
            f"{STORAGE_TYPES[product_dtype]}, {fast}>")


def stage_kernel(dtype: torch.dtype, backward: bool) -> str:
    return f"fusedrnn::alternating_stage_{'backward' if backward else 'forward'}<{STORAGE_TYPES[dtype]}>"


def product_dtypes(dtype: torch.dtype) -> tuple[torch.dtype, ...]:
    """GEMM result types a call may use: fp32, or the storage type where torch cannot give fp32."""
    return (torch.float32,) if dtype == torch.float32 else (torch.float32, dtype)


def shipped_alternating_kernels() -> list[str]:
    """Every instantiation a call can select (CI compiles them all, tests/test_cuda_alternating_compile.py)."""
    names = {SET_CALL}
    for dtype in STORAGE_TYPES:
        for backward in (False, True):
            names.add(stage_kernel(dtype, backward))
            for cell in CELL_TYPES:
                for product in product_dtypes(dtype):
                    names.add(step_kernel(cell, dtype, product, backward))
    return sorted(names)


def cache_key(name_expression: str, arch: str) -> str:
    return hashlib.sha256(f"{SOURCE}\0{nvrtc.cache_key(name_expression, arch)}".encode()).hexdigest()


def compile_kernel(name_expression: str, arch: str) -> nvrtc.Compiled:
    """The cubin of one instantiation, from compile.py's disk cache or compiled into it."""
    path = nvrtc.cache_dir() / f"{cache_key(name_expression, arch)}.entry"
    entry = nvrtc.read_entry(path)
    if entry is not None:
        return entry
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        entry = nvrtc.read_entry(path)  # another process may have built it while we waited
        if entry is None:
            entry = _nvrtc(name_expression, arch)
            nvrtc.write_entry(path, entry)
    return entry


def _nvrtc(name_expression: str, arch: str) -> nvrtc.Compiled:
    from cuda.core import Program, ProgramOptions

    options = ProgramOptions(name=SOURCE, arch=arch, include_path=[str(nvrtc.CSRC), *nvrtc.include_dirs()],
                             define_macro=[("FUSEDRNN_NVRTC", "1")], **nvrtc.OPTIONS)
    log = io.StringIO()
    try:
        code = Program((nvrtc.CSRC / SOURCE).read_text(), "c++", options).compile(
            "cubin", name_expressions=[name_expression], logs=log)
    except Exception as error:
        raise RuntimeError(f"NVRTC failed to compile {name_expression} for {arch}:\n{log.getvalue()}\n"
                           f"{error}") from error
    mangled = code.symbol_mapping[name_expression]
    mangled = mangled.decode() if isinstance(mangled, bytes) else mangled
    return nvrtc.Compiled(cubin=bytes(code.code), mangled_name=mangled, log=log.getvalue())


@functools.lru_cache(maxsize=None)
def load_kernel(name_expression: str, device_index: int):
    from cuda.core import ObjectCode

    _cuda_device(device_index)  # makes torch's primary context current for cuda.core
    compiled = compile_kernel(name_expression, device_arch(torch.device("cuda", device_index)))
    code = ObjectCode.from_cubin(compiled.cubin, symbol_mapping={name_expression: compiled.mangled_name.encode()})
    return code.get_kernel(name_expression)


def launch(name_expression: str, elements: int, device: torch.device, *args, block: int = THREADS,
           max_blocks: int | None = None):
    """Run the kernel on torch's current stream (a capturing stream included) over
    `elements` threads' worth of blocks. Tensors go as pointers (None as null),
    Python ints as 32-bit ints: the kernels' signatures take exactly that."""
    from cuda.core import LaunchConfig
    from cuda.core import launch as cuda_launch

    index = device.index if device.index is not None else torch.cuda.current_device()
    kernel = load_kernel(name_expression, index)
    stream = _stream(torch.cuda.current_stream(index).cuda_stream, index)
    blocks = max(1, -(-elements // block))
    if max_blocks is not None:
        blocks = min(blocks, max_blocks)
    converted = [pointer(a) if a is None or isinstance(a, torch.Tensor) else np.int32(a) for a in args]
    cuda_launch(stream, LaunchConfig(grid=(blocks, 1, 1), block=block, shmem_size=0), kernel, *converted)
