"""Cells made by fusedrnn.define_cell on the Triton backend (issue 17): their pointwise
functions generated from the step (backends/triton/cell_codegen.py) and run by the
very kernels the built-in cells run.

On CPU the kernels run under TRITON_INTERPRET=1 (tests/conftest.py sets it), at tiny
odd sizes. New cells are checked in float32 against a float64 reference written here
(a plain loop of the step in torch ops, gradients by autograd); every code path of
fusedrnn.backends.triton.variants by the FlashAttention rule in float16; the built-in
cells, whose functions are generated alike, against tests/reference.py in float32.
Every output starts as NaN (conftest.py), and x past a sequence's length is NaN too.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import fusedrnn
from fusedrnn.backends.triton.variants import code_paths
from fusedrnn.testing import random_problem
from kernel_check import check_backend
from user_cells import (cells_restored, cifg_reference, cifg_step, forget_only_reference, forget_only_step,
                        log_gru_reference, log_gru_step, relu6_reference, relu6_step)
from reference import reference_rnn as built_in_reference_rnn

m = fusedrnn.cellmath
B, T, NH, DH = 3, 7, 2, 5
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
triton_ok = fusedrnn.backends()["triton"].available
needs_triton = pytest.mark.skipif(not triton_ok, reason=fusedrnn.backends()["triton"].reason)
pytestmark = [
    needs_triton,
    # the interpreter computes both branches of a where in numpy, which warns of tt_log_gru's
    # log(1 + a) at a < -1 in the branch not taken (the where drops it, as on the GPU)
    pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning"),
]


@pytest.fixture(autouse=True)
def _only_built_in_cells_afterwards():
    with cells_restored():
        yield


@pytest.fixture(autouse=True)
def _generated_modules_in_a_temporary_cache(tmp_path_factory, monkeypatch):
    """The generated modules go to a cache of the test run, not the user's."""
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fusedrnn-cache"))


# ---------------------------------------------------------------- new cells and their torch references
# a reference step takes x [B, Gx, NH, DH], rec [B, Gr, NH, DH], b [Gb, NH, DH] and the S
# states [B, NH, DH], and returns the S new states

















def every_node_step(x, r, b, s):
    """The rest of cellmath: softplus, logsigmoid, abs, sqrt, integer, negative and
    half-integer powers, minimum of two values, & | ~ and ne in a condition, a state
    of the biases alone and a constant state."""
    u = x[0] + r[0] + b[0]
    v = x[1] + r[1] + b[1]
    a = m.softplus(u) * m.logsigmoid(v) + m.sqrt(1 + s[1] ** 2) + u ** 3 / (1 + u ** 2 + v ** 2)
    condition = ((u > 0) & (v < 1)) | ~(s[0] > -0.5) | m.ne(s[3], 2.5)
    h = m.where(condition, m.abs(m.tanh(v)) ** 1.5, m.minimum(u, v) / (1 + m.abs(s[0])))
    return h, a, m.tanh(b[2]) + 1, 2.5


def every_node_reference(x, rec, b, states):
    u = x[:, 0] + rec[:, 0] + b[:, 0]
    v = x[:, 1] + rec[:, 1] + b[:, 1]
    a = (torch.log1p(torch.exp(u)) * F.logsigmoid(v) + torch.sqrt(1 + states[1] ** 2)
         + u ** 3 / (1 + u ** 2 + v ** 2))
    condition = ((u > 0) & (v < 1)) | (states[0] <= -0.5) | (states[3] != 2.5)
    h = torch.where(condition, torch.tanh(v).abs() ** 1.5, torch.minimum(u, v) / (1 + states[0].abs()))
    return [h, a, (torch.tanh(b[:, 2]) + 1).expand_as(h), torch.full_like(h, 2.5)]


NEW = {  # name: (step, reference, Gx, Gr, Gb, states, scale of x, scale of R)
    "tt_cifg": (cifg_step, cifg_reference, 3, 3, 3, ("h", "c"), 1.0, 1.0),
    "tt_forget_only": (forget_only_step, forget_only_reference, 2, 2, 2, ("h", "c"), 1.0, 1.0),
    # x beyond 6 and below 0; R contractive, as a trained relu recurrence is
    "tt_relu6": (relu6_step, relu6_reference, 1, 1, 1, ("h",), 4.0, 0.5),
    "tt_log_gru": (log_gru_step, log_gru_reference, 3, 3, 4, ("h",), 1.0, 1.0),
    # |h| <= |u|: R contractive, so that h stays of the scale of x
    "tt_every_node": (every_node_step, every_node_reference, 2, 2, 3, ("h", "a", "k", "z"), 1.0, 0.5),
}


def define(name):
    step, _, gx, gr, gb, states, _, _ = NEW[name]
    return fusedrnn.define_cell(name, step, gates_x=gx, gates_r=gr, gates_b=gb, states=states)


def reference_rnn(step, x, R, b, states, lengths=None):
    """y [B, T, NH, DH] and final [S, B, NH, DH] of `step` (a reference above) in one plain loop."""
    batch, steps = x.shape[:2]
    s = list(states.unbind(0))
    ys = []
    for t in range(steps):
        rec = torch.einsum("bnj,gnij->bgni", s[0], R)
        new = step(x[:, t], rec, b.expand(batch, *b.shape), s)  # the references take biases per sample
        if lengths is not None:
            keep = (t < lengths).view(batch, 1, 1)
            new = [torch.where(keep, n, old) for n, old in zip(new, s)]
            ys.append(torch.where(keep, new[0], torch.zeros_like(new[0])))
        else:
            ys.append(new[0])
        s = new
    return torch.stack(ys, 1), torch.stack(s)


def random_inputs(name, x_scale=1.0, R_scale=1.0):
    """x, R, b, states in float64 on the CPU."""
    cell = fusedrnn.CELLS[name]
    x = x_scale * torch.randn(B, T, cell.gates_x, NH, DH, dtype=torch.float64)
    R = R_scale * torch.randn(cell.gates_r, NH, DH, DH, dtype=torch.float64) / DH ** 0.5
    b = 0.5 * torch.randn(cell.gates_b, NH, DH, dtype=torch.float64)
    states = torch.randn(cell.num_states, B, NH, DH, dtype=torch.float64)
    return x, R, b, states


def run_with_grads(run, inputs, seeds, **kw):
    """[y, final, dx, dR, db, dstates] of run(x, R, b, states, **kw) for the loss sum(y seeds[0]) + sum(final seeds[1])."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    y, final = run(*leaves, **kw)
    loss = (y.double() * seeds[0]).sum() + (final.double() * seeds[1]).sum()
    return [y, final, *torch.autograd.grad(loss, leaves)]


NAMES = ("y", "final", "dx", "dR", "db", "dstates")


def assert_all_close(got, want, **tolerance):
    for name, g, w in zip(NAMES, got, want):
        assert g.shape == w.shape, name
        torch.testing.assert_close(g.double().cpu(), w.double().cpu(), **tolerance,
                                   msg=lambda message, name=name: f"{name}: {message}")


# ---------------------------------------------------------------- new cells against the float64 reference

@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("name", list(NEW))
def test_new_cell_matches_float64_reference(name, with_lengths):
    define(name)
    step, reference, *_, x_scale, R_scale = NEW[name]
    x, R, b, states = random_inputs(name, x_scale, R_scale)
    lengths = None
    kernel_x = x.clone()
    if with_lengths:
        lengths = torch.tensor([T, 4, 1])
        for row, length in enumerate(lengths.tolist()):  # past a length, NaN must reach nothing
            kernel_x[row, length:] = float("nan")
    seeds = [torch.randn(B, T, NH, DH, dtype=torch.float64), torch.randn(states.shape, dtype=torch.float64)]
    want = run_with_grads(lambda *a: reference_rnn(reference, *a, lengths=lengths), (x, R, b, states), seeds)

    inputs = [t.to(DEVICE, torch.float32) for t in (kernel_x, R, b, states)]
    got = run_with_grads(fusedrnn.rnn, inputs, [s.to(DEVICE) for s in seeds], cell=name, backend="triton",
                         lengths=None if lengths is None else lengths.to(DEVICE))
    for g in got:
        assert g.dtype == torch.float32 and torch.isfinite(g).all()
    assert_all_close(got, want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- every kernel code path, half precision

def reference_for_check(name, x, R, b, states=None, lengths=None):
    """kernel_check's reference form: (y, final) in float64 of the cell `name` of NEW."""
    return reference_rnn(NEW[name][1], x, R, b, states, lengths.to(x.device) if lengths is not None else None)


@pytest.mark.parametrize("variant", code_paths())
@pytest.mark.parametrize("name", ["tt_cifg", "tt_log_gru"])  # gates that are sums, and not
def test_new_cell_every_code_path(name, variant):
    from fusedrnn.backends.triton.explicit import with_variant

    define(name)
    run = "triton" if variant == "shipped" else with_variant(variant)
    check_backend(run, name, torch.float16, B=B, T=T, NH=NH, DH=DH, device=DEVICE, reference=reference_for_check)


# ---------------------------------------------------------------- the built-in cells, generated alike

@pytest.mark.parametrize("built_in", fusedrnn.cells.BUILT_IN)
def test_built_in_cell_matches_float64_reference(built_in):
    """The built-in cells' pointwise functions are generated from their steps as any cell's, and
    checked against tests/reference.py, written apart from fusedrnn's cells."""
    from fusedrnn.backends.triton.pointwise import pointwise

    cell = fusedrnn.CELLS[built_in]
    assert [f.__name__ for f in pointwise(cell)] == [f"{built_in}_forward", f"{built_in}_backward"]
    inputs = random_problem(built_in, B, T, NH, DH, dtype=torch.float64)
    lengths = torch.tensor([T, 4, 1])
    kernel_x = inputs[0].clone()
    for row, length in enumerate(lengths.tolist()):  # past a length, NaN must reach nothing
        kernel_x[row, length:] = float("nan")
    seeds = [torch.randn(B, T, NH, DH, dtype=torch.float64), torch.randn(inputs[3].shape, dtype=torch.float64)]
    want = run_with_grads(lambda *a: built_in_reference_rnn(built_in, *a, lengths=lengths), inputs, seeds)

    kernel_inputs = [t.to(DEVICE, torch.float32) for t in (kernel_x, *inputs[1:])]
    got = run_with_grads(fusedrnn.rnn, kernel_inputs, [s.to(DEVICE) for s in seeds], cell=built_in, backend="triton",
                         lengths=lengths.to(DEVICE))
    for g in got:
        assert g.dtype == torch.float32 and torch.isfinite(g).all()
    assert_all_close(got, want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- what the kernels cannot run

@pytest.mark.parametrize("counts, words", [
    (dict(gates_x=5, gates_r=5, gates_b=5, states=("h",)), ["gates_x=5"]),
    (dict(gates_x=1, gates_r=1, gates_b=5, states=("h",)), ["gates_b=5"]),
    (dict(gates_x=1, gates_r=1, gates_b=1, states=("h", "a", "b", "c", "e")), ["states=5"]),
])
def test_more_than_four_gates_or_states_refused(counts, words, request):
    def step(x, r, b, s):
        total = sum(x) + sum(r) + sum(b) + sum(s)
        return tuple(m.tanh(total + k) for k in range(len(s)))

    name = f"tt_wide_{request.node.callspec.id.split('-')[0]}"
    name = "".join(c if c.isalnum() else "_" for c in name)
    cell = fusedrnn.define_cell(name, step, **counts)
    x = torch.randn(2, 3, cell.gates_x, 1, 4)
    R = torch.randn(cell.gates_r, 1, 4, 4)
    b = torch.randn(cell.gates_b, 1, 4)
    with pytest.raises(ValueError, match="backend='triton' cannot run this call") as error:
        fusedrnn.rnn(x, R, b, cell=name, backend="triton")
    for word in [repr(name), *words]:
        assert word in str(error.value)
    y, _ = fusedrnn.rnn(x, R, b, cell=name, backend="torch")  # the torch backend runs it
    assert torch.isfinite(y).all()


# ---------------------------------------------------------------- generated modules: cache and kernel keys

def test_unwritable_cache_falls_back_to_a_temporary_directory(tmp_path, monkeypatch):
    from fusedrnn.backends.triton import cell_modules
    from fusedrnn.backends.triton.pointwise import pointwise

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(blocker))
    monkeypatch.setattr(cell_modules, "fallback_directory", None)
    cell = fusedrnn.define_cell("tt_fallback", relu6_step, gates_x=1, gates_r=1, gates_b=1, states=("h",))
    with pytest.warns(RuntimeWarning, match="FUSEDRNN_CACHE_DIR"):
        forward, _ = pointwise(cell)
    assert str(cell_modules.fallback_directory) in sys.modules[forward.fn.__module__].__file__
    x, R, b, _ = random_inputs("tt_fallback")
    y, _ = fusedrnn.rnn(x.float().to(DEVICE), R.float().to(DEVICE), b.float().to(DEVICE), cell="tt_fallback",
                        backend="triton")
    want, _ = reference_rnn(relu6_reference, x, R, b, torch.zeros(1, B, NH, DH, dtype=torch.float64))
    torch.testing.assert_close(y.double().cpu(), want, rtol=1e-4, atol=1e-5)


KERNEL_KEYS = textwrap.dedent("""
    import os, sys
    import fusedrnn
    from fusedrnn.backends.triton.pointwise import pointwise

    m = fusedrnn.cellmath
    def step(x, r, b, s):
        return m.tanh(x[0] + r[0] + b[0])

    one = fusedrnn.define_cell("tt_same_one", step, gates_x=1, gates_r=1, gates_b=1, states=("h",))
    two = fusedrnn.define_cell("tt_same_two", step, gates_x=1, gates_r=1, gates_b=1, states=("h",))
    functions = [*pointwise(one), *pointwise(two), *pointwise(fusedrnn.CELLS["elman"])]
    assert all(type(f).__name__ == "JITFunction" for f in functions), functions
    # Triton keys a compiled kernel on its CELL constant's cache_key (its source and what it calls)
    assert len({f.cache_key for f in functions}) == len(functions)
    assert pointwise(one) is pointwise(one)  # generated and imported once
    files = os.listdir(os.path.join(os.environ["FUSEDRNN_CACHE_DIR"], "triton_cells"))
    print(sum(f.endswith(".py") for f in files))
""")


def test_cells_with_the_same_math_never_share_a_kernel(tmp_path):
    """Compiled (not interpreted) Triton functions, in a process of their own: two cells
    of the same step under two names, and the built-in elman of that step too, get distinct
    kernel keys; a second process finds the same three files in the cache."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["FUSEDRNN_CACHE_DIR"] = str(tmp_path)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", KERNEL_KEYS], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["3"]
