"""What the Triton forward keeps for its backward: one fp32 buffer (the custom op's `saved`).

Always the states 1..S-1 entering every step and the final ones,
[T + 1, S - 1, B, NH, DH] in fp32 (h comes back from y). Optionally, after
them, the recurrent products R h of every step, [B, T, GR, NH, DH], so that
the backward runs each cell's gradient on the very (x, R h, b, states) the
forward saw instead of recomputing R h: one round of gate products a step
fewer and no h operand to stage, for 4 more tile stores a step in the forward. Saving R h, not x + R h + b, is what every cell can use
unchanged (GRU scales R_n h + b_nhid by its reset gate). Whether they are
saved is the plan's choice (plan.py: TritonPlan.products), passed in.

Imports no triton: the custom op's fake kernel calls `saved_like`.
"""
from __future__ import annotations

import torch

from ...cells import get_cell
from ...ops import outputs


def products_dtype(products: str) -> torch.dtype | None:
    """The dtype a plan's `products` ("none", "fp32") are saved in, or None when the backward recomputes them."""
    return {"none": None, "fp32": torch.float32}[products]


def _sizes(x, states, cell, need_saved, products):
    B, T, _, NH, DH = x.shape
    state_shape = (T + 1, states.shape[0] - 1, B, NH, DH)
    dtype = products_dtype(products) if need_saved else None
    product_shape = (B, T, get_cell(cell).gates_r, NH, DH) if dtype is not None else None
    return state_shape, product_shape, dtype


def _products_offset(state_shape) -> int:
    """Where the products start, in fp32 words: past the states, 16-byte aligned
    (the kernel's loads vectorise only then, and the alignment, which the launcher
    specialises on, must not change with B or T)."""
    return -(-torch.Size(state_shape).numel() // 4) * 4


def _words(state_shape, product_shape, dtype) -> int:
    if product_shape is None:
        return torch.Size(state_shape).numel()
    return _products_offset(state_shape) + -(-torch.Size(product_shape).numel() * dtype.itemsize // 4)


def saved_like(x, states, cell, need_saved, products) -> torch.Tensor:
    """An empty tensor shaped like `saved` (the custom op's fake kernel)."""
    if not need_saved:
        return x.new_empty((0,), dtype=torch.float32)
    return x.new_empty((_words(*_sizes(x, states, cell, need_saved, products)),), dtype=torch.float32)


def allocate(x, states, cell, need_saved, products):
    """(saved, saved states view, products view or None) for the forward to fill."""
    if not need_saved:
        return outputs.empty((0,), like=x, dtype=torch.float32), None, None
    saved = outputs.empty((_words(*_sizes(x, states, cell, need_saved, products)),), like=x, dtype=torch.float32)
    return (saved, *split(saved, x, states, cell, products))


def split(saved, x, states, cell, products):
    """The saved states [T + 1, S - 1, B, NH, DH] and the products [B, T, GR, NH, DH] (or None) in `saved`;
    `products` must be what the forward that filled it was planned with."""
    state_shape, product_shape, dtype = _sizes(x, states, cell, True, products)
    saved_states = saved[: torch.Size(state_shape).numel()].view(state_shape)
    if product_shape is None:
        return saved_states, None
    products = saved[_products_offset(state_shape):].view(dtype)[: torch.Size(product_shape).numel()]
    return saved_states, products.view(product_shape)
