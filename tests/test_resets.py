"""`resets`: a marked step starts from the initial states (issue 18). Checked against
a plain float64 loop written here (the cells' math from tests/reference.py, the
resets applied by this file's own loop, gradients by autograd), on the torch
backend and on the Triton kernels (on CPU through the interpreter, in fp32 and
fp16, by fusedrnn.testing's rule: at most twice the torch backend's error in the
same dtype); the cuda_fused kernels by the same check in tests/test_resets_cuda.py
(GPU), cuda_alternating's in tests/test_cuda_alternating_resets.py (GPU) and its
host loop in tests/test_cuda_alternating_host.py (CPU)."""
from __future__ import annotations

import pytest
import torch

import fusedrnn
from fusedrnn.backends.triton.variants import code_paths
from fusedrnn.ops import registry as backends
from fusedrnn.problem import problem_of
from reference import reference_step
from user_cells import cells_restored
from fusedrnn.testing import JUMP_SLACK, SANITY, SLACK, random_problem

m = fusedrnn.cellmath


def _gated_step(x, r, b, s):
    # a minimal gated unit with a second, accumulating state; the recurrent part of its
    # candidate is gated (not a plain sum), so the backward's per-gate path runs too
    f = m.sigmoid(x[0] + r[0] + b[0])
    n = m.tanh(x[1] + b[1] + f * (r[1] + b[2]))
    h = (1 - f) * s[0] + f * n
    return h, 0.5 * s[1] + h


def _gated_reference(xt, hR, b, s):
    f = torch.sigmoid(xt[:, 0] + hR[:, 0] + b[0])
    n = torch.tanh(xt[:, 1] + b[1] + f * (hR[:, 1] + b[2]))
    h = (1 - f) * s[0] + f * n
    return [h, 0.5 * s[1] + h]


CUSTOM = "t_resets_gated"
CELLS = ["lstm", "gru", "elman", "elman_relu", "slstm", CUSTOM]
needs_triton = pytest.mark.skipif(not fusedrnn.backends()["triton"].available,
                                  reason=fusedrnn.backends()["triton"].reason)
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # on CPU: the interpreter (conftest.py)
BACKENDS = ["torch", pytest.param("triton", marks=needs_triton)]


def _where(backend):
    """(dtype, device) a backend's checks run in: float64 on CPU for torch, fp32 for Triton's kernels."""
    return (torch.float64, "cpu") if backend == "torch" else (torch.float32, TRITON_DEVICE)


@pytest.fixture(autouse=True)
def _custom_cell():
    """The define_cell cell, registered for each test and removed after it, so that
    other test files collected in the same process never see it."""
    with cells_restored():
        fusedrnn.define_cell(CUSTOM, _gated_step, gates_x=2, gates_r=2, gates_b=3, states=("h", "a"))
        yield


def _step(cell, xt, hR, b, s):
    return _gated_reference(xt, hR, b, s) if cell == CUSTOM else reference_step(cell, xt, hR, b, s)


def reference_with_resets(cell, x, R, b, states, lengths, resets):
    """y [B, T, NH, DH], final [S, B, NH, DH]: one loop, each sample's state
    replaced by its initial one at a reset inside its length."""
    B, T, _, NH, DH = x.shape
    S = fusedrnn.CELLS[cell].num_states
    initial = [x.new_zeros(B, NH, DH) for _ in range(S)] if states is None else list(states.unbind(0))
    length = torch.full((B,), T) if lengths is None else lengths
    s, ys = list(initial), []
    for t in range(T):
        live = (t < length).view(B, 1, 1)
        restart = (resets[:, t] & (t < length)).view(B, 1, 1)
        s = [torch.where(restart, a, o) for a, o in zip(initial, s)]
        hR = torch.einsum("bnj,gnij->bgni", s[0], R)
        new = _step(cell, x[:, t], hR, b, s)
        s = [torch.where(live, a, o) for a, o in zip(new, s)]
        ys.append(torch.where(live, s[0], torch.zeros_like(s[0])))
    return torch.stack(ys, 1), torch.stack(s)


def _inputs(cell, B, T, NH, DH, with_states):
    spec = fusedrnn.CELLS[cell]
    if cell != CUSTOM:
        return random_problem(cell, B, T, NH, DH, with_states=with_states)
    x = torch.randn(B, T, spec.gates_x, NH, DH, dtype=torch.float64)
    R = torch.randn(spec.gates_r, NH, DH, DH, dtype=torch.float64) / DH**0.5
    b = torch.randn(spec.gates_b, NH, DH, dtype=torch.float64) * 0.5
    states = torch.randn(spec.num_states, B, NH, DH, dtype=torch.float64) if with_states else None
    return x, R, b, states


def _grads(run, inputs, wy, wf):
    inputs = [None if t is None else t.detach().clone().requires_grad_() for t in inputs]
    y, final = run(*inputs)
    loss = (y * wy).sum() + (final * wf).sum()
    wanted = [t for t in inputs if t is not None]
    return y.detach(), final.detach(), torch.autograd.grad(loss, wanted)


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("with_states", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_resets_match_the_reference(cell, with_states, with_lengths):
    B, T, NH, DH = 5, 9, 2, 3
    x, R, b, states = _inputs(cell, B, T, NH, DH, with_states)
    resets = torch.rand(B, T) < 0.3
    resets[0, 0] = resets[1, 4] = True  # a reset at step 0 is the start it already is
    lengths = torch.tensor([9, 6, 0, 3, 8]) if with_lengths else None
    if with_lengths:
        resets[3, 5:] = True  # past its length: changes nothing
    S = fusedrnn.CELLS[cell].num_states
    wy, wf = torch.randn(B, T, NH, DH, dtype=torch.float64), torch.randn(S, B, NH, DH, dtype=torch.float64)
    poisoned = x.clone()
    if with_lengths:  # values past a length never reach an output or a gradient
        past = torch.arange(T)[None, :] >= lengths[:, None]
        poisoned[past] = float("nan")
        x = torch.where(past[:, :, None, None, None], 0.0, x)  # the reference sees clean padding

    def ours(x, R, b, states=None):
        return fusedrnn.rnn(x, R, b, states, cell=cell, backend="torch", lengths=lengths, resets=resets)

    def theirs(x, R, b, states=None):
        return reference_with_resets(cell, x, R, b, states, lengths, resets)

    got = _grads(ours, (poisoned, R, b, states), wy, wf)
    want = _grads(theirs, (x, R, b, states), wy, wf)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    names = ["x", "R", "b", "states"]
    for name, g, w in zip(names, got[2], want[2]):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, w, msg=lambda text: f"d{name}: {text}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "slstm"])
def test_a_reset_at_step_t_equals_a_fresh_call_from_t(cell, backend):
    B, T, NH, DH, k = 3, 8, 2, 4, 5
    dtype, device = _where(backend)
    x, R, b, states = random_problem(cell, B, T, NH, DH, dtype=dtype, device=device)
    resets = torch.zeros(B, T, dtype=torch.bool, device=device)
    resets[:, k] = True
    y, final = fusedrnn.rnn(x, R, b, states, cell=cell, backend=backend, resets=resets)
    head, _ = fusedrnn.rnn(x[:, :k], R, b, states, cell=cell, backend=backend)
    tail, tail_final = fusedrnn.rnn(x[:, k:], R, b, states, cell=cell, backend=backend)
    torch.testing.assert_close(y, torch.cat([head, tail], 1))
    torch.testing.assert_close(final, tail_final)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_gradient_crosses_a_reset(backend):
    dtype, device = _where(backend)
    x, R, b, states = (t.requires_grad_() for t in random_problem("lstm", 2, 6, 1, 3, dtype=dtype, device=device))
    resets = torch.zeros(2, 6, dtype=torch.bool, device=device)
    resets[:, 3] = True
    y, _ = fusedrnn.rnn(x, R, b, states, backend=backend, resets=resets)
    dx, = torch.autograd.grad(y[:, 3:].sum(), x)
    assert (dx[:, :3] == 0).all() and (dx[:, 3:] != 0).any()


def test_first_order_gradients_by_gradcheck():
    x, R, b, states = (t.requires_grad_() for t in random_problem("gru", 2, 5, 1, 2))
    resets = torch.tensor([[False, False, True, False, True], [True, True, False, False, False]])
    lengths = torch.tensor([5, 3])
    run = lambda *a: fusedrnn.rnn(*a, cell="gru", backend="torch", lengths=lengths, resets=resets)  # noqa: E731
    assert torch.autograd.gradcheck(run, (x, R, b, states))


def test_auto_runs_resets_on_the_torch_backend():
    x, R, b, states = random_problem("lstm", 3, 5, 2, 4, dtype=torch.float32)
    resets = torch.rand(3, 5) < 0.4
    got = fusedrnn.rnn(x, R, b, states, resets=resets)
    want = fusedrnn.rnn(x, R, b, states, backend="torch", resets=resets)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


# ---------------------------------------------------------------- the Triton kernels

def _triton(variant="shipped"):
    """The Triton kernels in rnn's call form: through the backend's ops as shipped, or with
    a variant's plans passed explicitly (every other code path of variants.py)."""
    if variant == "shipped":
        return lambda *a, **k: fusedrnn.rnn(*a, backend="triton", **k)
    from fusedrnn.backends.triton.explicit import with_variant

    return with_variant(variant)


def _marked_resets(B, T, lengths):
    """Random resets plus the cases a kernel may get wrong: step 0 (a no-op), the last
    step, consecutive steps, and (with lengths) resets past a length, which change nothing."""
    resets = torch.rand(B, T) < 0.25
    resets[0, 0] = resets[0, T - 1] = True
    resets[1, 1] = resets[1, 2] = resets[1, 3] = True
    if lengths is not None:
        resets[:, -1] |= lengths < T
    return resets


def edge_resets(lengths, T):
    """[B, T] resets at each sequence's length (changes nothing), its last valid step and step 1,
    where inside the call: the deterministic edges of the kernels' length and reset tests."""
    resets = torch.zeros(len(lengths), T, dtype=torch.bool)
    for b, length in enumerate(lengths.tolist()):
        for t in (length, length - 1, 1):
            if 0 <= t < T:
                resets[b, t] = True
    return resets


def check_triton_resets(cell, dtype, B, T, NH, DH, with_states=True, lengths=None, resets=None,
                        variant="shipped"):
    """check_kernel_resets on the Triton kernels, as shipped or as a variant's plans."""
    check_kernel_resets(_triton(variant), TRITON_DEVICE, cell, dtype, B, T, NH, DH, with_states, lengths, resets,
                        explicit=variant != "shipped")


def check_kernel_resets(run, device, cell, dtype, B, T, NH, DH, with_states=True, lengths=None, resets=None,
                        explicit=False):
    """A kernel backend's `run` (fusedrnn.rnn's call form; `explicit`: an explicit path, which
    takes the states as rnn passes them) with resets (and lengths, with NaN past them) against
    the float64 reference of this file, from the same rounded inputs: y, final and the
    gradients of x, R, b and the initial states, each within fusedrnn.testing's rule (at most
    twice the torch backend's error in `dtype`, plus its slack, and under its sanity bound)."""
    x, R, b, states = _inputs(cell, B, T, NH, DH, with_states)
    if states is None and explicit:
        states = torch.zeros(fusedrnn.CELLS[cell].num_states, B, NH, DH, dtype=torch.float64)
    x, R, b, states = (None if t is None else t.to(dtype).double() for t in (x, R, b, states))
    resets = _marked_resets(B, T, lengths) if resets is None else resets
    S = fusedrnn.CELLS[cell].num_states
    wy, wf = torch.randn(B, T, NH, DH, dtype=torch.float64), torch.randn(S, B, NH, DH, dtype=torch.float64)
    if cell == "slstm" and dtype != torch.float32:
        wf[1:] = 0  # its stabiliser routes m's gradient by a rounding-close max (fusedrnn.testing)
    clean, poisoned = x, x.clone()
    if lengths is not None:  # values past a length never reach an output or a gradient
        past = torch.arange(T)[None, :] >= lengths[:, None]
        poisoned[past] = float("nan")
        clean = torch.where(past[:, :, None, None, None], 0.0, x)
    reference = _grads(lambda *a: reference_with_resets(cell, *a, lengths, resets), (clean, R, b, states), wy, wf)

    def on(backend_run, where):
        inputs = [None if t is None else t.to(where, dtype) for t in (poisoned, R, b, states)]
        run = lambda x, R, b, s: backend_run(  # noqa: E731
            x, R, b, s, cell=cell, lengths=None if lengths is None else lengths.to(where), resets=resets.to(where))
        y, final, grads = _grads(run, inputs, wy.to(where), wf.to(where))
        return [t.cpu() for t in (y, final, *grads)]

    got = on(run, device)
    torch_got = on(lambda *a, **k: fusedrnn.rnn(*a, backend="torch", **k), "cpu")
    want = [reference[0], reference[1], *reference[2]]
    names = ["y", "final", "dx", "dR", "db", "dstates"]
    slack = SLACK[dtype] + JUMP_SLACK.get(cell, {}).get(dtype, 0.0)
    for name, g, base, w in zip(names, got, torch_got, want):
        assert g.dtype == dtype and g.shape == w.shape, (name, g.dtype, g.shape)
        assert torch.isfinite(g).all(), f"{name}: non-finite values"
        norm = w.norm().item() or 1.0
        err, err_torch = ((g.double() - w).norm().item() / norm, (base.double() - w).norm().item() / norm)
        assert err <= 2 * err_torch + slack and err <= SANITY[dtype], (
            f"{name}: error {err:.3g}, torch's {err_torch:.3g} (slack {slack:.3g}, bound {SANITY[dtype]:.3g})")


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("with_states", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_triton_resets_match_the_reference(cell, with_states, with_lengths, dtype):
    # odd sizes: DH=3 padded to the kernels' 16, a batch tile mostly padding
    lengths = torch.tensor([9, 6, 0, 3, 8]) if with_lengths else None
    check_triton_resets(cell, dtype, B=5, T=9, NH=2, DH=3, with_states=with_states, lengths=lengths)


@needs_triton
@pytest.mark.parametrize("variant", code_paths())
@pytest.mark.parametrize("cell", ["lstm", "gru", "slstm", CUSTOM])
def test_triton_variants_with_resets(cell, variant):
    # fp16: the stacked variants stack no fp32 gates (plan.stacks_gates)
    check_triton_resets(cell, torch.float16, B=4, T=7, NH=2, DH=16, lengths=torch.tensor([7, 5, 7, 2]),
                        variant=variant)


@needs_triton
@pytest.mark.parametrize("cell", ["lstm", CUSTOM])
def test_triton_resets_across_batch_tiles(cell):
    # B=37 at DH=16 is two tiles of 32: each branches on its own tile's restarts
    B, T = 37, 6
    resets = torch.zeros(B, T, dtype=torch.bool)
    resets[3, 2] = resets[35, 4] = resets[36, 4] = True  # step 2 in the first tile only, step 4 in the second
    resets[10:20, 5] = True
    lengths = torch.randint(1, T + 1, (B,))
    check_triton_resets(cell, torch.float32, B=B, T=T, NH=1, DH=16, lengths=lengths, resets=resets)


@needs_triton
def test_triton_resets_with_stacked_gates_in_pairs():
    # at DH_P=128 the backward holds the stacked R as two tiles of two gates (stacked.py)
    check_triton_resets("lstm", torch.float16, B=2, T=4, NH=1, DH=128, variant="stacked+drec-only")


@needs_triton
def test_triton_supports_resets():
    x, R, b, states = random_problem("lstm", 2, 4, 1, 16, dtype=torch.float32, device=TRITON_DEVICE)
    resets = torch.zeros(2, 4, dtype=torch.bool, device=TRITON_DEVICE)
    assert backends.get("triton").supports(problem_of(x, "lstm", None, True, resets)) == (True, "")


@pytest.mark.parametrize("bad, error, words", [
    (torch.zeros(3, 6, dtype=torch.bool), ValueError, ["resets", "(3, 5)", "(3, 6)"]),
    (torch.zeros(3, dtype=torch.bool), ValueError, ["resets", "2 dims", "(3,)"]),
    (torch.zeros(3, 5), TypeError, ["resets", "torch.bool", "torch.float32"]),
    (torch.zeros(3, 5, dtype=torch.int64), TypeError, ["resets", "torch.bool", "torch.int64"]),
    (torch.zeros(3, 5, dtype=torch.bool, device="meta"), ValueError, ["resets", "cpu", "meta"]),
    ([[False] * 5] * 3, TypeError, ["resets", "list"]),
])
def test_bad_resets_raise_naming_resets(bad, error, words):
    x, R, b, states = random_problem("lstm", 3, 5, 2, 4)
    with pytest.raises(error) as raised:
        fusedrnn.rnn(x, R, b, states, backend="torch", resets=bad)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resets_under_torch_compile_fullgraph(backend):
    dtype, device = _where(backend)
    x, R, b, states = random_problem("lstm", 3, 6, 2, 4, dtype=dtype, device=device)
    lengths = torch.tensor([6, 2, 5], device=device)
    resets = torch.rand(3, 6, device=device) < 0.35
    resets[0, 3] = True

    def loss(x, R, b, states, resets):
        y, final = fusedrnn.rnn(x * 1.5, R, b, states, backend=backend, lengths=lengths, resets=resets)
        return (y * y).sum() + final.sum()

    compiled = torch.compile(loss, fullgraph=True)
    inputs = [t.clone().requires_grad_() for t in (x, R, b, states)]
    got = compiled(*inputs, resets)
    got_grads = torch.autograd.grad(got, inputs)
    inputs = [t.clone().requires_grad_() for t in (x, R, b, states)]
    want = loss(*inputs, resets)
    want_grads = torch.autograd.grad(want, inputs)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)
    # fullgraph turns the TypeError into Dynamo's own error; its message is the argument's
    with pytest.raises(Exception, match="resets: expected dtype torch.bool, got torch.float32"):
        compiled(x, R, b, states, resets.float())


# ---------------------------------------------------------------- nn modules

def _segments(resets_b, T):
    """[(start, end)] of one sequence: a new segment at step 0 and at every reset."""
    starts = [0] + [t for t in range(1, T) if resets_b[t]]
    return list(zip(starts, starts[1:] + [T]))


def _module_reference(ours, x, h0, resets):
    """torch.nn's own module with the same weights, run on each segment of each
    sample apart from h0: a reset segment is its own sequence, in both directions
    and every layer. x [B, T, F] batch first, resets [B, T]; the final states are
    those of the last segment (the reverse direction's too)."""
    kind = type(ours).__name__
    extra = dict(proj_size=ours.proj_size) if kind == "LSTM" else {}
    theirs = getattr(torch.nn, kind)(ours.input_size, ours.hidden_size, ours.num_layers, bias=ours.bias,
                                     batch_first=True, bidirectional=ours.bidirectional, dtype=torch.float64,
                                     **extra)
    theirs.load_state_dict(ours.state_dict())
    B, T, _ = x.shape
    width = (ours.proj_size or ours.hidden_size) * (2 if ours.bidirectional else 1)
    outputs, finals = torch.zeros(B, T, width, dtype=x.dtype), []
    for i in range(B):
        for start, end in _segments(resets[i], T):
            hx = tuple(h[:, i:i + 1].contiguous() for h in h0)
            y, final = theirs(x[i:i + 1, start:end], hx if kind == "LSTM" else hx[0])
            outputs[i, start:end] = y[0]
        finals.append(final if kind == "LSTM" else (final,))
    return outputs, [torch.cat([f[s] for f in finals], 1) for s in range(len(finals[0]))]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_modules_with_resets(kind, batch_first, bidirectional):
    B, T, F, H, L = 3, 7, 5, 4, 2
    module = getattr(fusedrnn.nn, kind)(F, H, L, batch_first=batch_first, bidirectional=bidirectional,
                                         dtype=torch.float64)
    D = 2 if bidirectional else 1
    x = torch.randn(B, T, F, dtype=torch.float64)
    resets = torch.rand(B, T) < 0.3
    resets[0, 2] = resets[1, 6] = True
    h0 = [torch.randn(L * D, B, H, dtype=torch.float64) for _ in range(2 if kind == "LSTM" else 1)]
    hx = tuple(h0) if kind == "LSTM" else h0[0]
    given = x if batch_first else x.transpose(0, 1)
    output, hidden = module(given, hx, resets=resets if batch_first else resets.t())
    output = output if batch_first else output.transpose(0, 1)
    want_output, want_hidden = _module_reference(module, x, h0, resets)
    torch.testing.assert_close(output, want_output)
    for got, want in zip(hidden if kind == "LSTM" else (hidden,), want_hidden):
        torch.testing.assert_close(got, want)


def test_unbatched_module_with_resets():
    module = fusedrnn.nn.GRU(3, 4, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    resets = torch.tensor([False, False, True, False, False, True])
    output, hidden = module(x, resets=resets)
    batched, batched_hidden = module(x[:, None], resets=resets[:, None])
    torch.testing.assert_close(output, batched[:, 0])
    torch.testing.assert_close(hidden, batched_hidden[:, 0])
    want_output, _ = _module_reference(module, x[None], [torch.zeros(2, 1, 4, dtype=torch.float64)], resets[None])
    torch.testing.assert_close(output, want_output[0])


def test_modules_reject_bad_resets():
    module = fusedrnn.nn.LSTM(3, 4, batch_first=False, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)  # [T, B, F]
    with pytest.raises(ValueError, match=r"resets: expected shape \[T, B\] = \(6, 2\), got \(2, 6\)"):
        module(x, resets=torch.zeros(2, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="resets: expected dtype torch.bool, got torch.float64"):
        module(x, resets=torch.zeros(6, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="resets"):
        module(x, resets=torch.zeros(6, 2, dtype=torch.bool, device="meta"))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_projected_lstm_with_resets(bidirectional):
    B, T, F, H, P, D = 2, 6, 3, 5, 2, 2 if bidirectional else 1
    module = fusedrnn.nn.LSTM(F, H, batch_first=True, bidirectional=bidirectional, proj_size=P,
                              dtype=torch.float64)
    x = torch.randn(B, T, F, dtype=torch.float64)
    resets = torch.tensor([[False, True, False, False, True, False], [False, False, False, True, False, False]])
    h0 = [torch.randn(D, B, P, dtype=torch.float64), torch.randn(D, B, H, dtype=torch.float64)]
    output, (h, c) = module(x, tuple(h0), resets=resets)
    want_output, (want_h, want_c) = _module_reference(module, x, h0, resets)
    torch.testing.assert_close(output, want_output)
    torch.testing.assert_close(h, want_h)
    torch.testing.assert_close(c, want_c)


@needs_triton
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_modules_with_resets_on_triton(kind):
    # the layers hand each direction's resets to rnn(); the reverse direction's are flipped
    # inside each length, so the kernels see resets next to padding and at step 0
    B, T, F, H, L = 3, 7, 5, 16, 2
    modules = [getattr(fusedrnn.nn, kind)(F, H, L, batch_first=True, bidirectional=True, backend=backend)
               for backend in ("torch", "triton")]
    modules[1].load_state_dict(modules[0].state_dict())
    modules[1].to(TRITON_DEVICE)
    x = torch.randn(B, T, F)
    resets = torch.rand(B, T) < 0.3
    resets[0, 2] = resets[1, 6] = resets[2, 0] = True
    results = []
    for module, device in zip(modules, ("cpu", TRITON_DEVICE)):
        given = x.to(device).requires_grad_()
        output, _ = module(given, resets=resets.to(device))
        grads = torch.autograd.grad((output * output).sum(), [given, *module.parameters()])
        results.append([output.detach().cpu(), *(g.cpu() for g in grads)])
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_forward_mode_and_double_backward_see_the_resets():
    x, R, b, states = random_problem("lstm", 2, 5, 1, 3)
    resets = torch.tensor([[False, False, True, False, False], [False, True, False, False, True]])
    ours = lambda *a: fusedrnn.rnn(*a, backend="torch", resets=resets)  # noqa: E731
    theirs = lambda *a: reference_with_resets("lstm", *a, None, resets)  # noqa: E731
    tangents = tuple(torch.randn_like(t) for t in (x, R, b, states))
    got = torch.func.jvp(ours, (x, R, b, states), tangents)[1]
    want = torch.func.jvp(theirs, (x, R, b, states), tangents)[1]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    grads = []
    for run in (ours, theirs):
        inputs = [t.clone().requires_grad_() for t in (x, R, b, states)]
        y, final = run(*inputs)
        dx, = torch.autograd.grad((y * y).sum() + final.sum(), inputs[0], create_graph=True)
        grads.append(torch.autograd.grad((dx * dx).sum(), inputs))
    for g, w in zip(*grads):
        torch.testing.assert_close(g, w)
