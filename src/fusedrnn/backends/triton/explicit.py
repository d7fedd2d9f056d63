"""The Triton kernels run with plans the caller gives, not the ones the backend's
ops plan: for tests, probes and scripts that run variants (variants.py) or
hand-made plans (dataclasses.replace of a planned one) side by side in one process.

  forward_plan, backward_plan = variant_plans(x, cell, lengths, "stacked")
  y, final = run_with_plans(x, R, b, states, lengths, cell, forward_plan, backward_plan, resets=None)
  check_backend(with_variant("stacked"), ...)  # fusedrnn.testing: rnn's call form, planned per call

Eager autograd (ops/custom_op.explicit_recurrence) around the very launchers
the ops call (launch.py), without the custom ops: torch.library ops have one
fixed signature per backend, and a plan is no op argument. Inputs are taken as
`fusedrnn.rnn` passes them to a backend (validated, states given, no autocast).
"""
from __future__ import annotations

from ...ops.custom_op import explicit_recurrence
from . import launch
from ...problem import problem_of
from .plan import TritonPlan, plan


def variant_plans(x, cell: str, lengths, variant: str) -> tuple[TritonPlan, TritonPlan]:
    """The forward and backward plans of a training call like `x` run as `variant`."""
    problem = problem_of(x, cell, lengths, needs_grad=True)
    return plan(problem, backward=False, variant=variant), plan(problem, backward=True, variant=variant)


def with_variant(variant: str):
    """A function of `fusedrnn.rnn`'s call form, `(x, R, b, states, *, cell, lengths=None,
    resets=None) -> (y, final)`, that plans each call as `variant` and runs it (states required)."""
    def run(x, R, b, states, *, cell: str, lengths=None, resets=None):
        plans = variant_plans(x, cell, lengths, variant)
        return run_with_plans(x, R, b, states, lengths, cell, *plans, resets=resets)

    return run


def run_with_plans(x, R, b, states, lengths, cell: str, forward_plan: TritonPlan, backward_plan: TritonPlan,
                   resets=None):
    """(y, final) of the recurrence, differentiable once, the forward run as `forward_plan`
    and the backward as `backward_plan`; `resets` as fusedrnn.rnn takes them ([B, T] bool)."""
    if forward_plan.products != backward_plan.products:  # the backward reads what the forward saved
        raise ValueError(f"the plans save and read different products: {forward_plan.products!r} "
                         f"and {backward_plan.products!r}")
    run = explicit_recurrence("triton", lambda *a, **k: launch.forward(*a, forward_plan, **k),
                              lambda *a, **k: launch.backward(*a, backward_plan, **k))
    return run(x, R, b, states, cell=cell, lengths=lengths, resets=resets)
