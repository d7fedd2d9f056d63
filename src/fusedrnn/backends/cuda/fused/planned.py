"""The internal call path with explicit plans: a recurrence that runs the
plans it is given instead of asking the planner. For tests, the tuner's
check and timer, probes and `fusedrnn bench --plan`; `fusedrnn.rnn` never
takes a plan (tuning knobs stay out of the public signature)."""
from __future__ import annotations

import functools

from ....ops.custom_op import explicit_recurrence
from . import launchers
from .plan import Plan


def without_backward(*_):
    raise RuntimeError("this planned recurrence was run without a backward plan")


def with_plans(forward_plan: Plan, backward_plan: Plan | None = None):
    """A function with `fusedrnn.rnn`'s call form, `(x, R, b, states, *, cell, lengths=None,
    resets=None) -> (y, final)`, that runs these plans (states required; with resets, plans
    built for them: plan.with_resets)."""
    backward = without_backward if backward_plan is None else functools.partial(launchers.backward, backward_plan)
    return explicit_recurrence("cuda_fused", functools.partial(launchers.forward, forward_plan), backward)
