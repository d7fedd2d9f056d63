"""The new cells the define_cell tests share, each a cellmath step and an independent
float64 reference written with torch ops. A reference takes x [B, Gx, NH, DH],
rec [B, Gr, NH, DH], the biases per sample [B, Gb, NH, DH] and the S states
[B, NH, DH], and returns the S new states; and `cells_restored`, which every test
that defines cells runs them in."""
import contextlib

import torch

import fusedrnn
from fusedrnn.cells import registry

m = fusedrnn.cellmath


@contextlib.contextmanager
def cells_restored():
    """The registry of cells as before the block, after it: CELLS only grows by design, and
    other test files collected in the same process expect the built-in cells alone (test
    hygiene only: names stay unique)."""
    before = dict(registry.REGISTERED)
    try:
        yield
    finally:
        registry.REGISTERED.clear()
        registry.REGISTERED.update(before)


def cifg_step(x, r, b, s):
    """Coupled input-forget LSTM: the forget gate is 1 - i."""
    i = m.sigmoid(x[0] + r[0] + b[0])
    g = m.tanh(x[1] + r[1] + b[1])
    o = m.sigmoid(x[2] + r[2] + b[2])
    c = (1 - i) * s[1] + i * g
    return o * m.tanh(c), c


def cifg_reference(x, rec, b, states):
    i = torch.sigmoid(x[:, 0] + rec[:, 0] + b[:, 0])
    g = torch.tanh(x[:, 1] + rec[:, 1] + b[:, 1])
    o = torch.sigmoid(x[:, 2] + rec[:, 2] + b[:, 2])
    c = (1 - i) * states[1] + i * g
    return [o * torch.tanh(c), c]


def forget_only_step(x, r, b, s):
    """A forget gate alone (JANET-like): the new c is both states, the input gate 1 - f shifted."""
    f = x[0] + r[0] + b[0]
    c = m.sigmoid(f) * s[1] + (1 - m.sigmoid(f - 1.0)) * m.tanh(x[1] + r[1] + b[1])
    return c, c


def forget_only_reference(x, rec, b, states):
    f = x[:, 0] + rec[:, 0] + b[:, 0]
    c = torch.sigmoid(f) * states[1] + (1 - torch.sigmoid(f - 1.0)) * torch.tanh(x[:, 1] + rec[:, 1] + b[:, 1])
    return [c, c]


def relu6_step(x, r, b, s):
    return m.minimum(m.maximum(x[0] + r[0] + b[0], 0), 6)


def relu6_reference(x, rec, b, states):
    return [torch.clamp(x[:, 0] + rec[:, 0] + b[:, 0], 0, 6)]


def log_gru_step(x, r, b, s):
    """GRU-like: a log/exp candidate chosen by where, and a floor by maximum."""
    reset = m.sigmoid(x[0] + r[0] + b[0])
    update = m.sigmoid(x[1] + r[1] + b[1])
    a = x[2] + b[2] + reset * (r[2] + b[3])
    n = m.where(a > 0, m.log(1 + a), m.exp(a) - 1)
    return m.maximum((1 - update) * n + update * s[0], 0.5 * s[0] - 1)


def log_gru_reference(x, rec, b, states):
    reset = torch.sigmoid(x[:, 0] + rec[:, 0] + b[:, 0])
    update = torch.sigmoid(x[:, 1] + rec[:, 1] + b[:, 1])
    a = x[:, 2] + b[:, 2] + reset * (rec[:, 2] + b[:, 3])
    # clamped so that the branch not taken has a finite gradient, which where then drops
    n = torch.where(a > 0, torch.log(1 + a.clamp(min=0)), torch.exp(a.clamp(max=0)) - 1)
    return [torch.maximum((1 - update) * n + update * states[0], 0.5 * states[0] - 1)]
