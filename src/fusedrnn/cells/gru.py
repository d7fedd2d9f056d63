"""GRU exactly as torch.nn.GRU: the reset gate multiplies the recurrent part of n
including its own bias, so the biases are r, z, n_in, n_hid."""
import torch

from .base import Cell


def _gates(x, rec, b):
    x_r, x_z, x_n = x.unbind(1)
    rec_r, rec_z, rec_n = rec.unbind(1)
    b_r, b_z, b_nin, b_nhid = b.unbind(0)
    r = torch.sigmoid(x_r + rec_r + b_r)
    z = torch.sigmoid(x_z + rec_z + b_z)
    hidden_n = rec_n + b_nhid
    n = torch.tanh(x_n + b_nin + r * hidden_n)
    return r, z, n, hidden_n


def gru_forward(x, rec, b, states):
    (h,) = states
    _, z, n, _ = _gates(x, rec, b)
    return ((1 - z) * n + z * h,)


def gru_backward(x, rec, b, states, d_new):
    (h,) = states
    (dh_new,) = d_new
    r, z, n, hidden_n = _gates(x, rec, b)
    dn = dh_new * (1 - z) * (1 - n * n)
    dr = dn * hidden_n * r * (1 - r)
    dz = dh_new * (h - n) * z * (1 - z)
    dx = torch.stack((dr, dz, dn), dim=1)
    drec = torch.stack((dr, dz, dn * r), dim=1)
    db = torch.stack((dr, dz, dn, dn * r), dim=1)
    return dx, drec, db, (dh_new * z,)


GRU = Cell("gru", 3, 3, 4, ("h",), gru_forward, gru_backward, gates_are_sums=False)
