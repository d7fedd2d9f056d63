"""fusedrnn: fused, I/O-aware LSTM, GRU, Elman and sLSTM recurrences."""
from .api import backends, rnn
from .cells import CELLS

__version__ = "0.1.0"
__all__ = ["CELLS", "backends", "rnn", "__version__"]
