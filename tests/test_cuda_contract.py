"""The contract between the host and the CUDA kernels, on a machine with no GPU.

Each kernel template's parameters are described once on the host (cxx.Kernel:
template fields of the config, then device pointers and 32-bit ints). Here:
- the PTX NVRTC emits for one shipped instantiation of every Kernel has exactly
  the parameter kinds the Kernel declares (.u64 pointers, then .u32 ints), and
  the launchers, run on meta tensors with the launch recorded, pass exactly
  those (every argument named, none left over, in the kernel's order);
- the template fields and the runtime parameters carry the names, kinds and
  order of the C++ declaration (a swap of two ints or two pointers compiles,
  but computes garbage), and every shipped name expression spells its fields;
- every launch the cuda_alternating loop makes passes exactly its kernel's
  PTX parameters (recorded from the pointwise launcher on CPU tensors);
- Kernel.arguments refuses a missing or an unknown argument.
"""
import dataclasses
import functools
import re

import pytest
import torch

pytest.importorskip("cuda.bindings")

import fusedrnn  # noqa: E402
from fusedrnn.backends.cuda import cxx  # noqa: E402
from fusedrnn.backends.cuda.alternating import kernels as alternating_kernels  # noqa: E402
from fusedrnn.backends.cuda.alternating import pointwise as alternating_pointwise  # noqa: E402
from fusedrnn.backends.cuda.alternating.pointwise import Call, NvrtcPointwise  # noqa: E402
from fusedrnn.backends.cuda.alternating.workspace import Shape, make_workspace  # noqa: E402
from fusedrnn.backends.cuda.fused import launchers, shipped  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster import ClusterConfig  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster_backward import ClusterBackwardConfig  # noqa: E402
from fusedrnn.backends.cuda.fused.grid import SplitConfig  # noqa: E402
from fusedrnn.backends.cuda.fused.plan import Plan  # noqa: E402
from fusedrnn.backends.cuda.runtime import compile as nvrtc_compile  # noqa: E402
from fusedrnn.backends.cuda.runtime.unit import as_unit  # noqa: E402
from fusedrnn.cells import get_cell  # noqa: E402

SHIPPED = shipped.shipped_configs()
ALTERNATING = dict(alternating_kernels.shipped_alternating_kernels())  # name expression: translation unit


def _one_per_kernel(configs):
    """One instantiation of every kernel template (the parameter kinds do not depend on
    the template arguments): its smallest head, which compiles fastest."""
    chosen = {}
    for config in configs:
        key = (config.kernel.name, len(config.kernel.template))
        if key not in chosen or (config.DHP, config.name_expression) < (chosen[key].DHP, chosen[key].name_expression):
            chosen[key] = config
    return list(chosen.values())


KERNELS = _one_per_kernel(SHIPPED)
CASES = ([pytest.param(("fused", config), id=config.kernel.name) for config in KERNELS]
         + [pytest.param(("alternating", cell, backward), id=f"alternating-{cell}-{'backward' if backward else 'forward'}")
            for cell in fusedrnn.CELLS for backward in (False, True)])
# Python names for what the C++ spells otherwise (template parameters, then runtime parameters);
# every other field is the C++ name in upper case, every other argument the C++ name itself
TEMPLATE_NAMES = {"cell": "Cell", "dtype": "T", "fast_math": "FAST", "elements": "SPREAD_ELEMENTS",
                  "reg_blocks": "REG_MT", "probe_type": "Probe"}
ARGUMENT_NAMES = {"b": "bias", "T": "steps", "final": "final_states"}


def _kind(value) -> str:
    """The PTX kind the runtime passes a launch argument as (runtime/launch.py: tensors and
    None as 64-bit pointers, Python ints as 32-bit ints)."""
    if value is None or isinstance(value, torch.Tensor):
        return "u64"
    assert isinstance(value, int) and not isinstance(value, bool), f"a launch argument of type {type(value)}"
    return "u32"


@functools.lru_cache(maxsize=None)
def _ptx_kinds(source, name_expression):
    """The kinds of the kernel's parameters in the PTX NVRTC emits, in order: 'u64', 'u32'
    (an int's .s32 read as .u32: the same 32 bits). `source`: a path or a translation unit
    (the cell's struct in its prelude), compiled as the runtime compiles it."""
    from cuda.bindings import nvrtc

    unit = as_unit(source)
    _, program = nvrtc.nvrtcCreateProgram(unit.text().encode(), unit.name.encode(), 0, [], [])
    try:
        nvrtc.nvrtcAddNameExpression(program, name_expression.encode())
        options = [b"--std=c++17", b"--gpu-architecture=compute_90", b"-DFUSEDRNN_NVRTC=1",
                   f"-I{unit.path.parent}".encode(), f"-I{nvrtc_compile.COMMON_HEADERS}".encode(),
                   *(f"-I{d}".encode() for d in nvrtc_compile.include_dirs())]
        (error,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
        if error != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetProgramLogSize(program)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(program, log)
            raise AssertionError(f"NVRTC failed on {name_expression}:\n{log.decode(errors='replace')}")
        _, lowered = nvrtc.nvrtcGetLoweredName(program, name_expression.encode())
        _, size = nvrtc.nvrtcGetPTXSize(program)
        ptx = b" " * size
        nvrtc.nvrtcGetPTX(program, ptx)
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    ptx = ptx.decode()
    start = ptx.index(".entry " + lowered.decode())
    kinds = re.findall(r"\.param \.(\w+)", ptx[start:ptx.index(")", start)])
    return [{"s32": "u32"}.get(kind, kind) for kind in kinds]


def _fused_launches(config, monkeypatch, B=3, T=2, NH=1):
    """What launchers.forward / backward pass to runtime.launch for a plan of `config` (its
    sequences a cluster or tiles a launch set for the call, as the planner sets them, 7
    clusters at once), run on meta tensors (shapes and dtypes, no data): a list of (name,
    source, grid, args, keywords)."""
    launches = []
    monkeypatch.setattr(launchers, "launch", lambda name, source, grid, block, smem, device, *args, **kw:
                        launches.append((name, source, grid, args, kw)))
    spec, DH = get_cell(config.cell), config.DHP - 1
    meta = dict(dtype=config.dtype, device="meta")
    x = torch.empty(B, T, spec.gates_x, NH, DH, **meta)
    R = torch.empty(spec.gates_r, NH, DH, DH, **meta)
    b = torch.empty(spec.gates_b, NH, DH, **meta)
    states = torch.empty(spec.num_states, B, NH, DH, **meta)
    lengths = torch.empty(B, dtype=torch.int64, device="meta")
    if isinstance(config, (ClusterConfig, ClusterBackwardConfig)):
        config = config.with_sequences(B, NH, 7)
    if config.backward:
        y = torch.empty(B, T, NH, DH, **meta)
        saved = torch.empty(T + 1, spec.num_states - 1, B, NH, DH, dtype=torch.float32, device="meta")
        launchers.backward(Plan("backward", config), torch.empty_like(y), torch.empty_like(states), x, R, b, states,
                           lengths, y, states, saved, config.cell)
    else:
        launchers.forward(Plan("forward", config), x, R, b, states, lengths, config.cell, True)
    return launches


def _fused_launch(config, monkeypatch):
    """The one launch of a plan of `config` at B=3 (_fused_launches): (name, source, args, keywords)."""
    launches = _fused_launches(config, monkeypatch)
    assert len(launches) == 1, launches
    name, source, _, args, keywords = launches[0]
    return name, source, args, keywords


def _alternating_launches(monkeypatch, cell, dtype, product_dtype, backward):
    """The (name, source, args) of every kernel launch the loop's pointwise makes for a call: the
    call block, a chunk's staging and a step."""
    launches = []
    monkeypatch.setattr(alternating_pointwise, "launch", lambda name, elements, device, *args, **kw:
                        launches.append((name, kw.get("source", alternating_kernels.SOURCE), args)))
    ws = make_workspace(Shape(torch.device("cpu"), 0, backward, cell, dtype, product_dtype, 3, 2, 8))
    some = torch.empty(1)
    pointwise = NvrtcPointwise()
    pointwise.set_call(ws, Call(steps=5, x=some, initial=some, resets=some, y=some, saved=None, y_in=some, dy=some,
                                saved_in=some, dx=some, drec=some))
    pointwise.stage(ws, 4)
    pointwise.step(ws, 3, 4)
    return launches


def _host_launches(case, monkeypatch):
    """[(source, name expression, the host's parameter kinds)] of a case."""
    if case[0] == "fused":
        config = case[1]
        name, source, args, keywords = _fused_launch(config, monkeypatch)
        assert name == config.name_expression and source == config.source
        assert [_kind(a) for a in args] == config.kernel.parameter_kinds(), name
        assert keywords["cooperative"] == isinstance(config, SplitConfig)
        clustered = isinstance(config, (ClusterConfig, ClusterBackwardConfig))
        assert keywords["cluster"] == (config.parts if clustered else None)
        return [(config.source, config.name_expression, config.kernel.parameter_kinds())]
    _, cell, backward = case
    first = None
    for dtype, product in ((torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                          (torch.float16, torch.float16)):
        launches = _alternating_launches(monkeypatch, cell, dtype, product, backward)
        assert [name for name, _, _ in launches] == [
            alternating_kernels.SET_CALL, alternating_kernels.stage_kernel(dtype, backward),
            alternating_kernels.step_kernel(cell, dtype, product, backward)]
        # every launch is a shipped kernel, from the unit CI compiles it from
        assert all(ALTERNATING.get(name) == source for name, source, _ in launches), launches
        found = [(source, name, [_kind(a) for a in args]) for name, source, args in launches]
        # the parameter kinds do not depend on the types: the fp32 instantiations' PTX stands for all
        first = first or found
        assert [kinds for *_, kinds in found] == [kinds for *_, kinds in first], (dtype, product)
    return first


@pytest.mark.parametrize("case", CASES)
def test_ptx_parameters_match_the_host(case, monkeypatch):
    for source, name, kinds in _host_launches(case, monkeypatch):
        assert kinds == _ptx_kinds(source, name), name


def test_every_kernel_template_is_covered():
    """Six kernel templates in four translation units; the alternating loop's five."""
    assert sorted(c.kernel.name for c in KERNELS) == sorted([
        "fused_forward_kernel", "fused_backward_kernel", "fused_split_forward_kernel", "fused_split_backward_kernel",
        "fused_cluster_forward_kernel", "fused_cluster_backward_kernel"])
    assert len({c.source.path for c in KERNELS}) == 4
    assert {name.split("<")[0] for name in ALTERNATING} == {
        alternating_kernels.SET_CALL, "fusedrnn::alternating_stage_forward", "fusedrnn::alternating_stage_backward",
        "fusedrnn::alternating_forward_step", "fusedrnn::alternating_backward_step"}


def _declaration(config):
    """The kernel's C++ declaration in its translation unit's include closure:
    ([(kind, name, has_default)] of the template parameters, [names] of the runtime ones)."""
    kernel = config.kernel.name
    pattern = re.compile(r"template\s*<([^<>;{}]*)>\s*__global__\b[^;{}]*?\b" + kernel + r"\s*\(([^)]*)\)")
    found = [m for path in nvrtc_compile.include_closure(config.source) for m in pattern.finditer(path.read_text())]
    assert len(found) == 1, (kernel, len(found))
    template, parameters = found[0].groups()
    declared = []
    for part in template.split(","):
        m = re.fullmatch(r"\s*(class|typename|int|bool)\s+(\w+)\s*(=\s*\S.*)?", part, re.S)
        assert m, (kernel, part)
        declared.append(("class" if m[1] == "typename" else m[1], m[2], m[3] is not None))
    names = [re.search(r"(\w+)\s*$", part)[1] for part in parameters.split(",")]
    return declared, names


def _template_kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    assert isinstance(value, (torch.dtype, str)), value
    return "class"


@pytest.mark.parametrize("config", KERNELS, ids=[c.kernel.name for c in KERNELS])
def test_kernel_matches_its_cpp_declaration(config):
    kernel = config.kernel
    declared, names = _declaration(config)
    # the template: every field in the C++ order, of the C++ kind; only defaulted parameters left out
    assert len(kernel.template) <= len(declared) and all(default for *_, default in declared[len(kernel.template):])
    for field, (kind, name, _) in zip(kernel.template, declared):
        assert TEMPLATE_NAMES.get(field, field.upper()) == name, (kernel.name, field, name)
        assert _template_kind(getattr(config, field)) == kind, (kernel.name, field, kind)
    # the runtime parameters: the pointers then the ints, by name, in the C++ order
    assert [ARGUMENT_NAMES.get(a, a) for a in kernel.pointers + kernel.ints] == names, kernel.name


def _spelling(value) -> str:
    """How C++ spells a template argument in a name expression."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, torch.dtype):
        return {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}[value]
    if isinstance(value, str):
        return f"fusedrnn::generated::cell_{value}" if value in fusedrnn.CELLS else value
    return str(int(value))


def test_name_expressions_spell_every_template_field_in_order():
    assert len(SHIPPED) > 1000
    for config in SHIPPED:
        kernel = config.kernel
        expression = config.name_expression
        prefix = f"fusedrnn::{kernel.name}<"
        assert expression.startswith(prefix) and expression.endswith(">"), expression
        spelled = expression[len(prefix):-1].split(", ")
        assert spelled == [_spelling(getattr(config, field)) for field in kernel.template], expression
    # a field the template does not name is no part of the instantiation (the sequences a cluster
    # runs are a launch argument)
    cluster = next(c for c in SHIPPED if isinstance(c, ClusterConfig))
    assert dataclasses.replace(cluster, sequences=3).name_expression == cluster.name_expression


@pytest.mark.parametrize("config", KERNELS, ids=[c.kernel.name for c in KERNELS])
def test_arguments_are_ordered_and_complete(config):
    kernel = config.kernel
    names = kernel.pointers + kernel.ints
    assert len(set(names)) == len(names), kernel.name
    values = {name: (i if name in kernel.ints else torch.empty(i)) for i, name in enumerate(names)}
    shuffled = dict(reversed(list(values.items())))
    ordered = kernel.arguments(**shuffled)
    assert [a if isinstance(a, int) else a.numel() for a in ordered] == list(range(len(names)))
    assert [_kind(a) for a in ordered] == kernel.parameter_kinds()
    for left_out in (kernel.pointers[0], kernel.ints[-1]):
        with pytest.raises(TypeError, match=rf"missing \['{left_out}'\]"):
            kernel.arguments(**{k: v for k, v in values.items() if k != left_out})
    with pytest.raises(TypeError, match=r"unknown \['stride'\]"):
        kernel.arguments(**values, stride=4)
    with pytest.raises(TypeError, match=f"{kernel.ints[0]} must be an int"):
        kernel.arguments(**{**values, kernel.ints[0]: torch.empty(1)})


def test_kernel_description():
    kernel = cxx.Kernel("k", ("cell", "dtype", "DHP", "fast_math"), pointers=("x", "y"), ints=("B", "T"))

    @dataclasses.dataclass(frozen=True)
    class Config:
        cell: str = "gru"
        dtype: torch.dtype = torch.bfloat16
        DHP: int = 48
        fast_math: bool = True

    assert kernel.name_expression(Config()) == "fusedrnn::k<fusedrnn::generated::cell_gru, __nv_bfloat16, 48, true>"
    assert kernel.parameter_kinds() == ["u64", "u64", "u32", "u32"]
    x = torch.empty(1)
    assert kernel.arguments(T=7, y=None, B=3, x=x) == [x, None, 3, 7]
    with pytest.raises(TypeError, match=r"missing \['T', 'y'\], unknown \[\]"):
        kernel.arguments(x=x, B=3)
    with pytest.raises(TypeError, match=r"missing \[\], unknown \['z'\]"):
        kernel.arguments(x=x, y=x, B=3, T=7, z=1)
    with pytest.raises(TypeError, match="T must be an int, got float"):
        kernel.arguments(x=x, y=x, B=3, T=7.0)


def test_planned_path_runs_its_plans_on_meta_tensors(monkeypatch):
    """with_plans: the forward plan's kernel, then (autograd) the backward plan's, with the
    forward's saved states; nothing planned anew."""
    from fusedrnn.backends.cuda.fused.planned import with_plans

    launches = []
    monkeypatch.setattr(launchers, "launch", lambda name, source, *rest, **kw: launches.append(name))
    forward = next(c for c in SHIPPED if isinstance(c, ClusterConfig) and c.cell == "lstm")
    backward = next(c for c in SHIPPED if isinstance(c, SplitConfig) and c.backward and c.cell == "lstm"
                    and c.dtype == forward.dtype and c.DHP == forward.DHP)
    B, T, NH, DH = 3, 5, 2, forward.DHP
    meta = dict(dtype=forward.dtype, device="meta", requires_grad=True)
    leaves = [torch.empty(B, T, 4, NH, DH, **meta), torch.empty(4, NH, DH, DH, **meta),
              torch.empty(4, NH, DH, **meta), torch.empty(2, B, NH, DH, **meta)]
    forward = forward.with_sequences(B, NH, 7)
    run = with_plans(Plan("forward", forward), Plan("backward", backward))
    y, final = run(*leaves, cell="lstm")
    assert launches == [forward.name_expression]
    grads = torch.autograd.grad(y.sum() + final.sum(), leaves)
    assert launches == [forward.name_expression, backward.name_expression]
    assert [g.shape for g in grads] == [t.shape for t in leaves]
    with pytest.raises(ValueError, match="forward kernel cannot run the backward"):
        Plan("backward", forward)


def test_cluster_backward_runs_a_wave_of_tiles_a_launch(monkeypatch):
    """Where the clusters of a backward run in waves, each launch runs one wave's tiles with R h
    computed for their sequences alone (held a wave at a time), told its first tile."""
    config = next(c for c in SHIPPED if isinstance(c, ClusterBackwardConfig) and c.cell == "lstm")
    assert config.with_sequences(256, 1, 7).launch_tiles == 7  # 32 tiles: 5 waves of at most 7
    assert config.with_sequences(64, 1, 7).launch_tiles == 4  # 8 tiles: 2 waves of 4, not 7 and 1
    assert config.with_sequences(56, 1, 7).launch_tiles == 0  # one wave: one launch
    assert config.with_sequences(64, 12, 33).launch_tiles == 0  # 3 waves, but 12 heads of 3 tiles fill none
    assert config.with_sequences(64, 2, 7).launch_tiles == 3  # 16 clusters: 3 waves of 3 tiles of 2 heads
    B, T, NH = 45, 3, 2  # 6 tiles, the last of 5 sequences: 12 clusters, 2 waves, 2 launches of 3 tiles
    launches = _fused_launches(config, monkeypatch, B=B, T=T, NH=NH)
    assert [grid for _, _, grid, _, _ in launches] == [(NH, 3, 1), (NH, 3, 1)]
    names = ClusterBackwardConfig.kernel.pointers + ClusterBackwardConfig.kernel.ints
    first = [dict(zip(names, args)) for _, _, _, args, _ in launches]
    assert [a["first_tile"] for a in first] == [0, 3] and all(a["B"] == B for a in first)
    G, DH = get_cell("lstm").gates_r, config.DHP - 1
    assert [tuple(a["rh"].shape) for a in first] == [(NH, 24 * T, G * DH), (NH, 21 * T, G * DH)]
    assert first[0]["dx"] is first[1]["dx"] and first[0]["db_partial"] is first[1]["db_partial"]


# ---------------------------------------------------------------- resets as the kernels read them

@pytest.mark.parametrize("B", [1, 5, 31, 32, 33, 64, 70])
def test_reset_words_hold_each_flag_in_its_bit(B):
    """csrc/resets.cuh reads sequence b's flag at step t as bit b % 32 of word [b // 32, t]:
    every flag where it belongs (bit 31, which int32 spells negative, included), no bit set past B."""
    T = 9
    resets = torch.rand(B, T, generator=torch.Generator().manual_seed(B)) < 0.5
    resets[B - 1, 0] = True
    words = launchers.reset_words(resets)
    assert words.dtype == torch.int32 and words.shape == (launchers.reset_word_count(B), T)
    bits = words.to(torch.int64) & 0xFFFFFFFF
    for w in range(words.shape[0]):
        for bit in range(32):
            b = 32 * w + bit
            expected = resets[b] if b < B else torch.zeros(T, dtype=torch.bool)
            assert torch.equal((bits[w] >> bit & 1).bool(), expected), (b, w, bit)


def test_kernel_resets_zeros_for_a_resets_plan_and_refusal_for_a_plain_one():
    """A kernel built for resets reads them unconditionally: a call without any gets zero words;
    a kernel built without them would ignore them, so it refuses them by name."""
    config = next(c for c in SHIPPED if isinstance(c, ClusterConfig))
    with_resets = Plan("forward", dataclasses.replace(config, resets=True), "test")
    words = launchers.kernel_resets(with_resets, None, 40, 7, torch.device("cpu"))
    assert words.shape == (2, 7) and words.dtype == torch.int32 and not words.any()
    plain = Plan("forward", config, "test")
    assert launchers.kernel_resets(plain, None, 40, 7, torch.device("cpu")) is None
    with pytest.raises(ValueError, match="resets"):
        launchers.kernel_resets(plain, torch.zeros(40, 7, dtype=torch.bool), 40, 7, torch.device("cpu"))
    with pytest.raises(ValueError, match="resets"):  # the explicit path checks what rnn() would
        launchers.kernel_resets(with_resets, torch.zeros(40, 6, dtype=torch.bool), 40, 7, torch.device("cpu"))
