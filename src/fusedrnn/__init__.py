"""fusedrnn: fused, I/O-aware LSTM, GRU, Elman and sLSTM recurrences."""
from .api import backends, rnn
from .cells import CELLS, cellmath, define_cell
from . import nn  # noqa: E402  (fusedrnn.nn.LSTM after a bare `import fusedrnn`, as torch.nn)

__version__ = "0.1.0"
__all__ = ["CELLS", "backends", "cellmath", "define_cell", "nn", "rnn", "__version__"]
