"""Elman RNN as torch.nn.RNN: h' = tanh(x + R h + b), or relu for elman_relu (whose
gradient at 0 is 0, as torch.relu's)."""
from . import cellmath as m
from .define import cell_from_step


def elman_step(x, r, b, s):
    return m.tanh(x[0] + r[0] + b[0])


def elman_relu_step(x, r, b, s):
    return m.relu(x[0] + r[0] + b[0])


ELMAN = cell_from_step("elman", elman_step, gates_x=1, gates_r=1, gates_b=1, states=("h",))
ELMAN_RELU = cell_from_step("elman_relu", elman_relu_step, gates_x=1, gates_r=1, gates_b=1, states=("h",))
