"""Host side of the Triton backend: buffers, grid and the work around the kernels."""
from __future__ import annotations

import torch
import triton

from ...cells import get_cell
from .. import outputs
from ..weight_gradient import bias_gradient, recurrent_weight_gradient
from . import padded_head_dim, saved as saved_buffers, variants
from .backward import recurrence_bwd_kernel
from .cells import POINTWISE
from .forward import recurrence_fwd_kernel


# MUFU tanh for bfloat16; a switch for experiments (scripts/triton_probe.py)
FAST_MATH_FOR_BF16 = True
# fused multiply-adds, as every kernel was measured with: Triton's default until 3.9, which
# warns that 3.10 turns it off unless asked for (TRITON_DEFAULT_FP_FUSION); so asked for
FP_FUSION = dict(enable_fp_fusion=True)


def batch_tile(B: int, DH_P: int) -> int:
    """Sequences per program: 16 (the tensor cores' smallest N) and up while a
    [DH_P, BLOCK_B] fp32 tile stays within 512 elements (2 registers a thread
    with 8 warps: a step holds ~25 live tiles; wider tiles spilled). Smaller tiles mean more
    programs for the SMs. A few buckets, so a new batch size rarely recompiles."""
    return min(max(16, 512 // DH_P), max(16, triton.next_power_of_2(B)))


def launch_options(DH_P: int, BLOCK_B: int, backward: bool, gates_r: int = 4, overrides: dict | None = None) -> dict:
    """Warps, pipelining depth and kernel options, checked against the register
    and shared memory budget of an H100 by tests/test_triton_compile.py;
    `overrides` (a variant's, variants.py) replace them. DX_DB_FROM_DREC applies
    only to cells whose gates are sums (Cell.gates_are_sums), STACK_GATES to cells of several gates (_common_meta)."""
    if backward and gates_r == 1 and DH_P >= 64:
        # Triton 3.6 on sm_90 computes a wrong dx (or faults) for single-gate cells
        # with these tile shapes under one warpgroup, or two with prefetch;
        # scripts/triton_probe.py reproduces it. These options measured correct; no variant overrides them.
        return dict(num_warps=8, num_stages=1, PREFETCH=DH_P <= 64, DB_EACH_STEP=False, DX_DB_FROM_DREC=False,
                    STACK_GATES=False, **FP_FUSION)
    if backward:
        # measured on the H100 (docs/perf-notes.md), 64x12 / 128x6: one warpgroup beats
        # two up to DH=64 (3.0 vs 4.4 ms); prefetching the next step's loads beats
        # loading late (3.0 vs 3.1; 4.9 vs 5.4); reducing db every step frees registers
        # and pays with one warpgroup (2.6 vs 3.0), not with two (5.1 vs 4.9)
        # 2026-11-26, LSTM bf16 fwd+bwd: stacked gates with dx, db derived from drec run
        # 128x6 in 5.72 ms (7.01 before), 64x12 in 3.69 (3.86); variants.py, perf-notes.md
        small = DH_P <= 64
        options = dict(num_warps=4 if small else 8, num_stages=1, PREFETCH=True, DB_EACH_STEP=small,
                       DX_DB_FROM_DREC=DH_P >= 64, STACK_GATES=DH_P >= 64)
    else:
        # a stacked forward is faster at 128x6 (1.68 vs 1.86 ms) and slower at 64x12 (1.22 vs 0.92)
        options = dict(num_warps=4 if DH_P <= 64 else 8, num_stages=1, STACK_GATES=DH_P >= 128)
    return {**options, **FP_FUSION, **(overrides or {})}


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs get true fp32 products, not tf32: the backend must match torch's fp32
    return "ieee" if dtype == torch.float32 else "tf32"


def _lengths_arg(lengths, x):
    return (x, False) if lengths is None else (lengths.to(x.device), True)


def stacks_gates(requested: bool, spec, fp32: bool, DH_P: int) -> bool:
    """Whether a kernel stacks the gates as asked: not for one gate (one product
    anyway), nor for fp32, whose stacked tiles take twice the room: GRU's backward
    at DH=128 asked for 272 KiB of shared memory on the H100, LSTM's at DH=64
    spills to an 8.5 KB stack (the measured gains were in bf16)."""
    return requested and spec.gates_r > 1 and not fp32


def _common_meta(x, cell, backward):
    spec = get_cell(cell)
    B, T, _, NH, DH = x.shape
    DH_P = padded_head_dim(DH)
    BLOCK_B = batch_tile(B, DH_P)
    largest = (T + 1) * B * NH * DH * max(spec.gates_x, spec.gates_r, spec.num_states)
    meta = dict(NH=NH, DH=DH, DH_P=DH_P, BLOCK_B=BLOCK_B, GX=spec.gates_x, GR=spec.gates_r,
                WIDE_OFFSETS=largest >= 2**31, FAST_MATH=FAST_MATH_FOR_BF16 and x.dtype == torch.bfloat16,
                GB=spec.gates_b, S=spec.num_states, PRECISION=_precision(x.dtype),
                **launch_options(DH_P, BLOCK_B, backward, spec.gates_r, variants.overrides(backward)))
    meta["STACK_GATES"] = stacks_gates(meta["STACK_GATES"], spec, x.dtype == torch.float32, DH_P)
    if backward:
        meta["DX_DB_FROM_DREC"] = meta["DX_DB_FROM_DREC"] and spec.gates_are_sums
    return spec, (NH, triton.cdiv(B, BLOCK_B)), meta


def kernel_options(x, cell, backward: bool) -> dict:
    """The compile-time constants and launch options a kernel gets for a call
    like `x` (with saved products as the forward of a training call), so that
    scripts can tell variants apart that run the same kernels."""
    meta = _common_meta(x, cell, backward)[2]
    return dict(meta, products=saved_buffers.products_dtype(meta["DH_P"]))


def forward(x, R, b, states, lengths, cell, need_saved):
    x, R, b, states = (t.contiguous() for t in (x, R, b, states))
    B, T, _, NH, DH = x.shape
    spec, grid, meta = _common_meta(x, cell, backward=False)
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved, saved_states, products = saved_buffers.allocate(x, states, cell, need_saved)
    len_arg, has_lengths = _lengths_arg(lengths, x)
    recurrence_fwd_kernel[grid](
        x, R, b, states, len_arg, y, final, saved if saved_states is None else saved_states,
        saved if products is None else products, B, T,
        CELL=POINTWISE[cell][0], HAS_LENGTHS=has_lengths, SAVE=need_saved, SAVE_PRODUCTS=products is not None, **meta,
    )
    return y, final, saved


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell):
    x, R, b, states, dy, dfinal = (t.contiguous() for t in (x, R, b, states, dy, dfinal))
    B, T, GX, NH, DH = x.shape
    spec, grid, meta = _common_meta(x, cell, backward=True)
    dx = outputs.empty(x.shape, like=x)
    # drec as [NH, B*T, GR*DH], the layout the dR matmul below reads without a copy
    drec = outputs.empty((NH, B * T, spec.gates_r * DH), like=x, dtype=torch.float32)
    derived = meta["DX_DB_FROM_DREC"]
    db_partial = outputs.empty((0,) if derived else (grid[1], spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    dstates = outputs.empty(states.shape, like=states)
    saved_states, products = saved_buffers.split(saved, x, states, cell)
    len_arg, has_lengths = _lengths_arg(lengths, x)
    recurrence_bwd_kernel[grid](
        x, R, b, states, len_arg, y, saved_states, saved_states if products is None else products,
        dy, dfinal, dx, drec, db_partial, dstates, B, T,
        CELL=POINTWISE[cell][1], HAS_LENGTHS=has_lengths, LOAD_PRODUCTS=products is not None, **meta,
    )
    dR = recurrent_weight_gradient(drec, states, y, spec.gates_r, R.dtype)
    if not derived:
        return dx, dR, bias_gradient(db_partial, b.dtype), dstates
    drec_by_step = drec.view(NH, B, T, GX, DH)  # GX == GR == GB for these cells
    dx.copy_(drec_by_step.permute(1, 2, 3, 0, 4))
    db = drec_by_step.sum((1, 2)).transpose(0, 1).to(b.dtype)
    return dx, dR, db, dstates
