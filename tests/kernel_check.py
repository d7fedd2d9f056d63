"""The FlashAttention rule (docs/design.md) for a fast backend, against the
independent float64 reference of tests/reference.py. The rule itself lives in
fusedrnn.testing: the tuner's correctness gate applies the same one.

`fused_plans` gives the cuda_fused plans of a call with each direction's planner
narrowed to one kernel family, for `with_plans` (the internal call path with
explicit plans: no environment variable, no replaced function)."""
from __future__ import annotations

import functools

import torch

from fusedrnn.testing import check_backend as _check_backend
from reference import reference_rnn

check_backend = functools.partial(_check_backend, reference=reference_rnn)


def fused_problem(cell, dtype, B, T, NH, DH, needs_grad=True, device="cuda", resets=False):
    from fusedrnn.cells import get_cell
    from fusedrnn.problem import Problem

    return Problem(get_cell(cell), B, T, NH, DH, dtype, torch.device(device), True, needs_grad, resets)


def device_limits(device="cuda"):
    """The limits of the CUDA device the tests run on (the current one for plain "cuda")."""
    from fusedrnn.backends.cuda.runtime.device import device_limits as limits

    index = torch.device(device).index
    return limits(torch.cuda.current_device() if index is None else index)


def fused_plans(cell, dtype, B, T, NH, DH, forward=None, backward=None, with_grads=True, device="cuda",
                resets=False):
    """(forward plan, backward plan or None) of cuda_fused for the call, each direction's
    planner narrowed to `forward` / `backward` (one_sm, grid, cluster; None: the planner's
    own choice), built to read resets where `resets`. Raises ValueError where the family
    cannot run the call."""
    from fusedrnn.backends.cuda.fused.plan import plan

    problem = fused_problem(cell, dtype, B, T, NH, DH, with_grads, device, resets)
    limits = device_limits(device)
    forward_plan = plan(problem, limits, "forward", strategy=forward)
    backward_plan = plan(problem, limits, "backward", strategy=backward) if with_grads else None
    return forward_plan, backward_plan


def planned(forward_plan, backward_plan=None):
    """A function of `fusedrnn.rnn`'s call form that runs these plans (for check_backend)."""
    from fusedrnn.backends.cuda.fused.planned import with_plans

    return with_plans(forward_plan, backward_plan)
