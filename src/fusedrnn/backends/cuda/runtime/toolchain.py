"""Whether the CUDA backends can run here at all: NVRTC and cuda.core
installed (the kernels compile on any machine), and a CUDA GPU of compute
capability 8.0 or more (mma.sync with bf16 inputs) to run them."""
from __future__ import annotations

import torch

from ..cell_codegen import too_many
from ..cxx import STORAGE_TYPES

MIN_CAPABILITY = (8, 0)


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
TOOLCHAIN = _check_toolchain()


@torch.compiler.assume_constant_result
def capability(index):
    return torch.cuda.get_device_capability(index)


def available():
    ok, reason = TOOLCHAIN
    if not ok:
        return False, reason
    if not torch.cuda.is_available():
        return False, "no CUDA GPU (the NVRTC compiler is here: kernels compile, but cannot run)"
    return True, "NVRTC + cuda.core with a CUDA GPU"


def check_call(problem) -> str:
    """Why the CUDA backends cannot run this call's cell, device or dtype ('' when they can):
    every kernel of both holds at most 4 gates of each kind and 4 states an element, and is
    written for the storage types of cxx.STORAGE_TYPES. Pure Python: no compile."""
    cell = problem.cell
    if cell.symbolic is None:  # a Cell of torch functions alone: no step to print its struct from
        return f"cell {cell.name!r}: no CUDA struct (it was not built from a step: define it with define_cell)"
    counts = too_many(cell.gates_x, cell.gates_r, cell.gates_b, cell.num_states)
    if counts:
        return f"cell {cell.name!r}: {counts}"
    if problem.device.type != "cuda":
        return f"device {problem.device} (the CUDA kernels need a CUDA GPU)"
    found = capability(problem.device.index)
    if found < MIN_CAPABILITY:
        return f"GPU compute capability {found} < {MIN_CAPABILITY}"
    if problem.dtype not in STORAGE_TYPES:
        return f"dtype {problem.dtype} not supported (float16, bfloat16, float32)"
    return ""
