"""The largest head dim the `cuda_fused` kernels run per cell and dtype on a
device: on one SM a head, and split over CTAs (forward, and training)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backends.cuda.cxx import STORAGE_TYPES
from ..backends.cuda.fused.grid import MAX_HEAD_DIM, PAD_TO
from ..backends.cuda.runtime.device import DeviceLimits
from ..cells import CELLS
from .space import fused_space, one_sm_head_dims, split_space


@dataclass(frozen=True)
class LargestHeadDims:
    cell: str
    dtype: torch.dtype
    one_sm: int  # forward and backward with a head on one SM (0: none)
    split_forward: int  # a head split over CTAs, forward only
    split_training: int  # a head split over CTAs, forward and backward


def largest_head_dims(limits: DeviceLimits, B: int = 16) -> list[LargestHeadDims]:
    """One row per cell and dtype, for a batch of B and one head."""
    rows = []
    for cell in CELLS:
        for dtype in STORAGE_TYPES:
            def runs(space, DH, backward):
                return bool(space(cell, dtype, DH, 1, B, backward, limits))

            one_sm = [DH for DH in one_sm_head_dims() if runs(fused_space, DH, True) and runs(fused_space, DH, False)]
            split = [DH for DH in range(PAD_TO, MAX_HEAD_DIM + 1, PAD_TO) if runs(split_space, DH, False)]
            training = [DH for DH in split if runs(split_space, DH, True)]
            rows.append(LargestHeadDims(cell, dtype, max(one_sm, default=0), max(split, default=0),
                                        max(training, default=0)))
    return rows
