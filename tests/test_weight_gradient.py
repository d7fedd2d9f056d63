"""dR from the gradients a kernel backward leaves behind (backends/weight_gradient.py):
drec where a cell's gates are not sums, dx itself where they are (no drec stored),
against an einsum over every step, for one head and several, fp32 and half types;
h entering every step read from y one row behind (no copy) or from a copy (resets),
and R h of a slice of the batch from either."""
import pytest
import torch

from fusedrnn.backends.weight_gradient import (drec_steps, dx_steps, entering_states, previous_states,
                                              recurrent_weight_gradient)


def reference(d_pre: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
    """dR[g, n, i, j] = sum over rows r of d_pre[r, g, n, i] h_prev[r, n, j], in float64."""
    return torch.einsum("rgni,rnj->gnij", d_pre.double(), h_prev.double())


def inputs(B, T, G, NH, DH, dtype):
    torch.manual_seed(B * 100 + NH)
    y = torch.randn(B, T, NH, DH).to(dtype)
    states = torch.randn(2, B, NH, DH).to(dtype)
    h = torch.cat([states[0][:, None], y[:, :-1]], 1).reshape(B * T, NH, DH)
    return y, states, h


def weight_gradients(d_rec, states, y, dtype):
    """dR the three ways a backward may take it: from the copy of h entering each step, and through
    EnteringStates without resets (y one row behind) and with resets none of which is set (the copy)."""
    B, T = y.shape[:2]
    no_resets = torch.zeros(B, T, dtype=torch.bool)
    return (recurrent_weight_gradient(d_rec, previous_states(states, y), dtype),
            entering_states(states, y).weight_gradient(d_rec, dtype),
            entering_states(states, y, no_resets).weight_gradient(d_rec, dtype))


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T", [1, 7])
@pytest.mark.parametrize("NH", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dR_from_dx_where_gates_are_sums(B, T, NH, dtype):
    G, DH = 4, 5
    y, states, h = inputs(B, T, G, NH, DH, dtype)
    dx = torch.randn(B, T, G, NH, DH).to(dtype)
    want = reference(dx.reshape(B * T, G, NH, DH), h)
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=5e-2)
    for got in weight_gradients(dx_steps(dx), states, y, dtype):
        assert got.shape == (G, NH, DH, DH) and got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tolerance)


@pytest.mark.parametrize("NH", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_dR_from_drec_where_gates_are_not_sums(NH, dtype):
    """drec in fp32 (Triton's) against y in the call's type, or both fp32."""
    B, T, G, DH = 2, 5, 3, 4
    y, states, h = inputs(B, T, G, NH, DH, dtype)
    drec = torch.randn(NH, B * T, G * DH)  # the kernels' layout [NH, B * T, GR * DH]
    want = reference(drec.view(NH, B * T, G, DH).permute(1, 2, 0, 3), h)
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-3, atol=5e-3)
    for got in weight_gradients(drec_steps(drec, DH), states, y, dtype):
        torch.testing.assert_close(got.double(), want, **tolerance)


def test_dR_without_a_copy_leaves_the_initial_states_as_they_were():
    B, T, G, NH, DH = 3, 4, 4, 2, 5
    y, states, _ = inputs(B, T, G, NH, DH, torch.float32)
    before = states.clone()
    entering_states(states, y).weight_gradient(dx_steps(torch.randn(B, T, G, NH, DH)), torch.float32)
    assert torch.equal(states, before)


@pytest.mark.parametrize("T", [1, 6])
@pytest.mark.parametrize("sequences", [slice(0, 4), slice(0, 2), slice(1, 3), slice(3, 4), slice(2, 9), slice(1, None)])
def test_R_h_of_a_slice_of_the_batch_with_and_without_a_copy(T, sequences):
    """times(): h entering every step of the slice's sequences (h_0 at t = 0, not the row before) times
    the weights, fp32, rows in y's order; with resets, from the initial states at each reset."""
    B, NH, DH, K = 4, 2, 5, 7
    y, states, h = inputs(B, T, 4, NH, DH, torch.float32)
    weights = torch.randn(NH, DH, K)
    start, stop, _ = sequences.indices(B)
    rows = slice(start * T, stop * T)
    want = torch.einsum("rnk,nkj->nrj", h.double()[rows], weights.double())
    got = entering_states(states, y).times(weights, sequences)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    resets = torch.rand(B, T, generator=torch.Generator().manual_seed(T)) < 0.4
    with_resets = previous_states(states, y, resets)[:, rows]
    got = entering_states(states, y, resets).times(weights, sequences)
    torch.testing.assert_close(got.double(), torch.einsum("nrk,nkj->nrj", with_resets.double(), weights.double()),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [1, 2, 9])
def test_previous_states_start_from_the_initial_state_at_each_reset(T):
    """h entering step t: the initial h at step 0 and wherever resets[b, t] is set (step 0's flag
    changes nothing), else y[b, t - 1]; a loop over every element as the reference."""
    B, NH, DH = 3, 2, 5
    y, states, _ = inputs(B, T, 4, NH, DH, torch.bfloat16)
    resets = torch.rand(B, T, generator=torch.Generator().manual_seed(T)) < 0.4
    resets[0, 0] = True
    got = previous_states(states, y, resets).transpose(0, 1).reshape(B, T, NH, DH)
    for b in range(B):
        for t in range(T):
            want = states[0, b] if t == 0 or resets[b, t] else y[b, t - 1]
            assert torch.equal(got[b, t], want), (b, t)
    assert torch.equal(previous_states(states, y, torch.zeros(B, T, dtype=torch.bool)), previous_states(states, y))
