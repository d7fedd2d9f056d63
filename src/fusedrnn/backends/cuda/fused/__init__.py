"""The `cuda_fused` backend: persistent CUDA kernels compiled at run time by
NVRTC (csrc/, runtime/), R on chip for the whole sequence, tensor-core MMA.
A call is planned (plan.py, the only code that chooses) and the plan is run
(launchers.py)."""
from __future__ import annotations

import torch

from ....problem import Problem, problem_of
from ....ops import outputs
from ....ops.custom_op import define_recurrence_ops
from ....ops.registry import Backend, register
from ..runtime.device import DeviceLimits, device_limits
from ..runtime.toolchain import available, check_call
from . import launchers
from .plan import alternating_is_faster, plan, why_no_plan


def supports(problem: Problem):
    why = check_call(problem) or why_no_plan(problem, constant_limits(problem.device.index))
    return not why, why


@torch.compiler.assume_constant_result  # rnn() asks under torch.compile: a constant of the trace
def constant_limits(index) -> DeviceLimits:
    return device_limits(index)


def _forward(x, R, b, states, lengths, cell, need_saved, resets=None):
    chosen = plan(problem_of(x, cell, lengths, need_saved, resets), device_limits(x.device.index), "forward")
    return launchers.forward(chosen, x, R, b, states, lengths, cell, need_saved, resets)


def _backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets=None):
    chosen = plan(problem_of(x, cell, lengths, True, resets), device_limits(x.device.index), "backward")
    return launchers.backward(chosen, dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets)


CUDA_FUSED = register(
    Backend(
        name="cuda_fused", priority=30, available=available, supports=supports,
        run=define_recurrence_ops("cuda_fused", _forward, _backward, outputs.saved_states_like),
        auto_eligible=lambda problem: problem.device.type != "cuda" or not alternating_is_faster(
            problem, constant_limits(problem.device.index)),
    )
)
