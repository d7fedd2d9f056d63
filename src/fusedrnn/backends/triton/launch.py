"""Host side of the Triton backend: runs a plan (plan.py) for one call, with the
buffers, the grid and the work around the kernels. Chooses nothing itself."""
from __future__ import annotations

import torch
import triton

from ...cells import Cell, get_cell
from ...ops import outputs
from ..weight_gradient import bias_gradient, drec_steps, entering_states
from . import saved as saved_buffers
from .backward import recurrence_bwd_kernel
from .forward import recurrence_fwd_kernel
from .plan import TritonPlan
from .pointwise import pointwise
from .shapes import padded_head_dim


def shape_constants(spec: Cell, NH: int, DH: int) -> dict:
    """The kernels' compile-time constants that the call's shapes and cell fix (the plan sets the others)."""
    return dict(NH=NH, DH=DH, DH_P=padded_head_dim(DH), GX=spec.gates_x, GR=spec.gates_r, GB=spec.gates_b,
                S=spec.num_states)


def _lengths_arg(lengths, x):
    return (x, False) if lengths is None else (lengths.to(x.device), True)


def _resets_args(resets, block_b: int) -> dict:
    """The kernels' resets arguments (resets.py): none without resets, so that such a call
    compiles and runs the kernels as they were (HAS_RESETS off); else the resets [B, T] and
    whether any sequence of each batch tile has one at each step [tiles, T], as uint8."""
    if resets is None:
        return {}
    B, T = resets.shape
    tiles = triton.cdiv(B, block_b)
    # the padding to whole tiles resets nowhere
    by_tile = torch.nn.functional.pad(resets, (0, 0, 0, tiles * block_b - B)).view(tiles, block_b, T).any(1)
    return dict(resets_ptr=resets.contiguous().view(torch.uint8), tile_resets_ptr=by_tile.view(torch.uint8),
                HAS_RESETS=True)


def _launch(x, cell: str, plan: TritonPlan, backward: bool):
    """The cell's spec, the grid and the kernel's constants and options for `plan`."""
    if plan.backward != backward:  # a plan passed by hand (explicit.py) for the other kernel
        raise ValueError(f"the {'backward' if backward else 'forward'} kernel got a plan for the other one: {plan}")
    spec = get_cell(cell)
    B, _, _, NH, DH = x.shape
    meta = dict(shape_constants(spec, NH, DH), **plan.constants(), **plan.options())
    return spec, (NH, triton.cdiv(B, plan.BLOCK_B)), meta


def forward(x, R, b, states, lengths, cell, need_saved, plan: TritonPlan, resets=None):
    x, R, b, states = (t.contiguous() for t in (x, R, b, states))
    B, T, _, NH, DH = x.shape
    spec, grid, meta = _launch(x, cell, plan, backward=False)
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved, saved_states, products = saved_buffers.allocate(x, states, cell, need_saved, plan.products)
    len_arg, has_lengths = _lengths_arg(lengths, x)
    recurrence_fwd_kernel[grid](
        x, R, b, states, len_arg, y, final, saved if saved_states is None else saved_states,
        saved if products is None else products, B, T,
        CELL=pointwise(spec)[0], HAS_LENGTHS=has_lengths, SAVE=need_saved, SAVE_PRODUCTS=products is not None, **meta,
        **_resets_args(resets, plan.BLOCK_B),
    )
    return y, final, saved


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, plan: TritonPlan, resets=None):
    """`plan.products` must be what the forward that filled `saved` was planned with."""
    x, R, b, states, dy, dfinal = (t.contiguous() for t in (x, R, b, states, dy, dfinal))
    B, T, GX, NH, DH = x.shape
    spec, grid, meta = _launch(x, cell, plan, backward=True)
    dx = outputs.empty(x.shape, like=x)
    # drec as [NH, B*T, GR*DH], the layout the dR matmul below reads without a copy
    drec = outputs.empty((NH, B * T, spec.gates_r * DH), like=x, dtype=torch.float32)
    derived = plan.DX_DB_FROM_DREC
    db_partial = outputs.empty((0,) if derived else (grid[1], spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    dstates = outputs.empty(states.shape, like=states)
    saved_states, products = saved_buffers.split(saved, x, states, cell, plan.products)
    len_arg, has_lengths = _lengths_arg(lengths, x)
    recurrence_bwd_kernel[grid](
        x, R, b, states, len_arg, y, saved_states, saved_states if products is None else products,
        dy, dfinal, dx, drec, db_partial, dstates, B, T,
        CELL=pointwise(spec)[1], HAS_LENGTHS=has_lengths, LOAD_PRODUCTS=products is not None, **meta,
        **_resets_args(resets, plan.BLOCK_B),
    )
    dR = entering_states(states, y, resets).weight_gradient(drec_steps(drec, DH), R.dtype)
    if not derived:
        return dx, dR, bias_gradient(db_partial, b.dtype), dstates
    drec_by_step = drec.view(NH, B, T, GX, DH)  # GX == GR == GB for these cells
    dx.copy_(drec_by_step.permute(1, 2, 3, 0, 4))
    db = drec_by_step.sum((1, 2)).transpose(0, 1).to(b.dtype)
    return dx, dR, db, dstates
