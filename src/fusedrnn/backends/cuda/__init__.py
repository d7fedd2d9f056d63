"""The `cuda_fused` backend: persistent CUDA kernels compiled at run time by
NVRTC (csrc/, compile.py), R on chip for the whole sequence, tensor-core MMA."""
from __future__ import annotations

import torch

from ...problem import Problem
from .. import outputs
from ..custom_op import define_recurrence_ops
from ..registry import Backend, register

MIN_CAPABILITY = (8, 0)  # mma.sync with bf16 inputs


def _check_toolchain():
    try:
        import cuda.core  # noqa: F401
        from cuda.bindings import nvrtc  # noqa: F401
    except ImportError as error:
        return False, f"cuda-core / NVRTC not installed ({error}); pip install 'fusedrnn[cuda]'"
    try:
        from .compile import include_dirs, nvrtc_version

        nvrtc_version()
        include_dirs()
    except Exception as error:  # a missing libnvrtc or header directory
        return False, str(error)
    return True, ""


# worked out at import (~0.2 s): torch.compile cannot trace into NVRTC's bindings
_TOOLCHAIN = _check_toolchain()


@torch.compiler.assume_constant_result
def _capability(index):
    return torch.cuda.get_device_capability(index)


@torch.compiler.assume_constant_result
def _sm_count(index):
    return torch.cuda.get_device_properties(index).multi_processor_count


def available():
    ok, reason = _TOOLCHAIN
    if not ok:
        return False, reason
    if not torch.cuda.is_available():
        return False, "no CUDA GPU (the NVRTC compiler is here: kernels compile, but cannot run)"
    return True, "NVRTC + cuda.core with a CUDA GPU"


def supports(problem: Problem):
    from .fused import STORAGE_TYPES, fit_problem
    from .split import MAX_HEAD_DIM as MAX_SPLIT_HEAD_DIM
    from .split import choose_split

    if problem.device.type != "cuda":
        return False, f"device {problem.device} (the CUDA kernels need a CUDA GPU)"
    if problem.dtype not in STORAGE_TYPES:
        return False, f"dtype {problem.dtype} not supported (float16, bfloat16, float32)"
    capability = _capability(problem.device.index)
    if capability < MIN_CAPABILITY:
        return False, f"GPU compute capability {capability} < {MIN_CAPABILITY}"
    reason = fit_problem(problem.cell.name, problem.dtype, problem.head_dim, problem.batch)
    if not reason:
        return True, ""
    # a head over one SM: split over several CTAs, if they all fit the GPU at once
    sm_count = _sm_count(problem.device.index)
    for backward in (False, True) if problem.needs_grad else (False,):
        if choose_split(problem.cell.name, problem.dtype, problem.head_dim, problem.batch, problem.heads, sm_count,
                        backward) is None:
            return False, (f"{reason}; split over CTAs ({'backward' if backward else 'forward'}), it needs more "
                           f"shared memory or SMs than {sm_count} (or DH over {MAX_SPLIT_HEAD_DIM})")
    return True, ""


def _forward(*args):
    from .fused import forward

    return forward(*args)


def _backward(*args):
    from .fused import backward

    return backward(*args)


CUDA_FUSED = register(
    Backend(
        name="cuda_fused", priority=30, available=available, supports=supports,
        run=define_recurrence_ops("cuda_fused", _forward, _backward, outputs.saved_states_like),
    )
)

from . import alternating_backend  # noqa: E402,F401  (registers cuda_alternating)
