"""Every cell through the torch backend vs the independent float64 loop."""
import pytest
import torch

import fusedrnn
from reference import COUNTS, random_problem, reference_rnn

CELLS = list(COUNTS)


def test_cells_listed():
    assert list(fusedrnn.CELLS) == CELLS
    for name, (gx, gr, gb, s) in COUNTS.items():
        spec = fusedrnn.CELLS[name]
        assert (spec.gates_x, spec.gates_r, spec.gates_b, spec.num_states) == (gx, gr, gb, s)
        assert spec.state_names[0] == "h"


def _grads(out, inputs, seed_grads):
    loss = sum((o * g).sum() for o, g in zip(out, seed_grads))
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_matches_reference_with_gradients(cell, with_lengths):
    B, T, NH, DH = 3, 37, 2, 5
    x, R, b, s = random_problem(cell, B, T, NH, DH)
    lengths = torch.tensor([T, 11, 1]) if with_lengths else None
    inputs = [t.requires_grad_() for t in (x, R, b, s)]
    y, final = fusedrnn.rnn(x, R, b, s, cell=cell, backend="torch", lengths=lengths)
    y_ref, final_ref = reference_rnn(cell, x, R, b, s, lengths)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(final, final_ref, rtol=1e-10, atol=1e-10)
    seeds = [torch.randn_like(y), torch.randn_like(final)]
    got = _grads((y, final), inputs, seeds)
    want = _grads((y_ref, final_ref), inputs, seeds)
    for name, g, w in zip(("x", "R", "b", "states"), got, want):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9, msg=lambda m: f"d{name}: {m}")


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck(cell):
    x, R, b, s = random_problem(cell, 2, 4, 2, 3)
    lengths = torch.tensor([4, 2])
    inputs = tuple(t.requires_grad_() for t in (x, R, b, s))
    fn = lambda *a: fusedrnn.rnn(*a, cell=cell, backend="torch", lengths=lengths)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_zero_initial_states(cell):
    x, R, b, _ = random_problem(cell, 2, 9, 3, 4, with_states=False)
    y, final = fusedrnn.rnn(x, R, b, cell=cell, backend="torch")
    y_ref, final_ref = reference_rnn(cell, x, R, b)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(final, final_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_carrying_final_equals_one_call(cell):
    x, R, b, s = random_problem(cell, 3, 23, 2, 5)
    y, final = fusedrnn.rnn(x, R, b, s, cell=cell, backend="torch")
    y1, mid = fusedrnn.rnn(x[:, :10], R, b, s, cell=cell, backend="torch")
    y2, end = fusedrnn.rnn(x[:, 10:], R, b, mid, cell=cell, backend="torch")
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(end, final, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_zero_outputs_and_final_at_last_valid_step(cell):
    B, T = 4, 13
    x, R, b, s = random_problem(cell, B, T, 1, 6)
    lengths = torch.tensor([13, 5, 0, 1])
    y, final = fusedrnn.rnn(x, R, b, s, cell=cell, backend="torch", lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        assert (y[i, n:] == 0).all()
        y_i, final_i = fusedrnn.rnn(x[i : i + 1, : max(n, 1)], R, b, s[:, i : i + 1], cell=cell, backend="torch")
        if n == 0:
            torch.testing.assert_close(final[:, i], s[:, i], rtol=0, atol=0)
        else:
            torch.testing.assert_close(y[i, :n], y_i[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(final[:, i], final_i[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_close_to_reference(cell, dtype):
    x, R, b, s = random_problem(cell, 3, 37, 2, 16)
    lowp = [t.to(dtype).requires_grad_() for t in (x, R, b, s)]
    y, final = fusedrnn.rnn(*lowp, cell=cell, backend="torch")
    assert y.dtype == final.dtype == dtype
    y_ref, _ = reference_rnn(cell, *[t.detach().double() for t in lowp])
    scale = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    err = (y.double() - y_ref).norm() / y_ref.norm()
    assert err < scale, err
    y.float().sum().backward()
    for t in lowp:
        assert t.grad is not None and t.grad.dtype == dtype and torch.isfinite(t.grad).all()
