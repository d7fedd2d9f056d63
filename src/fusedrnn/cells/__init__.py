"""The cells fusedrnn knows. Adding a built-in one: a file here plus one line below;
a user's cell: `define_cell` (define.py)."""
from . import cellmath
from .base import Cell
from .define import define_cell
from .elman import ELMAN, ELMAN_RELU
from .gru import GRU
from .lstm import LSTM
from .registry import CELLS, get_cell, register
from .slstm import SLSTM

for built_in in (LSTM, GRU, ELMAN, ELMAN_RELU, SLSTM):
    register(built_in)
del built_in

__all__ = ["CELLS", "Cell", "cellmath", "define_cell", "get_cell"]
