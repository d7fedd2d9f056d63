"""Heads too large for one SM, a kernel a step (design (a) of docs/perf-notes.md, 2026-12-07):
each launch runs one step of the whole batch, every program a tile of BLOCK_U units of one
head and BLOCK_B sequences, reading its rows of R from L2 (the GEMM over K = DH in tiles of
BLOCK_K, one tl.dot a gate) and running the cell on them in the epilogue. States are carried
between launches in fp32 buffers, h in the storage type (what the next product reads, as the
other kernels round it). The backward's launch for step t takes dh_t through step t + 1's
product and recomputes R h_{t-1}, reading h_{t-1} in place (y's row t - 1, or the initial h).

The launches reach a call's tensors, T and their step through a call block (step_calls.py), so
a shape's chunks of launches are captured once as CUDA graphs and replayed by every call after
(step_graphs.py): a Triton launch costs the host ~10-30 us, more than a step's kernel.

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
from ..step_graphs import advance, call_lock, run_steps
from . import step_calls
from .plan import StepwisePlan
from .pointwise import pointwise
from .saved import allocate, split
from .step_calls import BACKWARD, FORWARD, address, fields
from .tiles import load_carried_states, load_slices, mask_and, save_carried_states, store_slices


def _slots(names: tuple[str, ...], order: tuple[str, ...]):
    """The block's slots of `names` (step_calls' `order`, then T and done) as the kernels' constants."""
    slot = fields(order)
    return tuple(tl.constexpr(slot[name]) for name in names)


F_X, F_R, F_B, F_INITIAL, F_LENGTHS, F_RESETS, F_H_EVEN, F_STATES, F_Y, F_SAVED, F_T, F_DONE = _slots(
    ("x", "R", "b", "initial", "lengths", "resets", "h_even", "states", "y", "saved", "T", "done"), FORWARD)
B_X, B_R, B_B, B_LENGTHS, B_RESETS, B_Y, B_H0, B_SAVED, B_DY, B_CARRIED, B_DINITIAL, B_DREC, B_DX, B_DB, B_T, \
    B_DONE = _slots(("x", "R", "b", "lengths", "resets", "y", "h0", "saved", "dy", "carried", "dinitial", "drec", "dx",
                     "db", "T", "done"), BACKWARD)


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


@triton.jit(do_not_specialize=["k", "B"])
def step_forward_kernel(
    call_ptr, k, B,  # the call block (step_calls.FORWARD), the launch's position in its chunk, the batch
    NH: tl.constexpr, DH: tl.constexpr, GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, CELL: tl.constexpr,
    FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr, HAS_RESETS: tl.constexpr, PRECISION: tl.constexpr,
    SAVE: tl.constexpr, WIDE_OFFSETS: tl.constexpr, STORAGE: tl.constexpr, ALIGNED: tl.constexpr,
):
    # x [B, T, GX, NH, DH]; the initial states [S, B, NH, DH]; h entering step t and leaving it
    # [B, NH, DH] (two buffers, by the step's parity); the carried states [S, B, NH, DH] fp32; y [B, T, NH, DH];
    # saved: states 1..S-1 entering each step and the last, [T + 1, S - 1, B, NH, DH] fp32
    T = tl.load(call_ptr + F_T).to(tl.int32)
    t = tl.load(call_ptr + F_DONE).to(tl.int32) + k
    x_ptr, R_ptr = address(call_ptr, F_X, STORAGE, ALIGNED), address(call_ptr, F_R, STORAGE, ALIGNED)
    b_ptr, s0_ptr = address(call_ptr, F_B, STORAGE, ALIGNED), address(call_ptr, F_INITIAL, STORAGE, ALIGNED)
    len_ptr = address(call_ptr, F_LENGTHS, tl.int32, ALIGNED)
    resets_ptr = address(call_ptr, F_RESETS, tl.uint8, ALIGNED)
    h_ptr = address(call_ptr, F_H_EVEN + t % 2, STORAGE, ALIGNED)
    h_next_ptr = address(call_ptr, F_H_EVEN + (t + 1) % 2, STORAGE, ALIGNED)
    state_ptr, y_ptr = address(call_ptr, F_STATES, tl.float32, ALIGNED), address(call_ptr, F_Y, STORAGE, ALIGNED)
    saved_ptr = address(call_ptr, F_SAVED, tl.float32, ALIGNED)
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


def forward(x: torch.Tensor, R: torch.Tensor, b: torch.Tensor, states: torch.Tensor, lengths, cell: str,
            resets, need_saved: bool, plan: StepwisePlan):
    """y [B, T, NH, DH], the final states [S, B, NH, DH] and (need_saved) `saved`: the states 1..S-1
    entering each step and the last, [T + 1, S - 1, B, NH, DH] fp32, as the Triton backend's one flat
    buffer (saved.py, no products), of `fusedrnn.rnn`'s call, a launch a step as `plan` says
    (plan.stepwise_plan). `states` are the initial states (zeros where the call has none)."""
    spec = get_cell(cell)
    B, T, _, NH, DH = x.shape
    S = spec.num_states
    x, R, b = x.contiguous(), R.to(x.dtype).contiguous(), b.to(x.dtype).contiguous()
    initial = states.to(x.dtype).contiguous()
    carried = initial.to(torch.float32, copy=True)
    h = [initial[0].clone(), outputs.empty(initial[0].shape, like=initial)]
    y = outputs.empty((B, T, NH, DH), like=x)
    save = need_saved and S > 1
    saved, saved_states, _ = allocate(x, initial, cell, need_saved, "none")  # the Triton backend's `saved`
    if save:
        saved_states[0] = carried[1:]
    length_arg, reset_arg = _flags(x, lengths, resets)
    tensors = [x, R, b, initial, length_arg, reset_arg, h[0], h[1], carried, y, saved_states if save else carried]
    _run(step_forward_kernel, plan, spec, x, tensors, lengths, resets, SAVE=save)
    final = carried.to(x.dtype)
    return y, final, saved


def _flags(x: torch.Tensor, lengths, resets) -> tuple[torch.Tensor, torch.Tensor]:
    """The lengths (int32) and resets (uint8) as the kernels read them; x in the slot of one the
    call has not (HAS_LENGTHS, HAS_RESETS off: never read)."""
    return (lengths.to(device=x.device, dtype=torch.int32).contiguous() if lengths is not None else x,
            resets.to(device=x.device, dtype=torch.uint8).contiguous() if resets is not None else x)


def _run(kernel, plan: StepwisePlan, spec, x: torch.Tensor, tensors: list, lengths, resets, **constants) -> None:
    """The T launches of `kernel` on the call block of `tensors` (step_calls): chunks replayed from
    the graphs of the loop of this shape, or launched (on a CPU, or with plan.graphs off)."""
    if plan.backward != (kernel is step_backward_kernel):
        wanted = "backward" if kernel is step_backward_kernel else "forward"
        raise ValueError(f"plan: expected a {wanted} plan (backward={wanted == 'backward'}), "
                         f"got backward={plan.backward}")
    B, T, GX, NH, DH = x.shape
    grid = (NH * triton.cdiv(DH, plan.BLOCK_U), triton.cdiv(B, plan.BLOCK_B))
    constants.update(NH=NH, DH=DH, GX=GX, GR=spec.gates_r, GB=spec.gates_b, S=spec.num_states,
                     CELL=pointwise(spec)[int(plan.backward)], HAS_LENGTHS=lengths is not None,
                     HAS_RESETS=resets is not None, STORAGE=_TRITON_TYPES[x.dtype], ALIGNED=step_calls.aligned(tensors),
                     **plan.constants(), **plan.options())
    stream = torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0
    key = step_calls.LoopKey(x.device, stream, plan.backward, B, tuple(sorted(constants.items(), key=lambda i: i[0])))
    with call_lock(x.device):
        loop = step_calls.loop(key)
        step_calls.set_call(loop.call, T, tensors)

        def chunk(steps: int) -> None:
            for k in range(steps):
                kernel[grid](loop.call, k, B, **constants)
            advance(loop.call, steps)

        run_steps(loop.steps, x.device, T, chunk, plan.graphs)


_TRITON_TYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


@triton.jit(do_not_specialize=["k", "B"])
def step_backward_kernel(
    call_ptr, k, B,  # the call block (step_calls.BACKWARD), the launch's position in its chunk, the batch
    NH: tl.constexpr, DH: tl.constexpr, GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, CELL: tl.constexpr,
    FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr, HAS_RESETS: tl.constexpr, PRECISION: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr, STORAGE: tl.constexpr, ALIGNED: tl.constexpr,
):
    # y [B, T, NH, DH] and the initial h [B, NH, DH]: h entering step t is one of them; saved: states 1..S-1
    # entering each step [T + 1, S - 1, B, NH, DH] fp32; dy like y; carried and dinitial: the gradients of the
    # states entering step t + 1 and of the initial states [S, B, NH, DH] fp32; drec [NH, B, T, GR, DH];
    # dx like x; db [T, tiles, GB, NH, DH] fp32. Steps run in reverse: the launch's step is T - 1 - (done + k).
    T = tl.load(call_ptr + B_T).to(tl.int32)
    t = T - 1 - (tl.load(call_ptr + B_DONE).to(tl.int32) + k)
    # (each tensor's address read where it is first used: fewer registers held across the products)
    R_ptr, drec_ptr = address(call_ptr, B_R, STORAGE, ALIGNED), address(call_ptr, B_DREC, STORAGE, ALIGNED)
    resets_ptr = address(call_ptr, B_RESETS, tl.uint8, ALIGNED)
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
        lengths = tl.load(address(call_ptr, B_LENGTHS, tl.int32, ALIGNED) + batch, mask=batch < B, other=0)
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
            initial_h = address(call_ptr, B_DINITIAL, tl.float32, ALIGNED) + state_offsets
            tl.store(initial_h, tl.load(initial_h, mask=mask, other=0.0) + tl.where(restart_next, through_next, 0.0),
                     mask=mask)
            through_next = tl.where(restart_next, 0.0, through_next)

    # the states entering step t: the initial ones at step 0 and at a restart (their gradient goes
    # there and nothing crosses to step t - 1), else carried from step t - 1, whose h is y's row t - 1
    # (read in place: no copy of h entering every step)
    start = (t == 0) | tl.zeros((1, BLOCK_B), tl.int1)
    if HAS_RESETS:
        start = start | ((tl.load(resets_ptr + batch * T + t, mask=batch < B, other=0) != 0) & (t < lengths))
    h0_ptr, y_ptr = address(call_ptr, B_H0, STORAGE, ALIGNED), address(call_ptr, B_Y, STORAGE, ALIGNED)
    h_entering = tl.where(start, h0_ptr + batch * NH * DH, y_ptr + (batch * T + t - 1) * NH * DH) + n * DH
    # step t again: R h_{t-1} for the tile's units, then the cell's backward
    r0, r1, r2, r3 = recurrent_products(R_ptr, h_entering, units, batch, n, B, NH, DH, GR, BLOCK_K, PRECISION, zero)
    x_ptr, b_ptr = address(call_ptr, B_X, STORAGE, ALIGNED), address(call_ptr, B_B, STORAGE, ALIGNED)
    x0, x1, x2, x3 = load_slices(x_ptr + (batch * T + t) * GX * NH * DH + head, 0, mask, GX, gate_stride, zero)
    b0, b1, b2, b3 = load_slices(b_ptr + head, 0, units < DH, GB, gate_stride, tl.zeros((BLOCK_U, 1), tl.float32))
    s0 = tl.load(h_entering + units, mask=mask, other=0.0).to(tl.float32)
    # the states entering step t
    saved_at = address(call_ptr, B_SAVED, tl.float32, ALIGNED) + t * (S - 1) * state_stride + state_offsets
    s1, s2, s3 = load_carried_states(saved_at, mask, S, state_stride, zero)
    carried_ptr = address(call_ptr, B_CARRIED, tl.float32, ALIGNED)
    c0, c1, c2, c3 = load_slices(carried_ptr + state_offsets, 0, mask, S, state_stride, zero)
    live = t < lengths
    dy_ptr = address(call_ptr, B_DY, STORAGE, ALIGNED)
    dy = tl.load(dy_ptr + (batch * T + t) * NH * DH + head, mask=mask, other=0.0).to(tl.float32)
    d0 = c0 + through_next + tl.where(live, dy, 0.0)
    dx0, dx1, dx2, dx3, dr0, dr1, dr2, dr3, db0, db1, db2, db3, ds0, ds1, ds2, ds3 = CELL(
        x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, c1, c2, c3, FAST_MATH)
    # past its length a step changes nothing: its gradients are zero and the states' pass through
    ds0, ds1, ds2, ds3 = (tl.where(live, ds0, d0), tl.where(live, ds1, c1), tl.where(live, ds2, c2),
                          tl.where(live, ds3, c3))
    dx_ptr = address(call_ptr, B_DX, STORAGE, ALIGNED)
    store_slices(dx_ptr + (batch * T + t) * GX * NH * DH + head, 0, mask, tl.where(live, dx0, 0.0),
                 tl.where(live, dx1, 0.0), tl.where(live, dx2, 0.0), tl.where(live, dx3, 0.0), GX, gate_stride)
    store_slices(drec_ptr + ((n * B + batch) * T + t) * GR * DH + units, 0, mask, tl.where(live, dr0, 0.0),
                 tl.where(live, dr1, 0.0), tl.where(live, dr2, 0.0), tl.where(live, dr3, 0.0), GR, DH)
    db_at = (address(call_ptr, B_DB, tl.float32, ALIGNED) + (t * tl.num_programs(1) + tl.program_id(1)) * GB * NH * DH
             + n * DH + unit_index)
    for_db = unit_index < DH
    store_slice_sum(db_at, for_db, tl.where(live & mask, db0, 0.0), 0, GB, gate_stride)
    store_slice_sum(db_at, for_db, tl.where(live & mask, db1, 0.0), 1, GB, gate_stride)
    store_slice_sum(db_at, for_db, tl.where(live & mask, db2, 0.0), 2, GB, gate_stride)
    store_slice_sum(db_at, for_db, tl.where(live & mask, db3, 0.0), 3, GB, gate_stride)
    # the gradient of the states entering step t: the initial states' at a start, else step t - 1's
    dinitial_ptr = address(call_ptr, B_DINITIAL, tl.float32, ALIGNED)
    i0, i1, i2, i3 = load_slices(dinitial_ptr + state_offsets, 0, mask, S, state_stride, zero)
    store_slices(dinitial_ptr + state_offsets, 0, mask, i0 + tl.where(start, ds0, 0.0), i1 + tl.where(start, ds1, 0.0),
                 i2 + tl.where(start, ds2, 0.0), i3 + tl.where(start, ds3, 0.0), S, state_stride)
    carried_ptr = address(call_ptr, B_CARRIED, tl.float32, ALIGNED)
    store_slices(carried_ptr + state_offsets, 0, mask, tl.where(start, 0.0, ds0), tl.where(start, 0.0, ds1),
                 tl.where(start, 0.0, ds2), tl.where(start, 0.0, ds3), S, state_stride)


@triton.jit
def store_slice_sum(ptr, mask, value, i: tl.constexpr, count: tl.constexpr, stride):
    """Slice i of the tile summed over its batch columns, stored (a program's partial sum)."""
    if i < count:
        tl.store(ptr + i * stride, tl.sum(value, axis=1), mask=mask)


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell: str, resets, plan: StepwisePlan):
    """dx, dR, db and the initial states' gradient of forward(..., need_saved=True)'s call, a launch
    a step in reverse as `plan` says; dR after the loop (weight_gradient)."""
    spec = get_cell(cell)
    B, T, _, NH, DH = x.shape
    S, GR = spec.num_states, spec.gates_r
    x, R, b = x.contiguous(), R.to(x.dtype).contiguous(), b.to(x.dtype).contiguous()
    initial, y, dy = states.to(x.dtype).contiguous(), y.to(x.dtype).contiguous(), dy.to(x.dtype).contiguous()
    carried = dfinal.to(torch.float32, copy=True).contiguous()
    dinitial = torch.zeros_like(carried)
    drec = outputs.empty((NH, B, T, GR, DH), like=x)
    dx = outputs.empty(x.shape, like=x)
    db_partial = outputs.empty((T, triton.cdiv(B, plan.BLOCK_B), spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    length_arg, reset_arg = _flags(x, lengths, resets)
    saved_arg = split(saved, x, initial, cell, "none")[0] if S > 1 else dinitial
    tensors = [x, R, b, length_arg, reset_arg, y, initial[0], saved_arg, dy, carried, dinitial, drec, dx, db_partial]
    _run(step_backward_kernel, plan, spec, x, tensors, lengths, resets)
    # step 0's product read the initial h: its gradient (through R) is the initial h's
    dinitial[0] += torch.einsum("gnuk,nbgu->bnk", R.float(), drec[:, :, 0].float())
    d_rec = drec.view(NH, B * T, GR, DH)
    dR = entering_states(initial, y, resets).weight_gradient(d_rec, R.dtype)
    return dx, dR, bias_gradient(db_partial.flatten(0, 1), b.dtype), dinitial.to(states.dtype)
