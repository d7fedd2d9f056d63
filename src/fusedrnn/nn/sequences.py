"""Moving between the layouts torch.nn.LSTM accepts and the [B, T, F] one the
recurrence runs on: padding and packing, and reversing each sequence within its
own length for the backward direction."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


def repack(padded: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
    """[B, T, F] in the caller's order -> PackedSequence with `like`'s metadata."""
    if like.sorted_indices is not None:
        padded = padded.index_select(0, like.sorted_indices.to(padded.device))
        lengths = lengths.index_select(0, like.sorted_indices.cpu())
    steps = torch.arange(padded.shape[1])
    valid = (steps[:, None] < lengths[None, :]).to(padded.device)  # [T, B], a prefix of B at each t
    data = padded.transpose(0, 1)[valid]
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


def reverse_within(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse [B, T, ...] along T inside each sequence's first `lengths` steps;
    the padding past a length stays in place. Applying it twice is the identity."""
    if lengths is None:
        return x.flip(1)
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device)
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(t < lengths, lengths - 1 - t, t)  # [B, T]
    index = index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)
