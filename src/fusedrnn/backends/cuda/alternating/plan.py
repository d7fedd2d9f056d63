"""The one planner of `cuda_alternating`: what a call's step loop runs, as an
immutable plan. The GEMMs write fp32 (as cuda_fused keeps its accumulators)
where torch can ask cuBLAS for it; the loop replays CUDA graphs. Tests and
probes pass a plan of their own (launch by launch, storage-type GEMM
results) through loop.forward / loop.backward."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AlternatingPlan:
    product_dtype: torch.dtype  # what the GEMMs write: float32, or the storage type
    graphs: bool = True  # the step loop replayed from CUDA graphs; False: launched step by step (debugging)


@functools.lru_cache(maxsize=None)
def fp32_products_supported(device: torch.device) -> bool:
    """Whether torch asks cuBLAS for an fp32 result from half inputs (bmm's out_dtype, torch >= 2.8)."""
    try:
        a, out = (torch.ones(1, 1, 1, device=device, dtype=d) for d in (torch.bfloat16, torch.float32))
        torch.bmm(a, a, torch.float32, out=out)  # no .item(): the first call may be inside a capture
        return True
    except (TypeError, RuntimeError, NotImplementedError):
        return False


def plan(dtype: torch.dtype, device: torch.device) -> AlternatingPlan:
    if dtype == torch.float32 or not fp32_products_supported(device):
        return AlternatingPlan(dtype)
    return AlternatingPlan(torch.float32)
