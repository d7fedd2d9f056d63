"""The parts of a fused backward that are one big GEMM or reduction, not a
time loop: dR from the drec the kernel wrote for every step, and db from its
per-batch-tile partial sums. Shared by the kernel backends."""
from __future__ import annotations

import contextlib

import torch


def previous_states(states: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """h entering every step, [NH, B * T, DH] (a strided view of one [B, T, NH, DH] copy):
    the initial state for t = 0, y[:, t - 1] after. Two copies into one buffer (torch.cat
    over the time dimension took 76 us for 25 MB on the H100)."""
    B, T, NH, DH = y.shape
    h_prev = torch.empty_like(y)
    h_prev[:, 0] = states[0]
    h_prev[:, 1:] = y[:, :-1]
    return h_prev.view(B * T, NH, DH).transpose(0, 1)


def recurrent_weight_gradient(drec: torch.Tensor, states: torch.Tensor, y: torch.Tensor, gates_r: int,
                              dtype: torch.dtype, h_prev: torch.Tensor | None = None) -> torch.Tensor:
    """dR[g, n] = sum over (b, t) of drec[b, t, g, n]^T h_{t-1}[b, n], with h as the
    forward's matmul saw it. drec is [NH, B * T, GR * DH], fp32 or (from a kernel that
    rounds it so) y's half type, where the GEMM runs in that type with fp32 accumulation;
    h_prev, previous_states(states, y) if the caller has it. Returns [GR, NH, DH, DH]."""
    B, T, NH, DH = y.shape
    if h_prev is None:
        h_prev = previous_states(states, y)
    if drec.dtype == torch.float32:
        with _tf32(dtype != torch.float32):  # tf32 error is far under the rounding of a half-precision dR
            dR = torch.bmm(drec.transpose(1, 2), h_prev.float())  # [NH, GR*DH, DH]
    else:
        dR = torch.bmm(drec.transpose(1, 2), h_prev.to(drec.dtype))
    return dR.view(NH, gates_r, DH, DH).transpose(0, 1).to(dtype)


def bias_gradient(db_partial: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """db from [tiles, GB, NH, DH] partial sums, added in a fixed order (deterministic)."""
    return db_partial.sum(0).to(dtype)


@contextlib.contextmanager
def _tf32(enabled: bool):
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled or previous
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
