"""Drop-ins for torch.nn.LSTM, GRU and RNN, and an sLSTM with the same surface.
Each constructor takes torch's arguments in torch's positional order."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import RecurrentBase


class LSTM(RecurrentBase):
    """torch.nn.LSTM (proj_size included), plus num_heads and backend.

    forward(input, (h_0, c_0)=None) -> output, (h_n, c_n)
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None, *, num_heads=1, backend="auto"):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, num_heads=num_heads, backend=backend)


class GRU(RecurrentBase):
    """torch.nn.GRU, plus num_heads and backend. forward(input, h_0=None) -> output, h_n"""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, *, num_heads=1, backend="auto"):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, num_heads=num_heads, backend=backend)

    def _recurrent_bias(self, bias_hh: Tensor) -> Tensor:
        # bias_ih (r, z, n_in) joins the input projection; b_hn stays inside r * (...)
        b_r, b_z, b_hn = bias_hh.view(3, self.num_heads, self.head_size).unbind(0)
        return torch.stack((b_r, b_z, torch.zeros_like(b_hn), b_hn))


class RNN(RecurrentBase):
    """torch.nn.RNN with nonlinearity "tanh" or "relu", plus num_heads and backend."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, num_heads=1, backend="auto"):
        cells = {"tanh": "elman", "relu": "elman_relu"}
        if nonlinearity not in cells:
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(cells[nonlinearity], input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, num_heads=num_heads, backend=backend)


class SLSTM(RecurrentBase):
    """xLSTM's sLSTM with torch.nn.LSTM's surface (no proj_size).

    forward(input, (h_0, c_0, n_0, m_0)=None) -> output, (h_n, c_n, n_n, m_n)
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, *, num_heads=1, backend="auto"):
        super().__init__("slstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, num_heads=num_heads, backend=backend)
