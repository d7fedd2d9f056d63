"""Cells defined once, on the CUDA side, on a machine with no GPU.

- The C++ a cell's struct is printed as (backends/cuda/cell_codegen.py) is
  compiled as host code with a small shim (__device__ away, host versions of
  the CUDA intrinsics) and the real csrc/math.cuh, run on random inputs
  (FAST=false, fp32), and compared in float64: new cells with their generated
  torch forward and backward, the five built-in cells' structs, which the
  shipped kernels run, with tests/reference.py (written apart from fusedrnn's
  cells, gradients by autograd).
- NVRTC compiles a user cell's kernels for the H100 (sm_90) from its translation
  unit (the file and the struct as its prelude: runtime/unit.py) in processes
  that never saw the cell: one SM, the cooperative grid and the clusters,
  forward and backward, and the alternating steps; with no spill, and no local
  memory where the LSTM's kernel of the same call has none.
- The plumbing: units, their digests and cache keys, the configs' sources, the
  name expressions, the alternating launches, and check_call's limits.

Every cell is defined under a name starting with "tc_" and taken away again
after each test (cells/registry.py only grows by design)."""
import dataclasses
import math
import multiprocessing
import os
import pickle
import re
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

import pytest
import torch

import fusedrnn
import host_cells
from fusedrnn.backends.cuda import cxx
from fusedrnn.backends.cuda.cell_codegen import MAX_GATES, cell_struct, qualified_name, struct_name
from fusedrnn.backends.cuda.runtime.compile import COMMON_HEADERS, cache_key, include_closure, source_digest
from fusedrnn.backends.cuda.runtime.device import H100_SXM
from fusedrnn.backends.cuda.runtime.toolchain import check_call
from fusedrnn.backends.cuda.runtime.unit import TranslationUnit, as_unit
from fusedrnn.cells import BUILT_IN
from reference import reference_step
from user_cells import cells_restored, cifg_step

m = fusedrnn.cellmath
ARCH = "sm_90"
SAMPLES = 300


@pytest.fixture(autouse=True)
def _only_built_in_cells_afterwards():
    with cells_restored():
        yield


# ---------------------------------------------------------------- the cells

def forget_step(x, r, b, s):
    """A forget gate alone; the candidate enters through 1 - f, shifted, and h is c itself."""
    f = x[0] + r[0] + b[0]
    c = m.sigmoid(f) * s[1] + (1 - m.sigmoid(f - 0.75)) * m.tanh(x[1] + r[1] + b[1])
    return c, c


def relu6_step(x, r, b, s):
    """Elman with ReLU6: the ties at 0 and 6 send the gradient to the first argument."""
    return m.minimum(m.maximum(x[0] + r[0] + b[0], 0), 6)


def gru_log_step(x, r, b, s):
    """GRU-like, not summed: a signed log1p / expm1 candidate chosen by where, floored by maximum."""
    reset = m.sigmoid(x[0] + r[0] + b[0])
    update = m.exp(m.logsigmoid(x[1] + r[1] + b[1]))
    a = x[2] + b[2] + reset * (r[2] + b[3])
    n = m.where(a > 0, m.log(1 + a), m.exp(a) - 1)
    return m.maximum((1 - update) * n + update * s[0], 0.25 * s[0] - 1)


def misc_step(x, r, b, s):
    """softplus, abs (sign in the gradient), sqrt, 1/sqrt, powers, eq / ne and & | ~ conditions,
    a state of the biases alone and a constant state."""
    u = x[0] + r[0] + b[0]
    v = x[1] + r[1] + b[1]
    condition = ((u > 0) & ~((v < -1) | (v > 2.5))) | m.eq(s[0], 0)
    a = m.where(condition, m.softplus(u), m.abs(v) ** 1.5) + 1 / m.sqrt(1 + s[1] ** 2)
    h = a / (1 + v ** 2) + m.relu(v) - m.where(m.ne(s[1], 0), 0.5 * s[1] ** -2, 0.5) + (u - v) ** 5 / 32
    return h, m.tanh(h) * s[1] + m.minimum(u, b[2]), m.sigmoid(b[2]) - 0.5, -1.25


def positive_n(states):
    """sLSTM: the normaliser n > 0, but exactly 0 in a tenth of the samples (a step from zero states)."""
    states[2] = states[2].abs() + 0.1
    states[2][::10] = 0.0


def ties_at_0_and_6(x, r, b):
    """relu6: some pre-activations exactly 0 and exactly 6."""
    for value, start in ((0.0, 0), (6.0, 1)):
        x[0, 0, 0, start::7], r[0, 0, 0, start::7], b[0, 0, start::7] = value, 0.0, 0.0


def some_zero_states(states):
    states[0][..., ::9] = 0.0
    states[1][..., 1::11] = 0.0


CELLS = {  # name: (step, Gx, Gr, Gb, states, scale of x, tweak of the inputs)
    "tc_cifg": (cifg_step, 3, 3, 3, ("h", "c"), 1.0, None),
    "tc_forget": (forget_step, 2, 2, 2, ("h", "c"), 1.0, None),
    "tc_relu6": (relu6_step, 1, 1, 1, ("h",), 5.0, ("gates", ties_at_0_and_6)),
    "tc_gru_log": (gru_log_step, 3, 3, 4, ("h",), 1.0, None),
    "tc_misc": (misc_step, 2, 2, 3, ("h", "a", "k", "z"), 1.0, ("states", some_zero_states)),
}
# the built-in cells' tweaks of the inputs (their counts are their Cells')
BUILT_IN_TWEAKS = {"slstm": ("states", positive_n)}


def define(name: str):
    step, gx, gr, gb, states, _, _ = CELLS[name]
    return fusedrnn.define_cell(name, step, gates_x=gx, gates_r=gr, gates_b=gb, states=states)


# ---------------------------------------------------------------- the printed C++ on the host

@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """The host executable running the struct of every cell of CELLS and of every built-in cell."""
    compiler = host_cells.host_compiler()
    if compiler is None:
        pytest.skip("no host C++ compiler (g++, c++, clang++ or nvcc) to run the printed cells on the CPU")
    with cells_restored():
        preludes = [cxx.cell_prelude(define(name).name) for name in CELLS]
    preludes += [cxx.cell_prelude(name) for name in BUILT_IN]
    types = {name: qualified_name(name) for name in [*CELLS, *BUILT_IN]}
    return host_cells.build(preludes, types, tmp_path_factory.mktemp("host_cells"), COMMON_HEADERS, compiler)


def random_inputs(name: str):
    """fp32 values (as float64 tensors) of SAMPLES elements: x, rec [1, G, 1, N], b [G, 1, N],
    states and d_new S tensors [1, 1, N]; each element has its own bias."""
    if name in CELLS:
        _, gx, gr, gb, states, scale, tweak = CELLS[name]
    else:
        cell = fusedrnn.CELLS[name]
        gx, gr, gb, states, scale, tweak = (cell.gates_x, cell.gates_r, cell.gates_b, cell.state_names, 1.0,
                                            BUILT_IN_TWEAKS.get(name))
    N = SAMPLES
    x = (scale * torch.randn(1, gx, 1, N)).double()
    rec, b = torch.randn(1, gr, 1, N).double(), torch.randn(gb, 1, N).double()
    s = [torch.randn(1, 1, N).double() for _ in states]
    d = [torch.randn(1, 1, N).double() for _ in states]
    if tweak is not None:
        kind, change = tweak
        if kind == "states":
            change(s)
        else:
            change(x, rec, b)
    return x, rec, b, s, d


def torch_outputs(cell, x, rec, b, s, d) -> torch.Tensor:
    """The cell's torch forward and backward in float64, laid out as run_host's columns."""
    return as_columns(cell.forward(x, rec, b, s), *cell.backward(x, rec, b, s, d))


def reference_outputs(name, x, rec, b, s, d) -> torch.Tensor:
    """tests/reference.py's step of the built-in cell `name` and its gradient by autograd, in
    float64, laid out as run_host's columns. One batch row: the biases' gradient is per sample."""
    inputs = [t.clone().requires_grad_() for t in (x, rec, b, *s)]
    new = reference_step(name, inputs[0], inputs[1], inputs[2], inputs[3:])
    grads = torch.autograd.grad(sum((n * dn).sum() for n, dn in zip(new, d)), inputs, allow_unused=True)
    dx, drec, db, *dprev = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]
    return as_columns([n.detach() for n in new], dx, drec, db[None], dprev)


def as_columns(new, dx, drec, db, dprev) -> torch.Tensor:
    """[N, S + Gx + Gr + Gb + S]: the new states, dx, drec, db, dprev of N elements."""
    N = dx.shape[-1]
    flat = [v.expand(1, 1, N).reshape(1, N) for v in new]
    flat += [g.expand(1, g.shape[1], 1, N).reshape(-1, N) for g in (dx, drec, db)]
    flat += [v.expand(1, 1, N).reshape(1, N) for v in dprev]
    return torch.cat(flat).T


def assert_close_fp32(got, want, what):
    """fp32 arithmetic against float64: 1e-5 relative, to each value plus its column's mean size
    (where terms cancel, 1 - tanh^2 near saturation, fp32 loses digits of the small result that
    the float64 reference keeps; measured: errors within 1e-6 of the column's size, as torch's
    own fp32 code). A column the reference holds at 0 must be 0."""
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert torch.isfinite(want).all(), f"{what}: the reference itself is not finite"
    allowed = 1e-5 * (want.abs() + want.abs().mean(dim=0, keepdim=True))
    excess = ((got - want).abs() - allowed).max(dim=0)
    assert (excess.values <= 0).all(), (f"{what}: error over the tolerance per column {excess.values.tolist()} "
                                        f"at samples {excess.indices.tolist()}")


@pytest.mark.parametrize("name", list(CELLS))
def test_printed_cell_matches_its_torch_code_on_the_host(name, harness):
    cell = define(name)
    inputs = random_inputs(name)
    assert_close_fp32(host_cells.run_host(harness, name, *inputs), torch_outputs(cell, *inputs), name)


@pytest.mark.parametrize("built_in", BUILT_IN)
def test_built_in_structs_match_the_float64_reference_on_the_host(built_in, harness):
    """The structs the shipped kernels run, against a reference written apart from them."""
    inputs = random_inputs(built_in)
    want = reference_outputs(built_in, *inputs)
    assert_close_fp32(host_cells.run_host(harness, built_in, *inputs), want, built_in)


# ---------------------------------------------------------------- the printed text

def test_generated_lstm_struct_follows_the_contract():
    text = cell_struct(fusedrnn.CELLS["lstm"].symbolic)
    assert "namespace fusedrnn::generated {" in text and "struct cell_lstm {" in text
    assert "static constexpr int GX = 4, GR = 4, GB = 4, S = 2;" in text and "static constexpr bool SUMS = true;" in text
    assert "template <bool FAST>" in text and "sigmoid_<FAST>(" in text and "tanh_<FAST>(" in text
    for store in ("next[0] =", "next[1] =", "dx[3] = drec[3] = db[3] =", "dprev[0] = 0.0f;", "dprev[1] ="):
        assert store in text, store
    # no slot past the counts; every literal a float (a double would make its expression fp64)
    assert "next[2]" not in text and "dprev[2]" not in text
    literals = re.findall(r"\d+\.\d*(?:e[+-]?\d+)?f?", text)
    assert literals and all(literal.endswith("f") for literal in literals), literals


def test_literals_are_float_and_conditions_bool():
    text = cell_struct(fusedrnn.CELLS["slstm"].symbolic)
    assert "const bool bwd0 = (s[2] == 0.0f);" in text
    assert "exp_<FAST>(" in text and "log_sigmoid_<FAST>(" in text and "div_<FAST>(" in text and "fmaxf(" in text and " ? " in text
    misc = cell_struct(define("tc_misc").symbolic)
    for piece in ("sqrtf(", "rsqrtf(", "powf(", "sign_(", "fabsf(", "&&", "!(", "!= 0.0f", "== 0.0f",
                  "power_<5>(", "fminf(", "next[3] = -1.25f;", "SUMS = false"):
        assert piece in misc, piece
    for double in ("0.5)", "1.25;", "exp(", "log("):
        assert double not in misc, double


def test_struct_names_are_identifiers_apart_from_every_other_cell():
    assert struct_name("lstm") == "cell_lstm" and qualified_name("int") == "fusedrnn::generated::cell_int"
    names = ["a_b", "aé", "a_e9_", "a\u00e9", "x" * 3, "Ω"]
    structs = [struct_name(n) for n in names]
    assert all(s.isidentifier() and s.isascii() for s in structs)
    assert len(set(structs)) == len(set(names))


def test_a_cell_past_four_of_a_kind_is_refused_by_name_and_count():
    big = fusedrnn.define_cell("tc_five", lambda x, r, b, s: sum(x[k] + r[k] + b[k] for k in range(5)),
                               gates_x=5, gates_r=5, gates_b=5, states=("h",))
    with pytest.raises(ValueError, match=r"cell 'tc_five': 5 input gates \(gates_x\), over the 4"):
        cell_struct(big.symbolic)
    problem = SimpleNamespace(cell=big, device=torch.device("cpu"), dtype=torch.float32)
    assert check_call(problem) == (f"cell 'tc_five': 5 input gates (gates_x), over the {MAX_GATES} the CUDA kernels "
                                   "hold an element (float[4] a kind)")
    states = fusedrnn.define_cell("tc_states", lambda x, r, b, s: tuple(s), gates_x=1, gates_r=1, gates_b=1,
                                  states=("h", "a", "b", "c", "d"))
    assert "cell 'tc_states': 5 states" in check_call(SimpleNamespace(cell=states, device=torch.device("cpu")))
    hand = SimpleNamespace(name="tc_hand", symbolic=None, gates_x=1, gates_r=1, gates_b=1, num_states=1)
    assert "cell 'tc_hand': no CUDA struct" in check_call(SimpleNamespace(cell=hand, device=torch.device("cpu")))
    # a cell within the limits passes on to the device check
    assert check_call(SimpleNamespace(cell=define("tc_cifg"), device=torch.device("cpu"))).startswith("device cpu")


# ---------------------------------------------------------------- the translation units

def test_translation_unit_prelude_text_digest_and_key():
    from fusedrnn.backends.cuda.fused import one_sm

    define("tc_cifg")
    define("tc_forget")
    unit = one_sm.rule_config("tc_cifg", torch.bfloat16, 64, 16, False, 1, H100_SXM).source
    other = one_sm.rule_config("tc_forget", torch.bfloat16, 64, 16, False, 1, H100_SXM).source
    assert isinstance(unit, TranslationUnit) and unit.path == one_sm.SOURCE
    assert unit.prelude == cxx.cell_prelude("tc_cifg") and unit.prelude.startswith('#include "cells/cell.cuh"')
    file = one_sm.SOURCE.read_text()
    assert unit.text() == f'#line 1 "prelude of one_sm.cu"\n{unit.prelude}#line 1 "one_sm.cu"\n{file}'
    assert pickle.loads(pickle.dumps(unit)) == unit and hash(unit) == hash(as_unit(unit))
    # a built-in cell's struct is generated alike; a path and its unit without a prelude hash alike
    lstm = one_sm.rule_config("lstm", torch.bfloat16, 64, 16, False, 1, H100_SXM).source
    assert lstm == TranslationUnit(one_sm.SOURCE, cxx.cell_prelude("lstm")) and "struct cell_lstm {" in lstm.prelude
    assert as_unit(one_sm.SOURCE) == TranslationUnit(one_sm.SOURCE) and as_unit(one_sm.SOURCE).text() == file
    assert source_digest(TranslationUnit(one_sm.SOURCE)) == source_digest(one_sm.SOURCE)
    assert len({source_digest(one_sm.SOURCE), source_digest(unit), source_digest(other)}) == 3
    assert include_closure(unit) == include_closure(one_sm.SOURCE)  # cell.cuh: in every unit's closure already
    name = "fusedrnn::k<int>"
    assert len({cache_key(name, ARCH, one_sm.SOURCE), cache_key(name, ARCH, unit), cache_key(name, ARCH, other)}) == 3


def test_prelude_headers_join_the_closure(tmp_path):
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "unit.cu").write_text("// nothing\n")
    (tmp_path / "csrc" / "extra.cuh").write_text("#pragma once\n")
    unit = TranslationUnit(tmp_path / "csrc" / "unit.cu", '#include "extra.cuh"\n#include "cells/cell.cuh"\n')
    closure = include_closure(unit)
    assert (tmp_path / "csrc" / "extra.cuh").resolve() in closure
    assert {(COMMON_HEADERS / "cells" / "cell.cuh").resolve(), (COMMON_HEADERS / "math.cuh").resolve()} <= set(closure)


def test_configs_name_and_source_the_generated_struct():
    from fusedrnn.backends.cuda.fused import cluster, cluster_backward, grid, one_sm

    define("tc_cifg")
    struct = "fusedrnn::generated::cell_tc_cifg"
    assert cxx.template_argument("tc_cifg") == cxx.cell_type("tc_cifg") == struct
    assert cxx.template_argument("lstm") == "fusedrnn::generated::cell_lstm"
    assert cxx.cell_unit(one_sm.SOURCE, "gru") == TranslationUnit(one_sm.SOURCE, cxx.cell_prelude("gru"))
    configs = [one_sm.rule_config("tc_cifg", torch.float16, 96, 16, True, 4, H100_SXM),
               grid.split_config("tc_cifg", torch.float16, 256, 16, 16, False, H100_SXM.shared_memory_per_block),
               cluster.choose_cluster("tc_cifg", torch.bfloat16, 768, 16, 1, H100_SXM),
               cluster_backward.choose_cluster_backward("tc_cifg", torch.bfloat16, 768, 16, 1, H100_SXM)]
    for config, path in zip(configs, (one_sm.SOURCE, grid.SOURCE, cluster.SOURCE, cluster_backward.SOURCE)):
        assert config.name_expression.split("<", 1)[1].startswith(struct + ", "), config.name_expression
        assert config.source == TranslationUnit(path, cxx.cell_prelude("tc_cifg"))
    probe = dataclasses.replace(configs[2], probe="NoPush")
    assert probe.source == TranslationUnit(cluster.PROBES_SOURCE, cxx.cell_prelude("tc_cifg"))
    with pytest.raises(ValueError, match="cell: expected one of"):
        cxx.cell_type("tc_not_defined")


@pytest.mark.parametrize("strategy", ["one_sm", "grid", "cluster"])
def test_planned_launches_pass_the_cells_unit(strategy, monkeypatch):
    """The planner's plans for a user cell, run by the launchers on meta tensors: each launch names
    the generated struct and passes its unit."""
    pytest.importorskip("cuda.core")  # a cluster plan is fitted to the NVRTC in use
    from fusedrnn.backends.cuda.fused import launchers
    from fusedrnn.backends.cuda.fused.plan import plan
    from fusedrnn.problem import Problem

    cell = define("tc_gru_log")
    launches = []
    monkeypatch.setattr(launchers, "launch", lambda name, source, *rest, **kw: launches.append((name, source)))
    B, T, NH, DH = 3, 32, 2, 64 if strategy == "one_sm" else 256
    meta = dict(dtype=torch.bfloat16, device="meta")
    x, R = torch.empty(B, T, 3, NH, DH, **meta), torch.empty(3, NH, DH, DH, **meta)
    b, states = torch.empty(4, NH, DH, **meta), torch.empty(1, B, NH, DH, **meta)
    problem = Problem(cell, B, T, NH, DH, torch.bfloat16, torch.device("meta"), False, True)
    forward, backward = (plan(problem, H100_SXM, direction, strategy=strategy) for direction in ("forward", "backward"))
    y, final, saved = launchers.forward(forward, x, R, b, states, None, cell.name, True)
    launchers.backward(backward, torch.empty_like(y), torch.empty_like(final), x, R, b, states, None, y, final, saved,
                       cell.name)
    unit = forward.config.source
    assert unit.prelude == cxx.cell_prelude(cell.name) and backward.config.source.prelude == unit.prelude
    assert launches == [(forward.name_expression, unit), (backward.name_expression, backward.config.source)]
    assert all("fusedrnn::generated::cell_tc_gru_log, __nv_bfloat16" in name for name, _ in launches)


def test_alternating_step_launches_from_the_cells_unit(monkeypatch):
    from fusedrnn.backends.cuda.alternating import kernels, pointwise
    from fusedrnn.backends.cuda.alternating.workspace import Shape, make_workspace

    define("tc_gru_log")
    launches = []
    monkeypatch.setattr(pointwise, "launch", lambda name, elements, device, *args, **kw:
                        launches.append((name, kw.get("source", kernels.SOURCE))))
    for backward in (False, True):
        ws = make_workspace(Shape(torch.device("cpu"), 0, backward, "tc_gru_log", torch.float16, torch.float32, 3, 2, 8))
        pointwise.NvrtcPointwise().stage(ws, 4)
        pointwise.NvrtcPointwise().step(ws, 3, 4)
    unit = TranslationUnit(kernels.SOURCE, cxx.cell_prelude("tc_gru_log"))
    assert [source for _, source in launches] == [kernels.SOURCE, unit, kernels.SOURCE, unit]
    assert launches[1][0] == ("fusedrnn::alternating_forward_step<fusedrnn::generated::cell_tc_gru_log, __half, "
                              "float, false>")


def test_tuner_cost_model_weighs_every_cell_by_its_trace():
    """(2 + transcendental calls + divisions) / 7 of the traced forward or backward, built-in or not."""
    from fusedrnn.backends.cuda.fused import cost, one_sm

    define("tc_cifg")
    weights = {name: (7 * cost.pointwise_weight(name, False), 7 * cost.pointwise_weight(name, True))
               for name in [*BUILT_IN, "tc_cifg"]}
    want = {"lstm": (7, 7), "gru": (5, 5), "elman": (3, 3), "elman_relu": (2, 2),
            "slstm": (8, 10),  # one division forward (c' / n'), two backward; sigmoid(-f~) backward
            "tc_cifg": (6, 6)}  # two sigmoids, two tanh
    assert weights == pytest.approx(want)
    config = one_sm.rule_config("tc_cifg", torch.bfloat16, 64, 16, False, 4, H100_SXM)
    assert 0 < cost.estimated_ms(config, 4, 16, H100_SXM, 64) < math.inf


# ---------------------------------------------------------------- NVRTC: a user cell's kernels

def _build(job):
    """Compile one kernel in a worker process (which never saw the cell: the unit carries it)."""
    from fusedrnn.backends.cuda.runtime.compile import compile_kernel

    name, arch, source = job
    compiled = compile_kernel(name, arch, source)
    return job, dict(spill=compiled.spill_bytes, local=compiled.uses_local_memory, registers=compiled.registers,
                     mangled=compiled.mangled_name)


def _kernels(cell: str) -> dict:
    """{what: (name expression, source)} of one cell's kernels of every family, as the planner's rules
    pick them (the cluster shapes before the fit to a compiler, as CI compiles the shipped ones)."""
    from fusedrnn.backends.cuda.alternating import kernels as alternating
    from fusedrnn.backends.cuda.fused import cluster, cluster_backward, grid, one_sm

    smem = H100_SXM.shared_memory_per_block
    configs = {}
    for backward in (False, True):
        direction = "backward" if backward else "forward"
        configs[f"one_sm bf16 64 {direction}"] = one_sm.rule_config(cell, torch.bfloat16, 64, 16, backward, 12, H100_SXM)
        configs[f"one_sm fp32 48 {direction}"] = one_sm.rule_config(cell, torch.float32, 48, 16, backward, 12, H100_SXM)
        configs[f"grid fp16 256 {direction}"] = grid.split_config(cell, torch.float16, 256, 16, 16, backward, smem)
    configs["one_sm fp16 128 forward, R in registers"] = one_sm.rule_config(cell, torch.float16, 128, 16, False, 1,
                                                                            H100_SXM)
    configs["cluster bf16 768x1 forward"] = cluster.choose_cluster(cell, torch.bfloat16, 768, 16, 1, H100_SXM)
    configs["cluster bf16 256x3 forward"] = cluster.choose_cluster(cell, torch.bfloat16, 256, 16, 3, H100_SXM)
    configs["cluster bf16 768x1 backward"] = cluster_backward.choose_cluster_backward(cell, torch.bfloat16, 768, 16, 1,
                                                                                      H100_SXM)
    kernels = {what: (c.name_expression, c.source) for what, c in configs.items()}
    for dtype, product in ((torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                           (torch.float16, torch.float16)):
        for backward in (False, True):
            what = f"alternating {dtype} {product} {'backward' if backward else 'forward'}"
            kernels[what] = (alternating.step_kernel(cell, dtype, product, backward), alternating.step_source(cell))
    return kernels


@pytest.fixture(scope="module")
def nvrtc_built():
    """{cell: {what: ptxas's figures}} for two user cells (one summed, one not) and the LSTM's
    kernels of the same calls, compiled in parallel processes (into the disk cache)."""
    pytest.importorskip("cuda.core")
    with cells_restored():  # the jobs carry the cells' structs: the workers need no registry
        kernels = {"lstm": _kernels("lstm")}
        for name in ("tc_cifg", "tc_gru_log"):
            define(name)
            kernels[name] = _kernels(name)
    jobs = list(dict.fromkeys((name, ARCH, source) for by_what in kernels.values() for name, source in by_what.values()))
    context = multiprocessing.get_context("spawn")  # no fork of a process that has torch's threads
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
        results = dict(pool.map(_build, jobs))
    return {cell: {what: results[(name, ARCH, source)] for what, (name, source) in by_what.items()}
            for cell, by_what in kernels.items()}


@pytest.mark.slow  # ~45 s of NVRTC on 2 cores from an empty cache (the cluster kernels most)
@pytest.mark.parametrize("cell", ["tc_cifg", "tc_gru_log"])
def test_user_cell_kernels_compile_without_local_memory(cell, nvrtc_built):
    built, lstm = nvrtc_built[cell], nvrtc_built["lstm"]
    assert len(built) == 16 and all(struct_name(cell) in figures["mangled"] for figures in built.values())
    spilled = {what: figures for what, figures in built.items() if figures["spill"] and not lstm[what]["spill"]}
    assert not spilled, spilled
    local = {what: figures for what, figures in built.items() if figures["local"] and not lstm[what]["local"]}
    assert not local, local
    # the LSTM's kernels of these calls keep everything on chip: so must the user's
    assert not any(figures["local"] for figures in lstm.values()), lstm

