"""LSTM, gate order i, f, g, o as in torch.nn.LSTM."""
import torch

from .base import Cell


def _gates(x, rec, b):
    i, f, g, o = (x + rec + b).unbind(1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)


def lstm_forward(x, rec, b, states):
    _, c = states
    i, f, g, o = _gates(x, rec, b)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def lstm_backward(x, rec, b, states, d_new):
    _, c = states
    dh_new, dc_new = d_new
    i, f, g, o = _gates(x, rec, b)
    tanh_c = torch.tanh(f * c + i * g)
    dc = dc_new + dh_new * o * (1 - tanh_c * tanh_c)
    dpre = torch.stack(
        (dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), dh_new * tanh_c * o * (1 - o)), dim=1
    )
    return dpre, dpre, dpre, (torch.zeros_like(c), dc * f)


LSTM = Cell("lstm", 4, 4, 4, ("h", "c"), lstm_forward, lstm_backward)
