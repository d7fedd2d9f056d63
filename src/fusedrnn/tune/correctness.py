"""The tuner's correctness gate (the default check of `tune`; tests inject a
fake one). Many candidates have never run on a GPU (other K-slice counts,
splits of one column tile...), and a winner is what the backend will run: so
before a candidate is timed it runs through the internal call path with
explicit plans (backends/cuda/fused/planned.py), at a small shape with the call's cell, dtype, DH and NH, on
fresh random inputs with lengths and initial states, outputs poisoned with
NaN, and must pass the project's rule against the float64 torch reference
(fusedrnn.testing): forward only (inference) and forward+backward (training).

A check is `check(plan, call) -> str`: '' when the plan passes, else why not.
The check's shape has the call's cell, dtype, DH and NH and at most
CHECK_BATCH sequences, so the candidate's kernel runs it whatever B it was
tuned for (a batch tile only ever covers fewer sequences)."""
from __future__ import annotations

import torch

from ..backends.cuda.fused.plan import plan as planned
from ..backends.cuda.fused.planned import with_plans
from ..backends.cuda.runtime.device import device_limits
from ..ops.outputs import poisoned
from ..cells import get_cell
from ..problem import Problem
from ..testing import check_backend

CHECK_BATCH = 5  # at most: a partial batch tile
CHECK_STEPS = 37


class GpuCheck:
    def __init__(self, device=None):
        index = torch.cuda.current_device() if device is None else torch.device(device).index
        self.device = torch.device("cuda", index)

    def __call__(self, plan, call) -> str:
        # a forward plan runs in inference and in training (which also saves states), with the
        # planner's backward; a backward plan only in training, after the planner's forward
        B = min(call.B, CHECK_BATCH)
        problem = Problem(get_cell(call.cell), B, CHECK_STEPS, call.NH, call.DH, call.dtype, self.device, True, True)
        other = "forward" if plan.direction == "backward" else "backward"
        try:
            partner = planned(problem, device_limits(self.device.index), other)
        except ValueError as error:
            return f"no {other} plan to pair it with: {error}"
        plans = (partner, plan) if plan.direction == "backward" else (plan, partner)
        for with_grads in (True,) if plan.direction == "backward" else (False, True):
            passes = "forward+backward" if with_grads else "forward"
            try:
                with torch.cuda.device(self.device), poisoned():
                    check_backend(with_plans(*plans), call.cell, call.dtype, B, CHECK_STEPS,
                                  call.NH, call.DH, self.device, with_grads=with_grads)
            except Exception as error:  # a mismatch, or a kernel that fails to compile or launch
                return f"{passes}: {type(error).__name__}: {error}"
        return ""
