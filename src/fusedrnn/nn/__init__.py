"""torch.nn-style recurrent layers running on fusedrnn's backends."""
from .modules import GRU, LSTM, RNN, SLSTM

__all__ = ["GRU", "LSTM", "RNN", "SLSTM"]
