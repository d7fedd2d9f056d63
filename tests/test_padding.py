"""Padding past a sequence's length never leaks into a result (issue 14, item 1).

x past each sequence's length is filled with NaN (or +Inf); every backend must
then give the very same y, final and gradients as the same call with zeros
there: y past a length exactly 0, the final states those at length - 1, and
the gradients of x past a length exactly 0, with no NaN in dR, db or the
gradient of the initial states. Kernels must select (where(valid, g, 0)), never
multiply by a mask: the cell's gradient at a NaN pre-activation is NaN even for
a zero upstream gradient, and 0 * NaN is NaN.

Nothing past a length may reach a result, so the two calls must agree bit for
bit (every backend is deterministic, test_cuda_fused.py and
test_cuda_alternating.py check that). torch and triton (the interpreter; every
code path through its explicit plans) run on CPU; cuda_fused, plan by plan (one
SM, the cooperative grid, the cluster, passed explicitly through the planned
call path), and cuda_alternating are marked gpu.
"""
import pytest
import torch

import fusedrnn
from fusedrnn.ops import registry
from fusedrnn.testing import random_problem

CELLS = list(fusedrnn.CELLS)
FILLS = {"nan": float("nan"), "inf": float("inf")}
LENGTHS = [[7, 4, 0], [5, 1, 7]]  # B = 3, T = 7: a full, a short and an empty (or one-step) sequence
B, T, NH = 3, 7, 2
NAMES = ("y", "final", "dx", "dR", "db", "dstates")

triton_ok = fusedrnn.backends()["triton"].available
needs_triton = pytest.mark.skipif(not triton_ok, reason=fusedrnn.backends()["triton"].reason)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _padded(x, lengths, value):
    """x with `value` in every step past each sequence's length."""
    x = x.clone()
    for i, length in enumerate(lengths.tolist()):
        x[i, length:] = value
    return x


def _run(backend, cell, x, R, b, states, lengths, dy, dfinal):
    """`backend`: a backend's name, or a function of rnn's call form (explicit plans)."""
    run = backend if callable(backend) else lambda *a, **k: fusedrnn.rnn(*a, backend=backend, **k)
    leaves = [t.detach().clone().requires_grad_() for t in (x, R, b, states)]
    y, final = run(*leaves, cell=cell, lengths=lengths)
    loss = (y.double() * dy).sum() + (final.double() * dfinal).sum()
    return [y.detach(), final.detach(), *torch.autograd.grad(loss, leaves)]


def check_padding(backend, cell, dtype, DH, lengths, fill, device, warm_up=False):
    lengths = torch.tensor(lengths, device=device)
    x, R, b, states = random_problem(cell, B, T, NH, DH, dtype=dtype, device=device)
    clean = _padded(x, lengths, 0.0)  # finite zeros in the padding
    dirty = _padded(x, lengths, FILLS[fill])
    dy = torch.randn(B, T, NH, DH, dtype=torch.float64, device=device)
    dfinal = torch.randn(states.shape, dtype=torch.float64, device=device)
    if warm_up:  # a call of the same shape first, so that both checked calls run alike (graph replays)
        _run(backend, cell, clean, R, b, states, lengths, dy, dfinal)
    want = _run(backend, cell, clean, R, b, states, lengths, dy, dfinal)
    got = _run(backend, cell, dirty, R, b, states, lengths, dy, dfinal)
    for name, g in zip(NAMES, got):
        if g.isnan().any():
            raise AssertionError(f"{name}: NaN from the {fill} padding")
    y, dx = got[0], got[2]
    for i, length in enumerate(lengths.tolist()):
        assert torch.equal(y[i, length:], torch.zeros_like(y[i, length:])), f"y of sequence {i} past its length"
        assert torch.equal(dx[i, length:], torch.zeros_like(dx[i, length:])), f"dx of sequence {i} past its length"
    for name, g, w in zip(NAMES, got, want):
        if not torch.isfinite(w).all():
            raise AssertionError(f"{name}: non-finite values in the call with zeros in the padding")
        assert g.dtype == w.dtype and g.shape == w.shape, name
        if not torch.equal(g, w):
            diff = (g.double() - w.double()).abs().max().item()
            raise AssertionError(f"{name}: differs from the call with zeros in the padding (max |diff| {diff:.3g})")


# ---- CPU: the torch loop and the Triton kernels under the interpreter ----

@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("cell", CELLS)
def test_torch(cell, fill, lengths):
    check_padding("torch", cell, torch.float32, 5, lengths, fill, "cpu")


def _interpreter_only():
    if torch.cuda.is_available():
        pytest.skip("interpreter test; the GPU runs test_triton_gpu")


# the interpreter takes ~2.5 s a case: every fill and lengths for the LSTM, one of each for the others
TRITON_CASES = [("lstm", fill, lengths) for fill in FILLS for lengths in LENGTHS] + [
    (cell, list(FILLS)[i % len(FILLS)], LENGTHS[i % len(LENGTHS)]) for i, cell in enumerate(c for c in CELLS if c != "lstm")]


@needs_triton
@pytest.mark.parametrize("cell,fill,lengths", TRITON_CASES)
def test_triton(cell, fill, lengths):
    _interpreter_only()
    check_padding("triton", cell, torch.float32, 12, lengths, fill, "cpu")


def _triton_code_paths():
    from fusedrnn.backends.triton.variants import code_paths

    return code_paths() if triton_ok else []


@needs_triton
@pytest.mark.parametrize("name", _triton_code_paths())
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_triton_code_paths(cell, name):
    """Every kernel code path (stacked gates, dx and db derived from drec, saved R h), in fp16
    (fp32 never stacks): lstm derives dx, db from drec, gru does not (sLSTM's paths are
    the LSTM's, test_triton.py runs them). The variant's plans are passed explicitly
    (explicit.with_variant)."""
    from fusedrnn.backends.triton.explicit import with_variant

    _interpreter_only()
    check_padding(with_variant(name), cell, torch.float16, 12, LENGTHS[0], "nan", "cpu")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("DH", [24, 64])
def test_triton_gpu(DH, dtype, cell, fill, lengths):
    check_padding("triton", cell, dtype, DH, lengths, fill, "cuda")


# ---- GPU: cuda_fused plan by plan, cuda_alternating ----

# (strategy, dtype): both directions of the call on one kernel family, planned explicitly (the
# planner narrowed to it): heads that fit one SM (DH=24) on one SM; larger ones (_head_dim) split
# over CTAs, on the cooperative grid or on a thread-block cluster (sm_90; the cluster backward in
# half types)
PLANS = [
    ("one_sm", torch.float32),
    ("one_sm", torch.bfloat16),
    ("grid", torch.bfloat16),
    ("grid", torch.float32),
    ("cluster", torch.bfloat16),
    ("cluster", torch.float16),
]


def _head_dim(strategy, cell):
    """24 fits one SM; 200 does not for the gated cells, 300 for the Elman ones (in every dtype)."""
    return 24 if strategy == "one_sm" else 300 if cell.startswith("elman") else 200


def _planned(forward, backward, dtype, DH, cell):
    """The call's plans, its forward on family `forward` and its backward on `backward`, for
    check_padding; skipped where the GPU cannot run them."""
    from fusedrnn.backends.cuda.fused.one_sm import fits_one_sm
    from kernel_check import device_limits, fused_plans, fused_problem, planned

    backend = registry.get("cuda_fused")
    ok, why = backend.supports(fused_problem(cell, dtype, B, T, NH, DH))
    if not ok:
        pytest.skip(why)
    assert fits_one_sm(cell, dtype, DH, B, device_limits()) == (forward == "one_sm")
    if "cluster" in (forward, backward) and torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("thread-block clusters need sm_90")
    plans = fused_plans(cell, dtype, B, T, NH, DH, forward=forward, backward=backward)
    assert [p.strategy for p in plans] == [forward, backward], plans
    return planned(*plans)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("strategy, dtype", PLANS, ids=[f"{p[0]}-{str(p[1])[6:]}" for p in PLANS])
def test_cuda_fused(strategy, dtype, cell, fill, lengths):
    DH = _head_dim(strategy, cell)
    run = _planned(strategy, strategy, dtype, DH, cell)
    check_padding(run, cell, dtype, DH, lengths, fill, "cuda")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "slstm"])
def test_cuda_fused_cluster_backward_of_one_sm_heads(cell, lengths):
    """Heads that fit one SM: the one-SM forward with the cluster backward, which such heads
    of 3 gates or more take from DH=64 in half types (cluster_backward.choose_cluster_backward)."""
    from fusedrnn.backends.cuda.fused.cluster_backward import choose_cluster_backward
    from kernel_check import device_limits

    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("thread-block clusters need sm_90")
    assert choose_cluster_backward(cell, torch.bfloat16, 64, B, NH, device_limits()) is not None
    run = _planned("one_sm", "cluster", torch.bfloat16, 64, cell)
    check_padding(run, cell, torch.bfloat16, 64, lengths, "nan", "cuda")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("DH", [24, 200])
def test_cuda_alternating(DH, dtype, cell, fill, lengths):
    check_padding("cuda_alternating", cell, dtype, DH, lengths, fill, "cuda", warm_up=True)
