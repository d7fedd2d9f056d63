"""The `triton` backend: persistent Triton kernels, forward and backward; heads too large for them
(R over what one program keeps on chip) a launch a step (stepwise.py)."""
from __future__ import annotations

import os

import torch

from ...problem import Problem, problem_of
from ...ops.custom_op import define_recurrence_ops
from ...ops.registry import Backend, register
from .shapes import padded_head_dim

# gates of each kind and states the kernels pass a cell's pointwise functions: four
# tiles each, the unused ones zero (pointwise.py; cell_codegen.py generates them so)
CELL_SLOTS = 4

MAX_HEAD_DIM = 128
WEIGHT_BUDGET = 200 * 1024  # bytes of R one program keeps in shared memory (an H100 block has 227 KiB)
_INTERPRET = os.environ.get("TRITON_INTERPRET", "") == "1"


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _interpreter_conflict(triton_version: str) -> str | None:
    """Why this Triton's interpreter cannot run the kernels here, or None: Triton 3.6's takes
    int() of the loop bound T, a 1-element array, which NumPy 2.4 refuses (3.7 fixed it)."""
    import numpy

    if _release(triton_version) < (3, 7) and _release(numpy.__version__) >= (2, 4):
        return (f"the interpreter of Triton {triton_version} fails with NumPy {numpy.__version__} (int() of a "
                "1-element array); use Triton >= 3.7 or numpy<2.4")
    return None


def available():
    try:
        import triton
    except ImportError as error:
        return False, f"triton is not installed ({error}); pip install 'fusedrnn[triton]'"
    if _INTERPRET and (conflict := _interpreter_conflict(triton.__version__)):
        return False, conflict
    if torch.cuda.is_available():
        return True, "triton with a CUDA GPU"
    if _INTERPRET:
        return True, "triton interpreter on CPU (TRITON_INTERPRET=1; slow, for tests)"
    return False, "no CUDA GPU (set TRITON_INTERPRET=1 to run the kernels on CPU, slowly)"


def runs_stepwise(problem: Problem) -> bool:
    """Whether the call's head is too large for the persistent kernels to hold R on chip: then it runs
    a launch a step (stepwise.py), R read from L2 each step."""
    padded = padded_head_dim(problem.head_dim)
    return (problem.head_dim > MAX_HEAD_DIM
            or problem.cell.gates_r * padded * padded * problem.dtype.itemsize > WEIGHT_BUDGET)


def supports(problem: Problem):
    cell = problem.cell
    counts = (("gates_x", cell.gates_x), ("gates_r", cell.gates_r), ("gates_b", cell.gates_b),
              ("states", cell.num_states))
    for what, count in counts:
        if count > CELL_SLOTS:
            return False, (f"cell {cell.name!r} has {what}={count}; the Triton kernels pass a cell at most "
                           f"{CELL_SLOTS} gates of each kind and {CELL_SLOTS} states (use backend='torch')")
    if problem.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return False, f"dtype {problem.dtype} not supported (float16, bfloat16, float32)"
    if problem.device.type == "cuda":
        return True, ""
    if problem.device.type == "cpu" and _INTERPRET:
        if problem.dtype == torch.bfloat16:
            return False, "bfloat16 under the Triton interpreter (its bf16 tl.dot is wrong); use fp16/fp32"
        return True, ""
    return False, f"device {problem.device} (the Triton kernels need CUDA, or CPU with TRITON_INTERPRET=1)"


# The backend's three op functions: each plans its call (plan.py, as shipped) and
# runs the plan. triton is imported when the backend is first used, and the fake
# kernel (saved_like) imports no triton at all.

def _plan(x, cell, lengths, need_grad, backward):
    from .plan import plan

    return plan(problem_of(x, cell, lengths, need_grad), backward)


def saved_like(x, states, cell, need_saved):
    from .saved import saved_like

    if runs_stepwise(problem_of(x, cell, None, need_saved)):
        return saved_like(x, states, cell, need_saved, "none")
    # the fake kernel is not given the lengths; no plan depends on them (only the launch's HAS_LENGTHS)
    products = _plan(x, cell, None, need_saved, backward=False).products
    return saved_like(x, states, cell, need_saved, products)


def _forward(x, R, b, states, lengths, cell, need_saved, resets=None):
    problem = problem_of(x, cell, lengths, need_saved, resets)
    if runs_stepwise(problem):
        from . import stepwise as steps
        from .plan import stepwise_plan

        return steps.forward(x, R, b, states, lengths, cell, resets, need_saved, stepwise_plan(problem, False))
    from .launch import forward

    plan = _plan(x, cell, lengths, need_saved, backward=False)
    return forward(x, R, b, states, lengths, cell, need_saved, plan, resets=resets)


def _backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets=None):
    problem = problem_of(x, cell, lengths, True, resets)
    if runs_stepwise(problem):
        from . import stepwise as steps
        from .plan import stepwise_plan

        return steps.backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets,
                              stepwise_plan(problem, True))
    from .launch import backward

    plan = _plan(x, cell, lengths, True, backward=True)
    return backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, plan, resets=resets)


TRITON = register(
    Backend(
        name="triton", priority=20, available=available, supports=supports,
        run=define_recurrence_ops("triton", _forward, _backward, saved_like),
        # never the interpreter; not the stepwise form of large heads until it is measured against the others
        auto_eligible=lambda problem: problem.device.type == "cuda" and not runs_stepwise(problem),
    )
)
