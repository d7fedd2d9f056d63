"""The cells fusedrnn knows, by name: the built-in ones and those `define_cell` adds.

REGISTERED only grows (a name, once defined, keeps its cell: compiled kernels and
tuned tables refer to cells by name); CELLS is its read-only view.
"""
from __future__ import annotations

import threading
from types import MappingProxyType

from .base import Cell

REGISTERED: dict[str, Cell] = {}
#: name -> Cell; iterating gives the names, built-in cells first
CELLS = MappingProxyType(REGISTERED)
# define_cell checks the name is new and later adds it: one definition at a time
REGISTRATION = threading.RLock()


def register(cell: Cell) -> Cell:
    """Add cell under its name; ValueError if the name is taken."""
    with REGISTRATION:
        if cell.name in REGISTERED:
            raise ValueError(f"cell {cell.name!r} is already defined; every cell needs a new name")
        REGISTERED[cell.name] = cell
    return cell


def get_cell(name: str) -> Cell:
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {name!r}")
    return CELLS[name]
