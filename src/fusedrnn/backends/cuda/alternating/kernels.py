"""The cuda_alternating kernels (csrc/alternating.cu): their names, the list
of every instantiation a call can select, and their launch over elements.
They are compiled, cached and launched by the shared runtime (runtime/), from
their own translation unit (a compile takes ~0.1 s); a step kernel from that
unit with its cell's generated struct as the prelude (step_source)."""
from __future__ import annotations

from pathlib import Path

import torch

from ....cells import BUILT_IN
from ..cxx import STORAGE_TYPES, cell_type, cell_unit
from ..runtime import launch as runtime

SOURCE = Path(__file__).parent / "csrc" / "alternating.cu"
THREADS = 256  # ALTERNATING_THREADS in csrc/alternating_steps.cuh
SET_CALL = "fusedrnn::alternating_set_call"


def step_kernel(cell: str, dtype: torch.dtype, product_dtype: torch.dtype, backward: bool) -> str:
    """The pointwise step of `cell` in storage `dtype`, reading GEMM results of `product_dtype`.
    Fast MUFU tanh in bfloat16 only, as cuda_fused (its error is under bf16's rounding)."""
    fast = str(dtype == torch.bfloat16).lower()
    kind = "backward" if backward else "forward"
    return (f"fusedrnn::alternating_{kind}_step<{cell_type(cell)}, {STORAGE_TYPES[dtype]}, "
            f"{STORAGE_TYPES[product_dtype]}, {fast}>")


def step_source(cell: str):
    """The translation unit of `cell`'s step kernels (the staging and call kernels need no cell: SOURCE)."""
    return cell_unit(SOURCE, cell)


def stage_kernel(dtype: torch.dtype, backward: bool) -> str:
    return f"fusedrnn::alternating_stage_{'backward' if backward else 'forward'}<{STORAGE_TYPES[dtype]}>"


def product_dtypes(dtype: torch.dtype) -> tuple[torch.dtype, ...]:
    """GEMM result types a call may use: fp32, or the storage type where torch cannot give fp32."""
    return (torch.float32,) if dtype == torch.float32 else (torch.float32, dtype)


def shipped_alternating_kernels() -> list[tuple]:
    """(name expression, translation unit) of every instantiation a call of a built-in cell can
    select, by name (CI compiles them all, tests/test_cuda_compile.py)."""
    kernels = {SET_CALL: SOURCE}
    for dtype in STORAGE_TYPES:
        for backward in (False, True):
            kernels[stage_kernel(dtype, backward)] = SOURCE
            for cell in BUILT_IN:
                for product in product_dtypes(dtype):
                    kernels[step_kernel(cell, dtype, product, backward)] = step_source(cell)
    return sorted(kernels.items())


def launch(name_expression: str, elements: int, device: torch.device, *args, block: int = THREADS,
           max_blocks: int | None = None, source=SOURCE):
    """Run the kernel of the translation unit `source` on torch's current stream (a capturing
    stream included) over `elements` threads' worth of blocks (at most `max_blocks`, for
    grid-stride kernels)."""
    blocks = max(1, -(-elements // block))
    if max_blocks is not None:
        blocks = min(blocks, max_blocks)
    runtime.launch(name_expression, source, (blocks, 1, 1), block, 0, device, *args)
