"""The facts about one call that decide which backend can run it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .cells import Cell, get_cell


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
    # last and defaulted: the planners and tools that build a Problem by hand describe calls without resets
    has_resets: bool = False

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim


def problem_of(x: torch.Tensor, cell: str, lengths: Optional[torch.Tensor], needs_grad: bool,
               resets: Optional[torch.Tensor] = None) -> Problem:
    """The facts of a call with x [B, T, Gx, NH, DH] (what rnn() dispatches on and the planners read)."""
    B, T, _, NH, DH = x.shape
    return Problem(get_cell(cell), B, T, NH, DH, x.dtype, x.device, lengths is not None, needs_grad,
                   resets is not None)


def checked_resets(resets: Optional[torch.Tensor], B: int, T: int, device) -> Optional[torch.Tensor]:
    """resets [B, T] bool checked, viewed as uint8 bytes, contiguous (None stays None; no copy
    where they are contiguous): what the cuda_alternating kernels index, and what cuda_fused packs
    into bits (launchers.reset_words). The explicit paths (plans passed by hand) skip rnn()'s
    checks: anything else raises."""
    if resets is None:
        return None
    if resets.shape != (B, T) or resets.dtype != torch.bool or resets.device != device:
        raise ValueError(f"resets: expected a torch.bool tensor of shape {(B, T)} on {device}, got "
                         f"{resets.dtype} {tuple(resets.shape)} on {resets.device}")
    return resets.contiguous().view(torch.uint8)


def check_lengths_range(lengths: Optional[torch.Tensor], steps: int) -> None:
    """Every length in [0, T]. It reads the values (a device sync on a GPU), so
    it runs inside the backends' ops, where torch.compile's graph runs it too."""
    if lengths is None or lengths.numel() == 0:
        return
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 0 or hi > steps:
        raise ValueError(f"lengths: expected values in [0, T={steps}], got min {lo} and max {hi}")
