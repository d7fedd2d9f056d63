"""The parts of a fused backward that are one big GEMM or reduction, not a
time loop: dR from the drec the kernel wrote for every step, and db from its
per-batch-tile partial sums; R h_{t-1} of every step where a backward recomputes
it. Shared by the kernel backends."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

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
    groups, dR = gemm_groups(d_rec, d_rec.dtype)
    h_prev = h_prev.to(d_rec.dtype)
    with _tf32(d_rec.dtype == torch.float32 and dtype != torch.float32):
        for d, out in groups:
            products(d.transpose(1, 2), h_prev, out)
    return dR.to(dtype)


def gemm_groups(d_rec: torch.Tensor, out_dtype: torch.dtype):
    """d_rec [NH, rows, GR, DH] as the operands of dR's GEMMs, each [NH, rows, K] with the [NH, K, DH]
    block of dR it fills, and dR [GR, NH, DH, DH] (in `out_dtype`) those blocks make up: all gates
    side by side in one GEMM where d_rec's layout allows (drec, or dx of one head), else a strided
    GEMM a gate (dx of several heads: no copy of dx)."""
    NH, rows, G, DH = d_rec.shape
    if d_rec.stride(2) == DH:
        out = torch.empty((NH, G * DH, DH), dtype=out_dtype, device=d_rec.device)
        return [(d_rec.reshape(NH, rows, G * DH), out)], out.view(NH, G, DH, DH).transpose(0, 1)
    dR = torch.empty((G, NH, DH, DH), dtype=out_dtype, device=d_rec.device)
    return [(d_rec[:, :, g], dR[g]) for g in range(G)], dR


def products(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = a @ b (batched), accumulated in fp32 and written in out's dtype (a's, or fp32 for half
    a and b). The CPU has no half GEMM with an fp32 output: there the same values are multiplied in
    fp32."""
    if out.dtype == a.dtype:
        return torch.bmm(a, b, out=out)
    if a.device.type == "cpu":
        return torch.bmm(a.to(out.dtype), b.to(out.dtype), out=out)
    return torch.bmm(a, b, out_dtype=out.dtype, out=out)


@dataclass(frozen=True)
class EnteringStates:
    """h_{t-1} of every step (h entering it): the initial h at t = 0 and at a reset, y[:, t - 1]
    after, as the forward's product saw it. With resets it is one copy (previous_states'; the
    kernels read it as h_entering). Without, it is never copied: a product reads y one row behind
    (rows of [B * T] in y's order) and then puts right the rows of t = 0, whose h is the initial
    state and not the previous sequence's last y (at B=256, T=1024, hidden 768 the copy was 0.4 GB
    of a training step, more than its gap to cuDNN's memory)."""
    y: torch.Tensor                # [B, T, NH, DH]
    initial: torch.Tensor          # [B, NH, DH]: h_0
    copy: torch.Tensor | None      # [NH, B * T, DH] (previous_states) with resets, else None

    def times(self, weights: torch.Tensor, sequences: slice) -> torch.Tensor:
        """h entering every step of `sequences` (a slice of the batch) times `weights` [NH, DH, K],
        fp32 accumulated and written: [NH, n * T, K], rows in y's order."""
        B, T, NH, _ = self.y.shape
        start, stop, _ = sequences.indices(B)
        out = torch.empty((NH, (stop - start) * T, weights.shape[-1]), dtype=torch.float32, device=self.y.device)
        if self.copy is not None:
            return products(self.copy[:, start * T:stop * T], weights, out)
        products(self.rows()[:, start * T:stop * T - 1], weights, out[:, 1:])
        # step 0 starts from h_0, not from the row before
        products(self.initial[start:stop].transpose(0, 1), weights, out.view(NH, stop - start, T, -1)[:, :, 0])
        return out

    def weight_gradient(self, d_rec: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """dR (recurrent_weight_gradient) from d_rec [NH, B * T, GR, DH] and these states."""
        if self.copy is not None:
            return recurrent_weight_gradient(d_rec, self.copy, dtype)
        B, T, NH, DH = self.y.shape
        G = d_rec.shape[2]
        rows = self.rows().to(d_rec.dtype)  # (a copy only for Triton's fp32 drec of a half call)
        groups, dR = gemm_groups(d_rec, torch.float32)
        with _tf32(d_rec.dtype == torch.float32 and dtype != torch.float32):
            for d, out in groups:  # every row r >= 1 against y's row r - 1, in fp32
                products(d[:, 1:].transpose(1, 2), rows[:, :-1], out)
        # The rows of t = 0 enter from h_0; those of b >= 1 met the last y of the sequence before
        # instead: add d[b, 0]^T (h_0[b] - y[b - 1, T - 1]) in fp32 (exact differences of half values).
        # A last y that is not finite (an fp16 elman_relu past 65504) makes dR NaN here, where the copy
        # gave a finite dR if the loss ignored that output: visible, and only where the forward overflowed.
        entering = self.initial.to(torch.float32, copy=True)  # [B, NH, DH]
        entering[1:] -= self.y[:-1, T - 1]
        first = d_rec[:, ::T].to(torch.float32).reshape(NH, B, G * DH)  # a copy of B rows
        correction = torch.bmm(first.transpose(1, 2), entering.transpose(0, 1))  # [NH, G * DH, DH]
        dR += correction.view(NH, G, DH, DH).transpose(0, 1)
        return dR.to(dtype)

    def rows(self) -> torch.Tensor:
        """y as [NH, B * T, DH] rows (a strided view)."""
        B, T, NH, DH = self.y.shape
        return self.y.view(B * T, NH, DH).transpose(0, 1)


def entering_states(states: torch.Tensor, y: torch.Tensor, resets: torch.Tensor | None = None) -> EnteringStates:
    """The h entering every step of a call whose forward gave y from `states` [S, B, NH, DH]."""
    copy = None if resets is None else previous_states(states, y, resets)
    return EnteringStates(y, states[0], copy)


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
