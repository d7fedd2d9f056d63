"""The cells fusedrnn knows. Every cell is a step traced once (define.py); a built-in
one is a file here building its Cell plus its line below, a user's cell `define_cell`."""
from . import cellmath
from .base import Cell
from .define import define_cell
from .elman import ELMAN, ELMAN_RELU
from .gru import GRU
from .lstm import LSTM
from .registry import CELLS, get_cell, register
from .slstm import SLSTM

#: the names of the cells fusedrnn ships (CI compiles their kernels), in CELLS' order
BUILT_IN = tuple(register(cell).name for cell in (LSTM, GRU, ELMAN, ELMAN_RELU, SLSTM))

__all__ = ["BUILT_IN", "CELLS", "Cell", "cellmath", "define_cell", "get_cell"]
