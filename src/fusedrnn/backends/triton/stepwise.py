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
from ..weight_gradient import bias_gradient, entering_states
from .pointwise import pointwise
from .saved import allocate, split
from .tiles import load_carried_states, load_slices, mask_and, save_carried_states, store_slices


@triton.jit
def _gate_product(R_ptr, h, rows, ks, kmask, g: tl.constexpr, GR: tl.constexpr, NH, DH, acc,
                  PRECISION: tl.constexpr):
    """acc += R[g, n][rows, ks] @ h (h: [BLOCK_K, BLOCK_B]); `rows` hold (g-free) row offsets of head n."""
    if g < GR:
        w = tl.load(R_ptr + g * NH * DH * DH + rows + ks[None, :], mask=kmask, other=0.0)
        acc = tl.dot(w, h, acc, input_precision=PRECISION)
    return acc


@triton.jit
def recurrent_products(R_ptr, h_rows, units, batch, n, B, NH, DH, GR: tl.constexpr, BLOCK_K: tl.constexpr,
                       PRECISION: tl.constexpr, zero):
    """r_g = R[g, n] h for the tile's units, g < GR (zero past), K = DH in tiles of BLOCK_K; h_rows
    points at each sequence's h of head n ([1, BLOCK_B])."""
    rows = n * DH * DH + units * DH
    r0, r1, r2, r3 = zero, zero, zero, zero
    for k0 in range(0, DH, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        h = tl.load(h_rows + ks[:, None], mask=(ks[:, None] < DH) & (batch < B), other=0.0)
        kmask = (units < DH) & (ks[None, :] < DH)
        r0 = _gate_product(R_ptr, h, rows, ks, kmask, 0, GR, NH, DH, r0, PRECISION)
        r1 = _gate_product(R_ptr, h, rows, ks, kmask, 1, GR, NH, DH, r1, PRECISION)
        r2 = _gate_product(R_ptr, h, rows, ks, kmask, 2, GR, NH, DH, r2, PRECISION)
        r3 = _gate_product(R_ptr, h, rows, ks, kmask, 3, GR, NH, DH, r3, PRECISION)
    return r0, r1, r2, r3


@triton.jit(do_not_specialize=["t", "B", "T"])
def step_forward_kernel(
    x_ptr, R_ptr, b_ptr, s0_ptr, len_ptr, resets_ptr,  # inputs; s0: the initial states [S, B, NH, DH]
    h_ptr, h_next_ptr, state_ptr,  # h entering step t and leaving it [B, NH, DH]; carried states [S, B, NH, DH] fp32
    y_ptr, saved_ptr, t, B, T,  # saved: states 1..S-1 entering each step and the last, [T + 1, S - 1, B, NH, DH]
    NH: tl.constexpr, DH: tl.constexpr, GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, CELL: tl.constexpr,
    FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr, HAS_RESETS: tl.constexpr, PRECISION: tl.constexpr,
    SAVE: tl.constexpr, WIDE_OFFSETS: tl.constexpr,
):
    tiles_a_head = tl.cdiv(DH, BLOCK_U)
    n = tl.program_id(0) // tiles_a_head
    units = (tl.program_id(0) % tiles_a_head * BLOCK_U + tl.arange(0, BLOCK_U))[:, None]
    batch = (tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B))[None, :]
    if WIDE_OFFSETS:  # int32 offsets unless a tensor has 2**31 elements (x at B=1024, T=1024, 4 x 768)
        batch = batch.to(tl.int64)
    mask = (units < DH) & (batch < B)
    zero = tl.zeros((BLOCK_U, BLOCK_B), dtype=tl.float32)

    r0, r1, r2, r3 = recurrent_products(R_ptr, h_ptr + batch * NH * DH + n * DH, units, batch, n, B, NH, DH, GR,
                                        BLOCK_K, PRECISION, zero)

    # the epilogue: the cell on the tile
    head = n * DH + units
    state_offsets = batch * NH * DH + head
    state_stride = (B * NH * DH).to(batch.dtype)  # int64 with WIDE_OFFSETS: the saved slots' offsets pass 2**31 first
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
    if SAVE:  # the states entering step t + 1 (the initial ones where it restarts)
        save_carried_states(saved_ptr + (t + 1) * (S - 1) * state_stride + state_offsets, mask, n1, n2, n3, S,
                            state_stride)


def wide_offsets(x: torch.Tensor, gates_r: int, num_states: int) -> bool:
    """Whether a buffer the kernels index (x and dx; drec [NH, B, T, GR, DH]; the saved states
    [T + 1, S - 1, B, NH, DH]) reaches 2**31 elements."""
    B, T, GX, NH, DH = x.shape
    return max(T * max(GX, gates_r), (T + 1) * (num_states - 1)) * B * NH * DH >= 2**31


def _blocks(B: int, DH: int, block_u: int, block_b: int, block_k: int) -> tuple[int, int, int]:
    """Tiles no wider than the call needs (tl.dot takes 16 at least)."""
    return (min(block_u, max(16, triton.next_power_of_2(DH))), min(block_b, max(16, triton.next_power_of_2(B))),
            min(block_k, max(16, triton.next_power_of_2(DH))))


def forward(x: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, lengths, cell: str,
            resets=None, need_saved: bool = False, *, block_u: int = 32, block_b: int = 32, block_k: int = 64,
            num_warps: int = 4):
    """y [B, T, NH, DH], the final states [S, B, NH, DH] and (need_saved) `saved`: the states 1..S-1
    entering each step and the last, [T + 1, S - 1, B, NH, DH] fp32, as the Triton backend's one flat
    buffer (saved.py, no products), of `fusedrnn.rnn`'s call, a launch a step. `states` are the
    initial states (zeros where the call has none)."""
    spec = get_cell(cell)
    B, T, GX, NH, DH = x.shape
    S = spec.num_states
    x, R, b = x.contiguous(), R.contiguous(), b.contiguous()
    initial = states.contiguous()
    carried = initial.to(torch.float32, copy=True)
    h = [initial[0].clone(), outputs.empty(initial[0].shape, like=initial)]
    y = outputs.empty((B, T, NH, DH), like=x)
    save = need_saved and S > 1
    saved, saved_states, _ = allocate(x, initial, cell, need_saved, "none")  # the Triton backend's `saved`
    if save:
        saved_states[0] = carried[1:]
    block_u, block_b, block_k = _blocks(B, DH, block_u, block_b, block_k)
    grid = (NH * triton.cdiv(DH, block_u), triton.cdiv(B, block_b))
    has_lengths, has_resets = lengths is not None, resets is not None
    length_arg = lengths.to(device=x.device, dtype=torch.int32) if has_lengths else x
    reset_arg = resets.to(device=x.device, dtype=torch.uint8).contiguous() if has_resets else x
    forward_cell = pointwise(spec)[0]
    for t in range(T):
        step_forward_kernel[grid](
            x, R, b, initial, length_arg, reset_arg, h[t % 2], h[(t + 1) % 2], carried, y,
            saved_states if save else carried, t, B, T,
            NH=NH, DH=DH, GX=spec.gates_x, GR=spec.gates_r, GB=spec.gates_b, S=S,
            BLOCK_U=block_u, BLOCK_B=block_b, BLOCK_K=block_k, CELL=forward_cell,
            FAST_MATH=x.dtype == torch.bfloat16, HAS_LENGTHS=has_lengths, HAS_RESETS=has_resets,
            PRECISION="ieee" if x.dtype == torch.float32 else "tf32", SAVE=save,
            WIDE_OFFSETS=wide_offsets(x, spec.gates_r, S), num_warps=num_warps)
    final = carried.to(x.dtype)
    return y, final, saved


@triton.jit(do_not_specialize=["t", "B", "T"])
def step_backward_kernel(
    x_ptr, R_ptr, b_ptr, len_ptr, resets_ptr,
    y_ptr, h0_ptr,  # y [B, T, NH, DH] and the initial h [B, NH, DH]: h entering step t is one of them
    saved_ptr, dy_ptr,  # states 1..S-1 entering each step [T + 1, S - 1, B, NH, DH] fp32; dy [B, T, NH, DH]
    carried_ptr, dinitial_ptr,  # gradients of the states entering step t + 1 and of the initial states, fp32
    drec_ptr, dx_ptr, db_ptr,  # drec [NH, B, T, GR, DH]; dx like x; db [T, tiles, GB, NH, DH] fp32
    t, B, T,
    NH: tl.constexpr, DH: tl.constexpr, GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, CELL: tl.constexpr,
    FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr, HAS_RESETS: tl.constexpr, PRECISION: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr,
):
    tiles_a_head = tl.cdiv(DH, BLOCK_U)
    n = tl.program_id(0) // tiles_a_head
    unit_index = tl.program_id(0) % tiles_a_head * BLOCK_U + tl.arange(0, BLOCK_U)
    units = unit_index[:, None]
    batch = (tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B))[None, :]
    if WIDE_OFFSETS:  # int32 offsets unless a tensor has 2**31 elements (x at B=1024, T=1024, 4 x 768)
        batch = batch.to(tl.int64)
    mask = (units < DH) & (batch < B)
    zero = tl.zeros((BLOCK_U, BLOCK_B), dtype=tl.float32)
    head = n * DH + units
    state_offsets = batch * NH * DH + head
    state_stride = (B * NH * DH).to(batch.dtype)  # int64 with WIDE_OFFSETS: the saved slots' offsets pass 2**31 first
    gate_stride = NH * DH
    if HAS_LENGTHS:
        lengths = tl.load(len_ptr + batch, mask=batch < B, other=0)
    else:
        lengths = T

    # what reaches h_t through step t + 1's product: sum over gates g and rows u of R[g, n][u, units] drec_{t+1}[g, u]
    through_next = zero
    if t + 1 < T:
        for g in range(GR):
            for k0 in range(0, DH, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                d = tl.load(drec_ptr + ((n * B + batch) * T + t + 1) * GR * DH + g * DH + ks[:, None],
                            mask=(ks[:, None] < DH) & (batch < B), other=0.0)
                w = tl.load(R_ptr + (g * NH + n) * DH * DH + ks[None, :] * DH + units,
                            mask=(units < DH) & (ks[None, :] < DH), other=0.0)
                through_next = tl.dot(w, d.to(w.dtype), through_next, input_precision=PRECISION)
        if HAS_RESETS:  # step t + 1 restarted from the initial h: its product's gradient is the initial h's
            restart_next = tl.load(resets_ptr + batch * T + t + 1, mask=batch < B, other=0) != 0
            restart_next = restart_next & (t + 1 < lengths)
            initial_h = dinitial_ptr + state_offsets
            tl.store(initial_h, tl.load(initial_h, mask=mask, other=0.0) + tl.where(restart_next, through_next, 0.0),
                     mask=mask)
            through_next = tl.where(restart_next, 0.0, through_next)

    # the states entering step t: the initial ones at step 0 and at a restart (their gradient goes
    # there and nothing crosses to step t - 1), else carried from step t - 1, whose h is y's row t - 1
    # (read in place: no copy of h entering every step)
    start = (t == 0) | tl.zeros((1, BLOCK_B), tl.int1)
    if HAS_RESETS:
        start = start | ((tl.load(resets_ptr + batch * T + t, mask=batch < B, other=0) != 0) & (t < lengths))
    h_entering = tl.where(start, h0_ptr + batch * NH * DH, y_ptr + (batch * T + t - 1) * NH * DH) + n * DH
    # step t again: R h_{t-1} for the tile's units, then the cell's backward
    r0, r1, r2, r3 = recurrent_products(R_ptr, h_entering, units, batch, n, B, NH, DH, GR, BLOCK_K, PRECISION, zero)
    x0, x1, x2, x3 = load_slices(x_ptr + (batch * T + t) * GX * NH * DH + head, 0, mask, GX, gate_stride, zero)
    b0, b1, b2, b3 = load_slices(b_ptr + head, 0, units < DH, GB, gate_stride, tl.zeros((BLOCK_U, 1), tl.float32))
    s0 = tl.load(h_entering + units, mask=mask, other=0.0).to(tl.float32)
    saved_at = saved_ptr + t * (S - 1) * state_stride + state_offsets  # the states entering step t
    s1, s2, s3 = load_carried_states(saved_at, mask, S, state_stride, zero)
    c0, c1, c2, c3 = load_slices(carried_ptr + state_offsets, 0, mask, S, state_stride, zero)
    live = t < lengths
    dy = tl.load(dy_ptr + (batch * T + t) * NH * DH + head, mask=mask, other=0.0).to(tl.float32)
    d0 = c0 + through_next + tl.where(live, dy, 0.0)
    dx0, dx1, dx2, dx3, dr0, dr1, dr2, dr3, db0, db1, db2, db3, ds0, ds1, ds2, ds3 = CELL(
        x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, c1, c2, c3, FAST_MATH)
    # past its length a step changes nothing: its gradients are zero and the states' pass through
    ds0, ds1, ds2, ds3 = (tl.where(live, ds0, d0), tl.where(live, ds1, c1), tl.where(live, ds2, c2),
                          tl.where(live, ds3, c3))
    store_slices(dx_ptr + (batch * T + t) * GX * NH * DH + head, 0, mask, tl.where(live, dx0, 0.0),
                 tl.where(live, dx1, 0.0), tl.where(live, dx2, 0.0), tl.where(live, dx3, 0.0), GX, gate_stride)
    store_slices(drec_ptr + ((n * B + batch) * T + t) * GR * DH + units, 0, mask, tl.where(live, dr0, 0.0),
                 tl.where(live, dr1, 0.0), tl.where(live, dr2, 0.0), tl.where(live, dr3, 0.0), GR, DH)
    db_at = db_ptr + (t * tl.num_programs(1) + tl.program_id(1)) * GB * NH * DH + n * DH + unit_index
    for_db = unit_index < DH
    store_slice_sum(db_at, for_db, tl.where(live & mask, db0, 0.0), 0, GB, gate_stride)
    store_slice_sum(db_at, for_db, tl.where(live & mask, db1, 0.0), 1, GB, gate_stride)
    store_slice_sum(db_at, for_db, tl.where(live & mask, db2, 0.0), 2, GB, gate_stride)
    store_slice_sum(db_at, for_db, tl.where(live & mask, db3, 0.0), 3, GB, gate_stride)
    # the gradient of the states entering step t: the initial states' at a start, else step t - 1's
    i0, i1, i2, i3 = load_slices(dinitial_ptr + state_offsets, 0, mask, S, state_stride, zero)
    store_slices(dinitial_ptr + state_offsets, 0, mask, i0 + tl.where(start, ds0, 0.0), i1 + tl.where(start, ds1, 0.0),
                 i2 + tl.where(start, ds2, 0.0), i3 + tl.where(start, ds3, 0.0), S, state_stride)
    store_slices(carried_ptr + state_offsets, 0, mask, tl.where(start, 0.0, ds0), tl.where(start, 0.0, ds1),
                 tl.where(start, 0.0, ds2), tl.where(start, 0.0, ds3), S, state_stride)


@triton.jit
def store_slice_sum(ptr, mask, value, i: tl.constexpr, count: tl.constexpr, stride):
    """Slice i of the tile summed over its batch columns, stored (a program's partial sum)."""
    if i < count:
        tl.store(ptr + i * stride, tl.sum(value, axis=1), mask=mask)


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell: str, resets=None, *, block_u: int = 32,
             block_b: int = 32, block_k: int = 64, num_warps: int = 8):
    """dx, dR, db and the initial states' gradient of forward(..., need_saved=True)'s call, a launch
    a step in reverse; dR after the loop (weight_gradient). 8 warps: with 4 the LSTM's program takes
    255 registers for sm_90 (Triton 3.9) and sLSTM's spills 168 bytes; with 8, 187 and 52."""
    spec = get_cell(cell)
    B, T, GX, NH, DH = x.shape
    S, GR = spec.num_states, spec.gates_r
    x, R, b, initial = x.contiguous(), R.contiguous(), b.contiguous(), states.contiguous()
    dy = dy.contiguous()
    y = y.contiguous()
    h0 = initial[0].to(y.dtype)
    carried = dfinal.to(torch.float32, copy=True).contiguous()
    dinitial = torch.zeros_like(carried)
    drec = outputs.empty((NH, B, T, GR, DH), like=x)
    dx = outputs.empty(x.shape, like=x)
    block_u, block_b, block_k = _blocks(B, DH, block_u, block_b, block_k)
    grid = (NH * triton.cdiv(DH, block_u), triton.cdiv(B, block_b))
    db_partial = outputs.empty((T, grid[1], spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    has_lengths, has_resets = lengths is not None, resets is not None
    length_arg = lengths.to(device=x.device, dtype=torch.int32) if has_lengths else x
    reset_arg = resets.to(device=x.device, dtype=torch.uint8).contiguous() if has_resets else x
    saved_arg = split(saved, x, initial, cell, "none")[0] if S > 1 else dinitial
    backward_cell = pointwise(spec)[1]
    for t in reversed(range(T)):
        step_backward_kernel[grid](
            x, R, b, length_arg, reset_arg, y, h0, saved_arg, dy, carried, dinitial,
            drec, dx, db_partial, t, B, T,
            NH=NH, DH=DH, GX=GX, GR=GR, GB=spec.gates_b, S=S, BLOCK_U=block_u, BLOCK_B=block_b, BLOCK_K=block_k,
            CELL=backward_cell, FAST_MATH=x.dtype == torch.bfloat16, HAS_LENGTHS=has_lengths,
            HAS_RESETS=has_resets, PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
            WIDE_OFFSETS=wide_offsets(x, GR, S), num_warps=num_warps)
    # step 0's product read the initial h: its gradient (through R) is the initial h's
    dinitial[0] += torch.einsum("gnuk,nbgu->bnk", R.float(), drec[:, :, 0].float())
    d_rec = drec.view(NH, B * T, GR, DH)
    dR = entering_states(initial.to(y.dtype), y, resets).weight_gradient(d_rec, R.dtype)
    return dx, dR, bias_gradient(db_partial.flatten(0, 1), b.dtype), dinitial.to(states.dtype)
