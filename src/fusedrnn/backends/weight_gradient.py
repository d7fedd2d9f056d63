"""The parts of a fused backward that are one big GEMM or reduction, not a
time loop: dR from the drec the kernel wrote for every step, and db from its
per-batch-tile partial sums. Shared by the kernel backends."""
from __future__ import annotations

import contextlib

import torch


def previous_states(states: torch.Tensor, y: torch.Tensor, resets: torch.Tensor | None = None) -> torch.Tensor:
    """h entering every step, [NH, B * T, DH] (a strided view of one [B, T, NH, DH] copy,
    `entering_view` gives it back): the initial state for t = 0 and, where `resets` [B, T] is
    set, at t; y[:, t - 1] after. Two copies into one buffer (torch.cat over the time
    dimension took 76 us for 25 MB on the H100); with resets the second is a select (one pass over
    y either way: step 0 starts from the initial states, reset or not)."""
    B, T, NH, DH = y.shape
    h_prev = torch.empty_like(y)
    h_prev[:, 0] = states[0]
    if resets is None:
        h_prev[:, 1:] = y[:, :-1]
    else:
        torch.where(resets[:, 1:].reshape(B, T - 1, 1, 1), states[0].reshape(B, 1, NH, DH), y[:, :-1], out=h_prev[:, 1:])
    return h_prev.view(B * T, NH, DH).transpose(0, 1)


def entering_view(h_prev: torch.Tensor, B: int, T: int) -> torch.Tensor:
    """previous_states' result as the [B, T, NH, DH] buffer it views (y's layout)."""
    NH, _, DH = h_prev.shape
    return h_prev.transpose(0, 1).view(B, T, NH, DH)


def drec_steps(drec: torch.Tensor, DH: int) -> torch.Tensor:
    """The [NH, B * T, GR, DH] view of a drec buffer [NH, B * T, GR * DH] (what a kernel writes for a
    cell whose gates are not sums)."""
    NH, rows, width = drec.shape
    return drec.view(NH, rows, width // DH, DH)


def dx_steps(dx: torch.Tensor) -> torch.Tensor:
    """dx [B, T, GX, NH, DH] as the [NH, B * T, GX, DH] gradients of the recurrent pre-activations,
    a strided view: where every gate is the sum x_g + (R h)_g + b_g (Cell.gates_are_sums), drec is
    dx, and the kernels store it once (at B=256, hidden 768, an fp32 drec was 3.2 GB)."""
    B, T, GX, NH, DH = dx.shape
    return dx.view(B * T, GX, NH, DH).permute(2, 0, 1, 3)


def recurrent_weight_gradient(d_rec: torch.Tensor, h_prev: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """dR[g, n] = sum over rows r (every (b, t)) of d_rec[n, r, g]^T h_prev[n, r], h as the forward's
    product saw it. d_rec [NH, B * T, GR, DH] (drec_steps or dx_steps: any strides, units contiguous)
    in the storage type, the GEMM in it with fp32 accumulation, or fp32 (Triton's drec; TF32 for a
    half-precision call, its error far under a half dR's rounding). Returns [GR, NH, DH, DH]."""
    NH, rows, G, DH = d_rec.shape
    h_prev = h_prev.to(d_rec.dtype)
    with _tf32(d_rec.dtype == torch.float32 and dtype != torch.float32):
        if d_rec.stride(2) == DH:  # gates side by side (drec, or dx of one head): one GEMM
            dR = torch.bmm(d_rec.reshape(NH, rows, G * DH).transpose(1, 2), h_prev)  # [NH, G*DH, DH]
            return dR.view(NH, G, DH, DH).transpose(0, 1).to(dtype)
        dR = torch.empty((G, NH, DH, DH), dtype=d_rec.dtype, device=d_rec.device)
        for g in range(G):  # dx of several heads: a strided GEMM a gate, no copy of dx
            torch.bmm(d_rec[:, :, g].transpose(1, 2), h_prev, out=dR[g])
        return dR.to(dtype)


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
