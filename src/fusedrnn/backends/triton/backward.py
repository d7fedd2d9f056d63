"""The persistent backward kernel: walks time in reverse with R on chip.

Per step it needs the recurrent products R h_{t-1}: it either recomputes them
from the forward's outputs (the same on-chip R serves R h and R^T drec) or,
with LOAD_PRODUCTS, reads the ones the forward saved (saved.py). It reloads
the states that entered the step (h from y, the others as saved), runs the
cell's pointwise gradient, writes drec (and dx, and accumulates db, unless
DX_DB_FROM_DREC: for cells whose dx and db equal drec gate by gate launch.py
derives them after the loop, taking 4 stores a step off it), and sends R^T
drec back into dh. Everything a step loads is fetched one step ahead
(PREFETCH), so only the gradient chain itself is sequential. dR is one large
matmul of drec with h over all steps afterwards (launch.py).

With HAS_RESETS (resets.py), a step where a sequence restarts is recomputed
from the initial states, and the gradient flowing into its entering states
goes to the initial states' gradient (summed over the restarts, step 0's
added at the end) instead of to the step before.
"""
import triton
import triton.language as tl

from .resets import hand_to_initial, restart_state, restarts, tile_restarts
from .stacked import load_stacked_weights, stacked_products, stacked_products_t
from .tiles import (
    accumulate, gate_products, load_biases, load_carried_states, load_slices, load_weights, mask_and,
    recurrent_product_t, select_state, store_slices,
)


@triton.jit
def _load_step(x_ptr, y_ptr, s0_ptr, saved_states_ptr, products_ptr, dy_ptr, batch, head, mask, t,
               B, T, NH: tl.constexpr, DH: tl.constexpr, GX: tl.constexpr, GR: tl.constexpr, S: tl.constexpr,
               LOAD_PRODUCTS: tl.constexpr, zero):
    """Everything step t needs from memory. For t < 0 (past the start) masked to zero.
    The products R h are zero unless LOAD_PRODUCTS (then the caller recomputes them)."""
    m = mask_and(mask, t >= 0)
    gate_stride = NH * DH
    state_stride = (B * NH * DH).to(batch.dtype)  # int64 with WIDE_OFFSETS: the saved slots' offsets pass 2**31 first
    x_rows = x_ptr + batch * T * GX * NH * DH + t * GX * NH * DH + head
    x0, x1, x2, x3 = load_slices(x_rows, 0, m, GX, gate_stride, zero)
    if LOAD_PRODUCTS:
        product_rows = products_ptr + batch * T * GR * NH * DH + t * GR * NH * DH + head
        r0, r1, r2, r3 = load_slices(product_rows, 0, m, GR, gate_stride, zero)
    else:
        r0, r1, r2, r3 = zero, zero, zero, zero
    # the states entering step t: h exactly as the forward's matmul saw it (the
    # initial state or y[t-1]), the others as the forward saved them in fp32
    h_prev = tl.load(y_ptr + batch * T * NH * DH + (t - 1) * NH * DH + head, mask=mask_and(m, t > 0),
                     other=0.0)
    h_init = tl.load(s0_ptr + batch * NH * DH + head, mask=mask_and(m, t == 0), other=0.0)
    h = h_prev + h_init
    prev = saved_states_ptr + t * (S - 1) * state_stride + batch * NH * DH + head
    p1, p2, p3 = load_carried_states(prev, m, S, state_stride, zero)
    dy = tl.load(dy_ptr + batch * T * NH * DH + t * NH * DH + head, mask=m, other=0.0).to(tl.float32)
    return x0, x1, x2, x3, r0, r1, r2, r3, h.to(tl.float32), p1, p2, p3, h, dy


@triton.jit
def _zero_past_length(valid, g0, g1, g2, g3):
    """where(valid, g, 0) for a step's four gate gradients: select, never multiply by a mask.
    Past a length x may hold NaN or Inf, and the cell's gradient there is NaN even for a zero
    incoming gradient (0 * NaN); it must not reach dx, drec (so dR and dh) or db."""
    return tl.where(valid, g0, 0.0), tl.where(valid, g1, 0.0), tl.where(valid, g2, 0.0), tl.where(valid, g3, 0.0)


@triton.jit(do_not_specialize=["B", "T"])
def recurrence_bwd_kernel(
    x_ptr, R_ptr, b_ptr, s0_ptr, len_ptr, y_ptr, saved_states_ptr, products_ptr, dy_ptr, dfinal_ptr,  # inputs
    dx_ptr, drec_ptr, db_ptr, ds0_ptr,  # outputs
    B, T,
    NH: tl.constexpr, DH: tl.constexpr, DH_P: tl.constexpr, BLOCK_B: tl.constexpr,
    GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr, CELL: tl.constexpr, FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr,
    PRECISION: tl.constexpr, PREFETCH: tl.constexpr, DB_EACH_STEP: tl.constexpr, LOAD_PRODUCTS: tl.constexpr,
    DX_DB_FROM_DREC: tl.constexpr, STACK_GATES: tl.constexpr,
    # last and defaulted: a launch without resets passes none of them (resets.py, launch.py)
    resets_ptr=None, tile_resets_ptr=None, HAS_RESETS: tl.constexpr = False,
):
    n = tl.program_id(0)
    tile = tl.program_id(1)
    d = tl.arange(0, DH_P)[:, None]
    batch = (tile * BLOCK_B + tl.arange(0, BLOCK_B))[None, :]
    if WIDE_OFFSETS:  # int32 offsets unless a tensor has 2**31 elements: fewer live registers
        batch = batch.to(tl.int64)
    mask = (d < DH) & (batch < B)
    zero = tl.zeros((DH_P, BLOCK_B), dtype=tl.float32)
    head = n * DH + d
    gate_stride = NH * DH
    state_offsets = batch * NH * DH + head
    state_stride = (B * NH * DH).to(batch.dtype)  # int64 with WIDE_OFFSETS: the saved slots' offsets pass 2**31 first

    if STACK_GATES:  # one product for all gates, each way (stacked.py; two at DH_P=128)
        W01, W23 = load_stacked_weights(R_ptr, n, GR, NH, DH, DH_P, True)
    else:
        W0, W1, W2, W3 = load_weights(R_ptr, n, GR, NH, DH, DH_P)
    b0, b1, b2, b3 = load_biases(b_ptr, n, GB, NH, DH, DH_P)
    ds0, ds1, ds2, ds3 = load_slices(dfinal_ptr, state_offsets, mask, S, state_stride, zero)
    if DB_EACH_STEP:  # reduce over the batch tile every step: 4 fewer live tiles, a few shuffles a step
        db0 = tl.zeros((DH_P,), dtype=tl.float32)
    else:
        db0 = zero
    db1, db2, db3 = db0, db0, db0
    if HAS_LENGTHS:
        lengths = tl.load(len_ptr + batch, mask=batch < B, other=0)
    if HAS_RESETS:  # the initial states' gradient from the restarts; the tile's flags read one step ahead
        di0, di1, di2, di3 = zero, zero, zero, zero
        next_restarting = tile_restarts(tile_resets_ptr, tile, T - 1, T)

    x0, x1, x2, x3, l0, l1, l2, l3, p0, p1, p2, p3, h, dy = _load_step(
        x_ptr, y_ptr, s0_ptr, saved_states_ptr, products_ptr, dy_ptr, batch, head, mask, T - 1,
        B, T, NH, DH, GX, GR, S, LOAD_PRODUCTS, zero)
    for step in range(T):
        t = T - 1 - step
        if HAS_RESETS:
            restarting = next_restarting
            next_restarting = tile_restarts(tile_resets_ptr, tile, t - 1, T)
            restart = batch < 0  # none unless the tile has one
            if restarting:  # the states step t entered with: the initial ones where a sequence restarts
                restart = restarts(resets_ptr, batch, t, B, T)
                if HAS_LENGTHS:  # past its length a reset changes nothing
                    restart = restart & (t < lengths)
                h = tl.where(restart, tl.load(s0_ptr + state_offsets, mask=mask & restart, other=0.0), h)
                p0 = h.to(tl.float32)
                initial = s0_ptr + state_stride  # states 1.. of the initial ones, as the saved slots hold them
                p1 = restart_state(restart, initial, state_offsets, mask, p1, 0, S - 1, state_stride)
                p2 = restart_state(restart, initial, state_offsets, mask, p2, 1, S - 1, state_stride)
                p3 = restart_state(restart, initial, state_offsets, mask, p3, 2, S - 1, state_stride)
        # after the restarts (forward.py says why)
        if PREFETCH:  # issue the previous step's loads now, to land while this step computes
            nx0, nx1, nx2, nx3, nl0, nl1, nl2, nl3, np0, np1, np2, np3, nh, ndy = _load_step(
                x_ptr, y_ptr, s0_ptr, saved_states_ptr, products_ptr, dy_ptr, batch, head, mask, t - 1,
                B, T, NH, DH, GX, GR, S, LOAD_PRODUCTS, zero)
        if LOAD_PRODUCTS:
            r0, r1, r2, r3 = l0, l1, l2, l3
        elif STACK_GATES:
            r0, r1, r2, r3 = stacked_products(W01, W23, h, PRECISION)
        else:
            r0, r1, r2, r3 = gate_products(W0, W1, W2, W3, h, GR, zero, PRECISION)
        if HAS_LENGTHS:
            valid = t < lengths
            ds0 += tl.where(valid, dy, 0.0)
            e0 = select_state(valid, ds0, zero, 0, S)
            e1 = select_state(valid, ds1, zero, 1, S)
            e2 = select_state(valid, ds2, zero, 2, S)
            e3 = select_state(valid, ds3, zero, 3, S)
        else:
            ds0 += dy
            e0, e1, e2, e3 = ds0, ds1, ds2, ds3
        (gx0, gx1, gx2, gx3, gr0, gr1, gr2, gr3, gb0, gb1, gb2, gb3, q0, q1, q2, q3) = CELL(
            x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, p0, p1, p2, p3, e0, e1, e2, e3, FAST_MATH
        )
        if HAS_LENGTHS:  # past a length the step's gradients are 0, whatever x holds there
            gx0, gx1, gx2, gx3 = _zero_past_length(valid, gx0, gx1, gx2, gx3)
            gr0, gr1, gr2, gr3 = _zero_past_length(valid, gr0, gr1, gr2, gr3)
            gb0, gb1, gb2, gb3 = _zero_past_length(valid, gb0, gb1, gb2, gb3)
        if STACK_GATES:
            dh = stacked_products_t(W01, W23, gr0, gr1, gr2, gr3, PRECISION)
        else:
            dh = recurrent_product_t(W0, gr0, 0, GR, zero, PRECISION)
            dh += recurrent_product_t(W1, gr1, 1, GR, zero, PRECISION)
            dh += recurrent_product_t(W2, gr2, 2, GR, zero, PRECISION)
            dh += recurrent_product_t(W3, gr3, 3, GR, zero, PRECISION)
        if not DX_DB_FROM_DREC:  # else they equal drec gate by gate, and launch.py derives them from it
            dx_rows = dx_ptr + batch * T * GX * NH * DH + t * GX * NH * DH + head
            store_slices(dx_rows, 0, mask, gx0, gx1, gx2, gx3, GX, gate_stride)
        drec_rows = drec_ptr + (n * B + batch) * T * GR * DH + t * GR * DH + d  # [NH, B, T, GR, DH]
        store_slices(drec_rows, 0, mask, gr0, gr1, gr2, gr3, GR, DH)
        if not DX_DB_FROM_DREC:
            if DB_EACH_STEP:
                gb0, gb1, gb2, gb3 = tl.sum(gb0, axis=1), tl.sum(gb1, axis=1), tl.sum(gb2, axis=1), tl.sum(gb3, axis=1)
            db0 = accumulate(db0, gb0, 0, GB)
            db1 = accumulate(db1, gb1, 1, GB)
            db2 = accumulate(db2, gb2, 2, GB)
            db3 = accumulate(db3, gb3, 3, GB)
        q0 += dh
        if HAS_LENGTHS:
            ds0 = select_state(valid, q0, ds0, 0, S)
            ds1 = select_state(valid, q1, ds1, 1, S)
            ds2 = select_state(valid, q2, ds2, 2, S)
            ds3 = select_state(valid, q3, ds3, 3, S)
        else:
            ds0, ds1, ds2, ds3 = q0, q1, q2, q3
        if HAS_RESETS:
            if restarting:
                ds0, di0 = hand_to_initial(restart, ds0, di0, 0, S)
                ds1, di1 = hand_to_initial(restart, ds1, di1, 1, S)
                ds2, di2 = hand_to_initial(restart, ds2, di2, 2, S)
                ds3, di3 = hand_to_initial(restart, ds3, di3, 3, S)
        if PREFETCH:
            x0, x1, x2, x3, l0, l1, l2, l3 = nx0, nx1, nx2, nx3, nl0, nl1, nl2, nl3
            p0, p1, p2, p3, h, dy = np0, np1, np2, np3, nh, ndy
        else:  # fewer live registers, the load latency exposed
            x0, x1, x2, x3, l0, l1, l2, l3, p0, p1, p2, p3, h, dy = _load_step(
                x_ptr, y_ptr, s0_ptr, saved_states_ptr, products_ptr, dy_ptr, batch, head, mask, t - 1,
                B, T, NH, DH, GX, GR, S, LOAD_PRODUCTS, zero)

    if HAS_RESETS:  # step 0's start plus every restart's
        ds0, ds1, ds2, ds3 = ds0 + di0, ds1 + di1, ds2 + di2, ds3 + di3
    store_slices(ds0_ptr, state_offsets, mask, ds0, ds1, ds2, ds3, S, state_stride)
    if not DX_DB_FROM_DREC:  # db partial sums of this batch tile: [tiles, GB, NH, DH]
        rows = tl.arange(0, DH_P)
        db_rows = db_ptr + tile * GB * NH * DH + n * DH + rows
        if not DB_EACH_STEP:
            db0, db1, db2, db3 = tl.sum(db0, axis=1), tl.sum(db1, axis=1), tl.sum(db2, axis=1), tl.sum(db3, axis=1)
        store_slices(db_rows, 0, rows < DH, db0, db1, db2, db3, GB, gate_stride)
