"""`fusedrnn bench --plan FWD/BWD`: cuda_fused with the planner narrowed to one
kernel family a direction (one_sm, grid, cluster, or auto for the planner's
own choice), timed beside everything else in the same process. The provider
is named `cuda_fused:FWD/BWD`. This is how kernel families are compared
(the head sweep of one SM against a cluster, the grid against a cluster)
without replacing any function or setting any variable."""
from __future__ import annotations

import argparse

import torch

from ..backends.cuda.fused.plan import STRATEGIES, plan
from ..backends.cuda.fused.planned import with_plans
from ..backends.cuda.runtime.device import device_limits
from ..cells import get_cell
from ..problem import Problem

PREFIX = "cuda_fused:"


def plan_spec(text: str) -> str:
    """An argparse type: FWD/BWD, each one of the strategies or auto."""
    parts = text.split("/")
    choices = ("auto",) + STRATEGIES
    if len(parts) != 2 or any(p not in choices for p in parts):
        raise argparse.ArgumentTypeError(f"expected FWD/BWD with each of {', '.join(choices)}, got {text!r}")
    return text


def planned_function(name: str, case):
    """The run function of provider `name` (cuda_fused:FWD/BWD) for the case, of rnn's call form."""
    forward, backward = (None if s == "auto" else s for s in name.removeprefix(PREFIX).split("/"))
    device = torch.device(case.device)
    problem = Problem(get_cell(case.cell), case.B, case.T, case.NH, case.DH, case.dtype, device, False,
                      case.backward)
    limits = device_limits(device.index)
    plans = (plan(problem, limits, "forward", strategy=forward),
             plan(problem, limits, "backward", strategy=backward) if case.backward else None)
    return with_plans(*plans)
