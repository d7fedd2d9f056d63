"""Moving between the layouts torch.nn.LSTM accepts and the [B, T, F] one the
recurrence runs on: padding and packing, and reversing each sequence within its
own length (or, with resets, within each segment between resets) for the
backward direction."""
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


def reverse_within(x: Tensor, lengths: Optional[Tensor], resets: Optional[Tensor] = None) -> Tensor:
    """Reverse [B, T, ...] along T inside each sequence's first `lengths` steps;
    the padding past a length stays in place. With resets [B, T], inside each
    segment between resets instead: a segment keeps its place, so the reversed
    order's segments start where the original's do and the same resets mark
    them. Applying it twice is the identity."""
    if lengths is None and resets is None:
        return x.flip(1)
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device)
    lengths = torch.full((B, 1), T, device=x.device) if lengths is None else lengths.to(x.device)[:, None]
    valid = t < lengths
    if resets is None:
        start, end = torch.zeros_like(lengths), lengths
    else:
        marks = resets.to(x.device) & valid
        # the segment of step t is [start, end): the last reset at or before t, the next one after it
        start = torch.where(marks, t, 0).cummax(1).values
        following = torch.where(marks, t, T).roll(-1, 1)
        following[:, -1] = T
        end = torch.minimum(following.flip(1).cummin(1).values.flip(1), lengths)
    index = torch.where(valid, start + end - 1 - t, t)  # [B, T]
    index = index.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)
