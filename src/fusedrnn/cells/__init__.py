"""The cells fusedrnn knows. Adding one: a file here plus one line below."""
from types import MappingProxyType

from .base import Cell
from .elman import ELMAN, ELMAN_RELU
from .gru import GRU
from .lstm import LSTM
from .slstm import SLSTM

#: name -> Cell; iterating gives the names.
CELLS = MappingProxyType({c.name: c for c in (LSTM, GRU, ELMAN, ELMAN_RELU, SLSTM)})


def get_cell(name: str) -> Cell:
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {name!r}")
    return CELLS[name]


__all__ = ["CELLS", "Cell", "get_cell"]
