"""Registers `cuda_alternating`: any head size (DH=4096 included), every cell,
float16 / bfloat16 / float32, lengths and resets, per step a cuBLAS GEMM over
all heads and one NVRTC pointwise kernel, replayed from CUDA graphs (loop.py).

Its priority sits below `triton` (and `cuda_fused`): the persistent kernels keep
R on chip and are faster wherever they run, so backend="auto" picks this one
only for calls no fused backend supports (large heads, mostly), ahead of the
plain torch loop."""
from __future__ import annotations

from ....problem import Problem
from ....ops import outputs
from ....ops.custom_op import define_recurrence_ops
from ....ops.registry import Backend, register
from ..runtime.toolchain import available, check_call
from . import loop

PRIORITY = 10  # cuda_fused 30, triton 20, torch 0
MAX_ELEMENTS = 2**31 - 1  # B * NH * DH: the step kernels index one step in 32 bits


def supports(problem: Problem):
    why = check_call(problem)
    if why:
        return False, why
    elements = problem.batch * problem.heads * problem.head_dim
    if elements > MAX_ELEMENTS:
        return False, f"B * NH * DH = {elements} elements a step, over the {MAX_ELEMENTS} the step kernels index"
    return True, ""


def forward(x, R, b, states, lengths, cell, need_saved, resets=None):
    return loop.forward(x, R, b, states, lengths, cell, need_saved, resets=resets)


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets=None):
    return loop.backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets=resets)


CUDA_ALTERNATING = register(
    Backend(
        name="cuda_alternating", priority=PRIORITY, available=available, supports=supports,
        run=define_recurrence_ops("cuda_alternating", forward, backward, outputs.saved_states_like),
    )
)
