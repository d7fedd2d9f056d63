"""Resets inside a sequence, in the kernels (their HAS_RESETS constant).

Where a sequence restarts at step t, step t starts from the initial states
instead of those carried from step t-1: the forward selects them before the
step (h too, so the product R h sees them), and the backward recomputes the
step from them and hands the gradient flowing into the states entering step t
to the initial states' gradient instead of to step t-1.

The launcher passes two uint8 tables (launch.py): the resets, [B, T], and
whether any sequence of a batch tile has one at a step, [tiles, T]. A program
reads the second one step ahead and branches on it: the flags, the initial
states (read again, not held in registers for the whole sequence) and the
layout conversions they need run only at steps where a sequence of its tile
restarts; there the kernels drop the resets past a sequence's length. A reset
at step 0 restarts from the states step 0 starts from anyway. A kernel
compiled without HAS_RESETS reads neither table, so calls without resets run
the code they ran before.
"""
import triton
import triton.language as tl


@triton.jit
def tile_restarts(tile_resets_ptr, tile, t, T):
    """Whether any sequence of the program's batch tile has a reset at step t (False outside [0, T))."""
    inside = (t >= 0) & (t < T)
    return tl.load(tile_resets_ptr + tile * T + t, mask=inside, other=0) != 0


@triton.jit
def restarts(resets_ptr, batch, t, B, T):
    """[1, BLOCK_B] bool: the tile's sequences with a reset at step t (lengths not applied)."""
    return tl.load(resets_ptr + batch * T + t, mask=batch < B, other=0) != 0


@triton.jit
def restart_state(restart, s0_ptr, offsets, mask, carried, s: tl.constexpr, S: tl.constexpr, stride):
    """State s entering a step, in fp32: the initial one where the sequence restarts,
    else `carried`. Slots past S stay as they are (the cells' constant zeros)."""
    if s < S:
        initial = tl.load(s0_ptr + s * stride + offsets, mask=mask & restart, other=0.0).to(tl.float32)
        return tl.where(restart, initial, carried)
    else:
        return carried


@triton.jit
def hand_to_initial(restart, ds, dinitial, s: tl.constexpr, S: tl.constexpr):
    """(gradient carried to step t-1, initial states' gradient) for state s after step t's
    backward: at a restart the gradient of the states entering step t is the initial
    states', and nothing crosses to step t-1."""
    if s < S:
        return tl.where(restart, 0.0, ds), dinitial + tl.where(restart, ds, 0.0)
    else:
        return ds, dinitial
