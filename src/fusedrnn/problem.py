"""The facts about one call that decide which backend can run it."""
from __future__ import annotations

from dataclasses import dataclass

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
