"""The persistent backward kernel: walks time in reverse with R^T on chip.

Per step it reloads what the forward saved (the states entering the step and
the recurrent products), runs the cell's pointwise gradient, writes dx and
drec, accumulates db, and sends R^T drec back into dh. dR is one large matmul
of drec with h over all steps afterwards (see launch.py), off the sequential path.
"""
import triton
import triton.language as tl

from .tiles import (
    add_bias_grad, load_bias, load_gate, load_state, load_weight, recurrent_product, select_state, store_gate,
    store_state,
)


@triton.jit(do_not_specialize=["B", "T"])
def recurrence_bwd_kernel(
    x_ptr, R_ptr, b_ptr, len_ptr, saved_states_ptr, saved_rec_ptr, dy_ptr, dfinal_ptr,  # inputs
    dx_ptr, drec_ptr, db_ptr, ds0_ptr,  # outputs
    B, T,
    NH: tl.constexpr, DH: tl.constexpr, DH_P: tl.constexpr, BLOCK_B: tl.constexpr,
    GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    CELL: tl.constexpr, HAS_LENGTHS: tl.constexpr, PRECISION: tl.constexpr,
):
    n = tl.program_id(0)
    tile = tl.program_id(1)
    d = tl.arange(0, DH_P)[:, None]
    batch = (tile * BLOCK_B + tl.arange(0, BLOCK_B))[None, :].to(tl.int64)
    mask = (d < DH) & (batch < B)
    zero = tl.zeros((DH_P, BLOCK_B), dtype=tl.float32)
    head = n * DH + d
    gate_stride = NH * DH
    state_offsets = batch * NH * DH + head
    state_stride = B * NH * DH

    V0 = load_weight(R_ptr, n, 0, GR, NH, DH, DH_P, True)
    V1 = load_weight(R_ptr, n, 1, GR, NH, DH, DH_P, True)
    V2 = load_weight(R_ptr, n, 2, GR, NH, DH, DH_P, True)
    V3 = load_weight(R_ptr, n, 3, GR, NH, DH, DH_P, True)
    b0 = load_bias(b_ptr, n, 0, GB, NH, DH, DH_P)
    b1 = load_bias(b_ptr, n, 1, GB, NH, DH, DH_P)
    b2 = load_bias(b_ptr, n, 2, GB, NH, DH, DH_P)
    b3 = load_bias(b_ptr, n, 3, GB, NH, DH, DH_P)
    ds0 = load_state(dfinal_ptr, state_offsets, mask, 0, S, state_stride, zero)
    ds1 = load_state(dfinal_ptr, state_offsets, mask, 1, S, state_stride, zero)
    ds2 = load_state(dfinal_ptr, state_offsets, mask, 2, S, state_stride, zero)
    ds3 = load_state(dfinal_ptr, state_offsets, mask, 3, S, state_stride, zero)
    rows = tl.arange(0, DH_P)
    db0 = tl.zeros((DH_P,), dtype=tl.float32)
    db1, db2, db3 = db0, db0, db0
    if HAS_LENGTHS:
        lengths = tl.load(len_ptr + batch, mask=batch < B, other=0)

    for step in range(T):
        t = T - 1 - step
        x_rows = x_ptr + batch * T * GX * NH * DH + t * GX * NH * DH + head
        rec_rows = saved_rec_ptr + batch * T * GR * NH * DH + t * GR * NH * DH + head
        prev = saved_states_ptr + t * S * state_stride + state_offsets
        x0 = load_gate(x_rows, 0, mask, 0, GX, gate_stride, zero)
        x1 = load_gate(x_rows, 0, mask, 1, GX, gate_stride, zero)
        x2 = load_gate(x_rows, 0, mask, 2, GX, gate_stride, zero)
        x3 = load_gate(x_rows, 0, mask, 3, GX, gate_stride, zero)
        r0 = load_gate(rec_rows, 0, mask, 0, GR, gate_stride, zero)
        r1 = load_gate(rec_rows, 0, mask, 1, GR, gate_stride, zero)
        r2 = load_gate(rec_rows, 0, mask, 2, GR, gate_stride, zero)
        r3 = load_gate(rec_rows, 0, mask, 3, GR, gate_stride, zero)
        p0 = load_state(prev, 0, mask, 0, S, state_stride, zero)
        p1 = load_state(prev, 0, mask, 1, S, state_stride, zero)
        p2 = load_state(prev, 0, mask, 2, S, state_stride, zero)
        p3 = load_state(prev, 0, mask, 3, S, state_stride, zero)
        dy = tl.load(dy_ptr + batch * T * NH * DH + t * NH * DH + head, mask=mask, other=0.0).to(tl.float32)
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
            x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, p0, p1, p2, p3, e0, e1, e2, e3
        )
        dx_rows = dx_ptr + batch * T * GX * NH * DH + t * GX * NH * DH + head
        store_gate(dx_rows, 0, mask, gx0, 0, GX, gate_stride)
        store_gate(dx_rows, 0, mask, gx1, 1, GX, gate_stride)
        store_gate(dx_rows, 0, mask, gx2, 2, GX, gate_stride)
        store_gate(dx_rows, 0, mask, gx3, 3, GX, gate_stride)
        drec_rows = drec_ptr + batch * T * GR * NH * DH + t * GR * NH * DH + head
        store_gate(drec_rows, 0, mask, gr0, 0, GR, gate_stride)
        store_gate(drec_rows, 0, mask, gr1, 1, GR, gate_stride)
        store_gate(drec_rows, 0, mask, gr2, 2, GR, gate_stride)
        store_gate(drec_rows, 0, mask, gr3, 3, GR, gate_stride)
        db0 = add_bias_grad(db0, gb0, 0, GB)
        db1 = add_bias_grad(db1, gb1, 1, GB)
        db2 = add_bias_grad(db2, gb2, 2, GB)
        db3 = add_bias_grad(db3, gb3, 3, GB)
        dt = R_ptr.dtype.element_ty
        dh = recurrent_product(V0, gr0.to(dt), 0, GR, zero, PRECISION)
        dh += recurrent_product(V1, gr1.to(dt), 1, GR, zero, PRECISION)
        dh += recurrent_product(V2, gr2.to(dt), 2, GR, zero, PRECISION)
        dh += recurrent_product(V3, gr3.to(dt), 3, GR, zero, PRECISION)
        q0 += dh
        if HAS_LENGTHS:
            ds0 = select_state(valid, q0, ds0, 0, S)
            ds1 = select_state(valid, q1, ds1, 1, S)
            ds2 = select_state(valid, q2, ds2, 2, S)
            ds3 = select_state(valid, q3, ds3, 3, S)
        else:
            ds0, ds1, ds2, ds3 = q0, q1, q2, q3

    store_state(ds0_ptr + state_offsets, 0, mask, ds0, 0, S, state_stride)
    store_state(ds0_ptr + state_offsets, 0, mask, ds1, 1, S, state_stride)
    store_state(ds0_ptr + state_offsets, 0, mask, ds2, 2, S, state_stride)
    store_state(ds0_ptr + state_offsets, 0, mask, ds3, 3, S, state_stride)
    # db partial sums of this batch tile: [tiles, GB, NH, DH]
    db_rows = db_ptr + tile * GB * NH * DH + n * DH + rows
    store_gate(db_rows, 0, rows < DH, db0, 0, GB, gate_stride)
    store_gate(db_rows, 0, rows < DH, db1, 1, GB, gate_stride)
    store_gate(db_rows, 0, rows < DH, db2, 2, GB, gate_stride)
    store_gate(db_rows, 0, rows < DH, db3, 3, GB, gate_stride)
