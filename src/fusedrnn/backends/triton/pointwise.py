"""The Triton pointwise functions of a cell, (forward, backward): what every launch
passes the kernels as their CELL constant.

A cell made by define_cell (it carries its SymbolicCell) gets functions
generated from its step (cell_codegen.py), written and imported once
(cell_modules.py); a built-in cell not yet defined that way keeps its
hand-written ones (cells/). Looked up by the Cell itself, not its name: a
Cell compares by its name and its torch functions, so a cell defined anew
under an old name is a new entry.
"""
from __future__ import annotations

import functools

from ...cells import Cell
from .cell_codegen import function_names, module_source
from .cell_modules import load_module
from .cells import POINTWISE


@functools.lru_cache(maxsize=None)
def pointwise(cell: Cell) -> tuple:
    """The cell's @triton.jit forward and backward, of the calling convention of cells/__init__.py."""
    if cell.symbolic is not None:
        module = load_module(module_source(cell.symbolic))
        forward, backward = function_names(cell.symbolic)
        return getattr(module, forward), getattr(module, backward)
    if cell.name in POINTWISE:
        return POINTWISE[cell.name]
    raise ValueError(f"cell {cell.name!r} has no Triton pointwise: it was neither made by fusedrnn.define_cell "
                     "nor is it a built-in cell; define it with define_cell, or use backend='torch'")
