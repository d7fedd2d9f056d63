"""dR from the gradients a kernel backward leaves behind (backends/weight_gradient.py):
drec where a cell's gates are not sums, dx itself where they are (no drec stored),
against an einsum over every step, for one head and several, fp32 and half types."""
import pytest
import torch

from fusedrnn.backends.weight_gradient import drec_steps, dx_steps, previous_states, recurrent_weight_gradient


def reference(d_pre: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
    """dR[g, n, i, j] = sum over rows r of d_pre[r, g, n, i] h_prev[r, n, j], in float64."""
    return torch.einsum("rgni,rnj->gnij", d_pre.double(), h_prev.double())


def inputs(B, T, G, NH, DH, dtype):
    torch.manual_seed(B * 100 + NH)
    y = torch.randn(B, T, NH, DH).to(dtype)
    states = torch.randn(2, B, NH, DH).to(dtype)
    h = torch.cat([states[0][:, None], y[:, :-1]], 1).reshape(B * T, NH, DH)
    return y, states, h


@pytest.mark.parametrize("NH", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dR_from_dx_where_gates_are_sums(NH, dtype):
    B, T, G, DH = 3, 7, 4, 5
    y, states, h = inputs(B, T, G, NH, DH, dtype)
    dx = torch.randn(B, T, G, NH, DH).to(dtype)
    got = recurrent_weight_gradient(dx_steps(dx), previous_states(states, y), dtype)
    want = reference(dx.reshape(B * T, G, NH, DH), h)
    assert got.shape == (G, NH, DH, DH) and got.dtype == dtype
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(got.double(), want, **tolerance)


@pytest.mark.parametrize("NH", [1, 3])
def test_dR_from_drec_where_gates_are_not_sums(NH):
    B, T, G, DH = 2, 5, 3, 4
    y, states, h = inputs(B, T, G, NH, DH, torch.float32)
    drec = torch.randn(NH, B * T, G * DH)  # the kernels' layout [NH, B * T, GR * DH]
    got = recurrent_weight_gradient(drec_steps(drec, DH), previous_states(states, y), torch.float32)
    want = reference(drec.view(NH, B * T, G, DH).permute(1, 2, 0, 3), h)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


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
