"""Wraps a backend's forward and backward as `torch.library` custom ops.

Every backend runs behind two opaque ops, `fusedrnn::<name>_fwd` and
`fusedrnn::<name>_bwd`, so `torch.compile(fullgraph=True)` sees one node per
call (no graph break, no tracing into the time loop) and autograd calls the
backend's own backward. A backend supplies three plain functions:

  forward(x, R, b, states, lengths, cell, need_saved) -> (y, final, saved)
  backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell)
      -> (dx, dR, db, dstates)
  saved_like(x, states, cell, need_saved) -> an empty tensor shaped like `saved`

`saved` is whatever the backend keeps for its backward (an empty tensor when no
gradient is needed). Outputs are made contiguous here, once for all backends.
The returned `run(x, R, b, states, lengths, cell, need_grad) -> (y, final)` is
what the backend registers.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor


def _contiguous(tensors):
    # the fake kernels promise contiguous outputs; torch.compile checks strides
    return tuple(t.contiguous() for t in tensors)


def define_recurrence_ops(backend: str, forward: Callable, backward: Callable, saved_like: Callable):
    @torch.library.custom_op(f"fusedrnn::{backend}_fwd", mutates_args=())
    def fwd(
        x: Tensor, R: Tensor, b: Tensor, states: Tensor, lengths: Optional[Tensor], cell: str, need_saved: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        return _contiguous(forward(x, R, b, states, lengths, cell, need_saved))

    @fwd.register_fake
    def _(x, R, b, states, lengths, cell, need_saved):
        B, T, _, NH, DH = x.shape
        return x.new_empty(B, T, NH, DH), states.new_empty(states.shape), saved_like(x, states, cell, need_saved)

    @torch.library.custom_op(f"fusedrnn::{backend}_bwd", mutates_args=())
    def bwd(
        dy: Tensor, dfinal: Tensor, x: Tensor, R: Tensor, b: Tensor, states: Tensor,
        lengths: Optional[Tensor], y: Tensor, final: Tensor, saved: Tensor, cell: str,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return _contiguous(backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell))

    @bwd.register_fake
    def _(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell):
        return tuple(t.new_empty(t.shape) for t in (x, R, b, states))

    def setup_context(ctx, inputs, output):
        x, R, b, states, lengths, cell, _ = inputs
        y, final, saved = output
        ctx.save_for_backward(x, R, b, states, lengths, y, final, saved)
        ctx.cell = cell

    def backward_rule(ctx, dy, dfinal, _dsaved):
        x, R, b, states, lengths, y, final, saved = ctx.saved_tensors
        dy = torch.zeros_like(y) if dy is None else dy
        dfinal = torch.zeros_like(final) if dfinal is None else dfinal
        dx, dR, db, dstates = bwd(dy, dfinal, x, R, b, states, lengths, y, final, saved, ctx.cell)
        return dx, dR, db, dstates, None, None, None

    fwd.register_autograd(backward_rule, setup_context=setup_context)

    def run(x, R, b, states, lengths, cell, need_grad):
        y, final, _ = fwd(x, R, b, states, lengths, cell, need_grad)
        return y, final

    return run
