"""The Triton pointwise functions of a cell, (forward, backward): what every launch
passes the kernels as their CELL constant. Every cell takes and returns four gate
and four state tiles (the unused ones pass through or are zero), so the kernels
call any cell the same way:

  forward(x0..3, r0..3, b0..3, s0..3, FAST) -> s0..3 new
  backward(x0..3, r0..3, b0..3, s0..3, d0..3, FAST) -> dx0..3, drec0..3, db0..3, ds0..3

with the meaning of fusedrnn.cells.base.Backward. The functions are generated from
the cell's traced step (cell_codegen.py), the built-in cells' as any other, and
written and imported once (cell_modules.py). Looked up by the Cell itself, not
its name: a Cell compares by its name and its torch functions, so a cell defined
anew under an old name is a new entry.
"""
from __future__ import annotations

import functools

from ...cells import Cell
from .cell_codegen import function_names, module_source
from .cell_modules import load_module


@functools.lru_cache(maxsize=None)
def pointwise(cell: Cell) -> tuple:
    """The cell's @triton.jit forward and backward, of the calling convention above."""
    if cell.symbolic is None:
        raise ValueError(f"cell {cell.name!r} has no Triton pointwise: it was not built from a step (its Cell "
                         "holds torch functions alone); define it with fusedrnn.define_cell, or use backend='torch'")
    module = load_module(module_source(cell.symbolic))
    forward, backward = function_names(cell.symbolic)
    return getattr(module, forward), getattr(module, backward)
