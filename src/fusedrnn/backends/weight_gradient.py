"""The parts of a fused backward that are one big GEMM or reduction, not a
time loop: dR from the drec the kernel wrote for every step, and db from its
per-batch-tile partial sums. Shared by the kernel backends."""
from __future__ import annotations

import contextlib

import torch


def recurrent_weight_gradient(drec: torch.Tensor, states: torch.Tensor, y: torch.Tensor, gates_r: int,
                              dtype: torch.dtype) -> torch.Tensor:
    """dR[g, n] = sum over (b, t) of drec[b, t, g, n]^T h_{t-1}[b, n], with h as the
    forward's matmul saw it. drec is [NH, B * T, GR * DH] fp32; returns [GR, NH, DH, DH]."""
    B, T, NH, DH = y.shape
    h_prev = torch.cat([states[0].unsqueeze(1), y[:, :-1]], dim=1).float().view(B * T, NH, DH).transpose(0, 1)
    with _tf32(dtype != torch.float32):  # tf32 error is far under the rounding of a half-precision dR
        dR = torch.bmm(drec.transpose(1, 2), h_prev)  # [NH, GR*DH, DH]
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
