"""The facts about one call that decide which backend can run it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .cells import Cell


@dataclass(frozen=True)
class Problem:
    cell: Cell
    batch: int
    steps: int
    heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device
    has_lengths: bool
    needs_grad: bool

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim


def check_lengths_range(lengths: Optional[torch.Tensor], steps: int) -> None:
    """Every length in [0, T]. It reads the values (a device sync on a GPU), so
    it runs inside the backends' ops, where torch.compile's graph runs it too."""
    if lengths is None or lengths.numel() == 0:
        return
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 0 or hi > steps:
        raise ValueError(f"lengths: expected values in [0, T={steps}], got min {lo} and max {hi}")
