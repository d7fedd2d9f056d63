"""LSTM as torch.nn.LSTM: gates i, f, g, o; states h, c.

c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c')."""
from . import cellmath as m
from .define import cell_from_step


def lstm_step(x, r, b, s):
    i, f, g, o = (x[k] + r[k] + b[k] for k in range(4))
    c = m.sigmoid(f) * s[1] + m.sigmoid(i) * m.tanh(g)
    return m.sigmoid(o) * m.tanh(c), c


LSTM = cell_from_step("lstm", lstm_step, gates_x=4, gates_r=4, gates_b=4, states=("h", "c"))
