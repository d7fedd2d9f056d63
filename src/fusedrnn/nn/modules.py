"""Drop-ins for torch.nn.LSTM, GRU and RNN, and an sLSTM with the same surface."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import RecurrentBase


class LSTM(RecurrentBase):
    """torch.nn.LSTM (no proj_size), plus num_heads and backend.

    forward(input, (h_0, c_0)=None) -> output, (h_n, c_n)
    """

    def __init__(self, *args, **kwargs):
        super().__init__("lstm", *args, **kwargs)


class GRU(RecurrentBase):
    """torch.nn.GRU, plus num_heads and backend. forward(input, h_0=None) -> output, h_n"""

    def __init__(self, *args, **kwargs):
        super().__init__("gru", *args, **kwargs)

    def _recurrent_bias(self, bias_hh: Tensor) -> Tensor:
        # bias_ih (r, z, n_in) joins the input projection; b_hn stays inside r * (...)
        b_r, b_z, b_hn = bias_hh.view(3, self.num_heads, self.head_size).unbind(0)
        return torch.stack((b_r, b_z, torch.zeros_like(b_hn), b_hn))


class RNN(RecurrentBase):
    """torch.nn.RNN with nonlinearity "tanh" or "relu", plus num_heads and backend."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", *args, **kwargs):
        cells = {"tanh": "elman", "relu": "elman_relu"}
        if nonlinearity not in cells:
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(cells[nonlinearity], input_size, hidden_size, num_layers, *args, **kwargs)


class SLSTM(RecurrentBase):
    """xLSTM's sLSTM with torch.nn.LSTM's surface.

    forward(input, (h_0, c_0, n_0, m_0)=None) -> output, (h_n, c_n, n_n, m_n)
    """

    def __init__(self, *args, **kwargs):
        super().__init__("slstm", *args, **kwargs)
