"""Elman RNN (torch.nn.RNN) with tanh or relu."""
import torch

from .base import Cell


def elman_tanh_forward(x, rec, b, states):
    return (torch.tanh(x + rec + b)[:, 0],)


def elman_tanh_backward(x, rec, b, states, d_new):
    h_new = torch.tanh(x + rec + b)
    dpre = d_new[0][:, None] * (1 - h_new * h_new)
    return dpre, dpre, dpre, (torch.zeros_like(states[0]),)


def elman_relu_forward(x, rec, b, states):
    return (torch.relu(x + rec + b)[:, 0],)


def elman_relu_backward(x, rec, b, states, d_new):
    dpre = torch.where(x + rec + b > 0, d_new[0][:, None], 0)
    return dpre, dpre, dpre, (torch.zeros_like(states[0]),)


ELMAN = Cell("elman", 1, 1, 1, ("h",), elman_tanh_forward, elman_tanh_backward)
ELMAN_RELU = Cell("elman_relu", 1, 1, 1, ("h",), elman_relu_forward, elman_relu_backward)
