"""GRU exactly as torch.nn.GRU: gates r, z, n; state h. The reset gate multiplies the
recurrent part of n including its own bias, so the biases are r, z, n_in, n_hid (and
the gates are not plain sums: the kernels keep drec apart from dx)."""
from . import cellmath as m
from .define import cell_from_step


def gru_step(x, r, b, s):
    reset = m.sigmoid(x[0] + r[0] + b[0])
    update = m.sigmoid(x[1] + r[1] + b[1])
    n = m.tanh(x[2] + b[2] + reset * (r[2] + b[3]))
    return (1 - update) * n + update * s[0]


GRU = cell_from_step("gru", gru_step, gates_x=3, gates_r=3, gates_b=4, states=("h",))
