"""The internal call path with explicit plans: a recurrence that runs the
plans it is given instead of asking the planner. For tests, the tuner's
check and timer, probes and `fusedrnn bench --plan`; `fusedrnn.rnn` never
takes a plan (tuning knobs stay out of the public signature)."""
from __future__ import annotations

import torch

from ....problem import check_lengths_range
from . import launchers
from .plan import Plan


class PlannedRecurrence(torch.autograd.Function):
    """First-order autograd around the launchers, with the plans fixed."""

    @staticmethod
    def forward(ctx, forward_plan, backward_plan, cell, lengths, x, R, b, states):
        need_saved = backward_plan is not None and any(ctx.needs_input_grad[4:8])
        y, final, saved = launchers.forward(forward_plan, x, R, b, states, lengths, cell, need_saved)
        ctx.backward_plan, ctx.cell, ctx.lengths = backward_plan, cell, lengths
        ctx.save_for_backward(x, R, b, states, y, final, saved)
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        if ctx.backward_plan is None:
            raise RuntimeError("this planned recurrence was run without a backward plan")
        x, R, b, states, y, final, saved = ctx.saved_tensors
        dy = torch.zeros_like(y) if dy is None else dy
        dfinal = torch.zeros_like(final) if dfinal is None else dfinal
        dx, dR, db, dstates = launchers.backward(ctx.backward_plan, dy, dfinal, x, R, b, states, ctx.lengths, y,
                                                 final, saved, ctx.cell)
        return None, None, None, None, dx, dR, db, dstates


def with_plans(forward_plan: Plan, backward_plan: Plan | None = None):
    """A function with `fusedrnn.rnn`'s call form, `(x, R, b, states, *, cell, lengths=None)
    -> (y, final)`, that runs these plans (states required)."""
    def run(x, R, b, states, *, cell: str, lengths=None, backend=None):
        check_lengths_range(lengths, x.shape[1])
        return PlannedRecurrence.apply(forward_plan, backward_plan, cell, lengths, x, R, b, states)

    return run
