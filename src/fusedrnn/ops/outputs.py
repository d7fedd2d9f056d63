"""Allocation of backend outputs.

Under test every output buffer is filled with NaN before a backend writes it,
so an element a kernel forgets to write shows up as NaN instead of as a stale
value that happens to look right.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch

_poison = os.environ.get("FUSEDRNN_POISON", "") == "1"


def empty(shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
    if _poison and out.is_floating_point():
        out.fill_(float("nan"))
    return out


@contextmanager
def poisoned(enabled: bool = True):
    """Fill every output buffer with NaN before it is written (for tests)."""
    global _poison
    previous, _poison = _poison, enabled
    try:
        yield
    finally:
        _poison = previous


def saved_states_shape(x: torch.Tensor, states: torch.Tensor, need_saved: bool) -> tuple:
    """What the kernel backends keep for the backward: states 1..S-1 entering
    every step and the final ones, [T + 1, S - 1, B, NH, DH] in fp32 (h comes
    back from y)."""
    B, T, _, NH, DH = x.shape
    return (T + 1, states.shape[0] - 1, B, NH, DH) if need_saved else (0,)


def saved_states_like(x, states, cell, need_saved) -> torch.Tensor:
    """An empty tensor shaped like `saved` (the custom op's fake kernel)."""
    return x.new_empty(saved_states_shape(x, states, need_saved), dtype=torch.float32)
