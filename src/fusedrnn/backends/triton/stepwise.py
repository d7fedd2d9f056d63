"""Heads too large for one SM, a kernel a step (design (a) of docs/perf-notes.md, 2026-12-07):
each launch runs one step of the whole batch, every program a tile of BLOCK_U units of one
head and BLOCK_B sequences, reading its rows of R from L2 (the GEMM over K = DH in tiles of
BLOCK_K, one tl.dot a gate) and running the cell on them in the epilogue. States are carried
between launches in fp32 buffers, h in the storage type (what the next product reads, as the
other kernels round it). Forward only, for now: a prototype whose speed is still to be
measured (tools/fused_step_probe.py times the LSTM form of the same design).

Tiles are [BLOCK_U, BLOCK_B] (units x batch), as the persistent kernels' (tiles.py), so the
cells' generated functions (pointwise.py) run on them unchanged. Lengths: past a sequence's
length its states stay and y is zero. Resets: the launch of step t hands on the initial
states (and h) where step t + 1 restarts within the sequence's length.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...cells import get_cell
from ...ops import outputs
from .pointwise import pointwise
from .tiles import load_slices, mask_and, store_slices


@triton.jit
def _gate_product(R_ptr, h, rows, ks, kmask, g: tl.constexpr, GR: tl.constexpr, NH, DH, acc,
                  PRECISION: tl.constexpr):
    """acc += R[g, n][rows, ks] @ h (h: [BLOCK_K, BLOCK_B]); `rows` hold (g-free) row offsets of head n."""
    if g < GR:
        w = tl.load(R_ptr + g * NH * DH * DH + rows + ks[None, :], mask=kmask, other=0.0)
        acc = tl.dot(w, h, acc, input_precision=PRECISION)
    return acc


@triton.jit(do_not_specialize=["t", "B", "T"])
def step_forward_kernel(
    x_ptr, R_ptr, b_ptr, s0_ptr, len_ptr, resets_ptr,  # inputs; s0: the initial states [S, B, NH, DH]
    h_ptr, h_next_ptr, state_ptr,  # h entering step t and leaving it [B, NH, DH]; carried states [S, B, NH, DH] fp32
    y_ptr, t, B, T,
    NH: tl.constexpr, DH: tl.constexpr, GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, CELL: tl.constexpr,
    FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr, HAS_RESETS: tl.constexpr, PRECISION: tl.constexpr,
):
    tiles_a_head = tl.cdiv(DH, BLOCK_U)
    n = tl.program_id(0) // tiles_a_head
    units = (tl.program_id(0) % tiles_a_head * BLOCK_U + tl.arange(0, BLOCK_U))[:, None]
    batch = (tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B))[None, :]
    mask = (units < DH) & (batch < B)
    zero = tl.zeros((BLOCK_U, BLOCK_B), dtype=tl.float32)

    # r_g = R[g, n] h_{t-1} for the tile's units: K = DH in tiles
    rows = n * DH * DH + units * DH
    r0, r1, r2, r3 = zero, zero, zero, zero
    for k0 in range(0, DH, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        h = tl.load(h_ptr + batch * NH * DH + n * DH + ks[:, None], mask=(ks[:, None] < DH) & (batch < B), other=0.0)
        kmask = (units < DH) & (ks[None, :] < DH)
        r0 = _gate_product(R_ptr, h, rows, ks, kmask, 0, GR, NH, DH, r0, PRECISION)
        r1 = _gate_product(R_ptr, h, rows, ks, kmask, 1, GR, NH, DH, r1, PRECISION)
        r2 = _gate_product(R_ptr, h, rows, ks, kmask, 2, GR, NH, DH, r2, PRECISION)
        r3 = _gate_product(R_ptr, h, rows, ks, kmask, 3, GR, NH, DH, r3, PRECISION)

    # the epilogue: the cell on the tile
    head = n * DH + units
    state_offsets = batch * NH * DH + head
    state_stride = B * NH * DH
    gate_stride = NH * DH
    x0, x1, x2, x3 = load_slices(x_ptr + (batch * T + t) * GX * NH * DH + head, 0, mask, GX, gate_stride, zero)
    b0, b1, b2, b3 = load_slices(b_ptr + head, 0, units < DH, GB, gate_stride, tl.zeros((BLOCK_U, 1), tl.float32))
    s0, s1, s2, s3 = load_slices(state_ptr + state_offsets, 0, mask, S, state_stride, zero)
    n0, n1, n2, n3 = CELL(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST_MATH)
    out = n0
    if HAS_LENGTHS:
        lengths = tl.load(len_ptr + batch, mask=batch < B, other=0)
        valid = t < lengths
        n0, n1, n2, n3 = (tl.where(valid, n0, s0), tl.where(valid, n1, s1), tl.where(valid, n2, s2),
                          tl.where(valid, n3, s3))
        out = tl.where(valid, out, 0.0)
    tl.store(y_ptr + (batch * T + t) * NH * DH + head, out.to(y_ptr.dtype.element_ty), mask=mask)
    if HAS_RESETS:  # step t + 1 restarts: it starts from the initial states (within its length)
        restart = tl.load(resets_ptr + batch * T + t + 1, mask=mask_and(batch < B, t + 1 < T), other=0) != 0
        if HAS_LENGTHS:
            restart = restart & (t + 1 < lengths)
        i0, i1, i2, i3 = load_slices(s0_ptr + state_offsets, 0, mask & restart, S, state_stride, zero)
        n0, n1, n2, n3 = (tl.where(restart, i0, n0), tl.where(restart, i1, n1), tl.where(restart, i2, n2),
                          tl.where(restart, i3, n3))
    store_slices(state_ptr + state_offsets, 0, mask, n0, n1, n2, n3, S, state_stride)
    tl.store(h_next_ptr + state_offsets, n0.to(h_next_ptr.dtype.element_ty), mask=mask)


def forward(x: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, lengths, cell: str,
            resets=None, *, block_u: int = 32, block_b: int = 32, block_k: int = 64, num_warps: int = 4):
    """y [B, T, NH, DH] and the final states [S, B, NH, DH] of `fusedrnn.rnn`'s call, a launch a step.
    `states` are the initial states (zeros where the call has none)."""
    spec = get_cell(cell)
    B, T, GX, NH, DH = x.shape
    x, R, b = x.contiguous(), R.contiguous(), b.contiguous()
    initial = states.contiguous()
    carried = initial.to(torch.float32, copy=True)
    h = [initial[0].clone(), outputs.empty(initial[0].shape, like=initial)]
    y = outputs.empty((B, T, NH, DH), like=x)
    block_u = min(block_u, max(16, triton.next_power_of_2(DH)))
    block_k = min(block_k, max(16, triton.next_power_of_2(DH)))
    block_b = min(block_b, max(16, triton.next_power_of_2(B)))
    grid = (NH * triton.cdiv(DH, block_u), triton.cdiv(B, block_b))
    has_lengths, has_resets = lengths is not None, resets is not None
    length_arg = lengths.to(device=x.device, dtype=torch.int32) if has_lengths else x
    reset_arg = resets.to(device=x.device, dtype=torch.uint8).contiguous() if has_resets else x
    forward_cell = pointwise(spec)[0]
    for t in range(T):
        step_forward_kernel[grid](
            x, R, b, initial, length_arg, reset_arg, h[t % 2], h[(t + 1) % 2], carried, y, t, B, T,
            NH=NH, DH=DH, GX=spec.gates_x, GR=spec.gates_r, GB=spec.gates_b, S=spec.num_states,
            BLOCK_U=block_u, BLOCK_B=block_b, BLOCK_K=block_k, CELL=forward_cell,
            FAST_MATH=x.dtype == torch.bfloat16, HAS_LENGTHS=has_lengths, HAS_RESETS=has_resets,
            PRECISION="ieee" if x.dtype == torch.float32 else "tf32", num_warps=num_warps)  # fp32 as fp32
    return y, carried.to(x.dtype)
