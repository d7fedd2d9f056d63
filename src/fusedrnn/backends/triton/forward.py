"""The persistent forward kernel: one program per (head, batch tile) walks all
T steps with its head's recurrent weights held on chip for the whole sequence.
With HAS_RESETS, a sequence that restarts at a step starts it from the initial
states (resets.py)."""
import triton
import triton.language as tl

from .resets import restart_state, restarts, tile_restarts
from .stacked import load_stacked_weights, stacked_products
from .tiles import (
    gate_products, load_biases, load_slices, load_weights, mask_and, save_carried_states, select_state, store_slices,
)


@triton.jit(do_not_specialize=["B", "T"])
def recurrence_fwd_kernel(
    x_ptr, R_ptr, b_ptr, s0_ptr, len_ptr,  # inputs
    y_ptr, final_ptr, saved_states_ptr, products_ptr,  # outputs
    B, T,
    NH: tl.constexpr, DH: tl.constexpr, DH_P: tl.constexpr, BLOCK_B: tl.constexpr,
    GX: tl.constexpr, GR: tl.constexpr, GB: tl.constexpr, S: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr, CELL: tl.constexpr, FAST_MATH: tl.constexpr, HAS_LENGTHS: tl.constexpr,
    SAVE: tl.constexpr, SAVE_PRODUCTS: tl.constexpr, PRECISION: tl.constexpr, STACK_GATES: tl.constexpr,
    # last and defaulted: a launch without resets passes none of them (resets.py, launch.py)
    resets_ptr=None, tile_resets_ptr=None, HAS_RESETS: tl.constexpr = False,
):
    n = tl.program_id(0)
    d = tl.arange(0, DH_P)[:, None]
    batch = (tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B))[None, :]
    if WIDE_OFFSETS:  # int32 offsets unless a tensor has 2**31 elements: fewer live registers
        batch = batch.to(tl.int64)
    mask = (d < DH) & (batch < B)
    zero = tl.zeros((DH_P, BLOCK_B), dtype=tl.float32)
    head = n * DH + d
    # x: [B, T, G, NH, DH]; y: [B, T, NH, DH]; states: [S, B, NH, DH]; saved: [T + 1, S - 1, B, NH, DH];
    # products: [B, T, GR, NH, DH] (saved.py)
    x_rows = x_ptr + batch * T * GX * NH * DH + head
    product_rows = products_ptr + batch * T * GR * NH * DH + head
    y_rows = y_ptr + batch * T * NH * DH + head
    state_offsets = batch * NH * DH + head
    state_stride = (B * NH * DH).to(batch.dtype)  # int64 with WIDE_OFFSETS: the saved slots' offsets pass 2**31 first

    if STACK_GATES:  # one product for all gates (stacked.py)
        W01, W23 = load_stacked_weights(R_ptr, n, GR, NH, DH, DH_P, False)
    else:
        W0, W1, W2, W3 = load_weights(R_ptr, n, GR, NH, DH, DH_P)
    b0, b1, b2, b3 = load_biases(b_ptr, n, GB, NH, DH, DH_P)
    s0, s1, s2, s3 = load_slices(s0_ptr, state_offsets, mask, S, state_stride, zero)
    if HAS_LENGTHS:
        lengths = tl.load(len_ptr + batch, mask=batch < B, other=0)
    if HAS_RESETS:  # read one step ahead, like x
        next_restarting = tile_restarts(tile_resets_ptr, tl.program_id(1), 0, T)
    if SAVE:  # slot 0 of the saved states is the initial state
        save_carried_states(saved_states_ptr + state_offsets, mask, s1, s2, s3, S, state_stride)

    gate_stride = NH * DH
    x0, x1, x2, x3 = load_slices(x_rows, 0, mask, GX, gate_stride, zero)
    for t in range(T):
        # the restarts before the next step's loads: after them, the branch's join unpacked the
        # loaded x there, waiting for the loads (PTX of the H100 build, 2026-12-07)
        if HAS_RESETS:
            restarting = next_restarting
            next_restarting = tile_restarts(tile_resets_ptr, tl.program_id(1), t + 1, T)
            if restarting:  # the same branch for the whole program: steps without a restart in the tile skip it
                restart = restarts(resets_ptr, batch, t, B, T)
                if HAS_LENGTHS:  # past its length a reset changes nothing
                    restart = restart & (t < lengths)
                s0 = restart_state(restart, s0_ptr, state_offsets, mask, s0, 0, S, state_stride)
                s1 = restart_state(restart, s0_ptr, state_offsets, mask, s1, 1, S, state_stride)
                s2 = restart_state(restart, s0_ptr, state_offsets, mask, s2, 2, S, state_stride)
                s3 = restart_state(restart, s0_ptr, state_offsets, mask, s3, 3, S, state_stride)
        # issue the next step's input loads before this step's math
        next_mask = mask_and(mask, t + 1 < T)
        next_offset = (t + 1) * GX * NH * DH
        x0n, x1n, x2n, x3n = load_slices(x_rows, next_offset, next_mask, GX, gate_stride, zero)

        h = s0.to(R_ptr.dtype.element_ty)
        if STACK_GATES:
            r0, r1, r2, r3 = stacked_products(W01, W23, h, PRECISION)
        else:
            r0, r1, r2, r3 = gate_products(W0, W1, W2, W3, h, GR, zero, PRECISION)
        n0, n1, n2, n3 = CELL(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST_MATH)
        if HAS_LENGTHS:
            valid = t < lengths
            s0 = select_state(valid, n0, s0, 0, S)
            s1 = select_state(valid, n1, s1, 1, S)
            s2 = select_state(valid, n2, s2, 2, S)
            s3 = select_state(valid, n3, s3, 3, S)
            out = tl.where(valid, n0, 0.0)
        else:
            s0, s1, s2, s3 = n0, n1, n2, n3
            out = n0
        tl.store(y_rows + t * NH * DH, out.to(y_ptr.dtype.element_ty), mask=mask)
        if SAVE:
            for_save = saved_states_ptr + (t + 1) * (S - 1) * state_stride + state_offsets
            save_carried_states(for_save, mask, s1, s2, s3, S, state_stride)
        if SAVE_PRODUCTS:  # for the backward to read instead of recomputing
            store_slices(product_rows, t * GR * NH * DH, mask, r0, r1, r2, r3, GR, gate_stride)
        x0, x1, x2, x3 = x0n, x1n, x2n, x3n

    store_slices(final_ptr, state_offsets, mask, s0, s1, s2, s3, S, state_stride)
