"""An independent float64 reference, written from docs/design.md's cell table without
using fusedrnn's cells: one plain loop over time, gradients by autograd."""
from __future__ import annotations

import torch

from fusedrnn.testing import random_problem  # noqa: F401  (the inputs the tests draw, shared with the tuner's gate)

COUNTS = {  # cell: (Gx, Gr, Gb, S)
    "lstm": (4, 4, 4, 2),
    "gru": (3, 3, 4, 1),
    "elman": (1, 1, 1, 1),
    "elman_relu": (1, 1, 1, 1),
    "slstm": (4, 4, 4, 4),
}


def reference_step(cell, xt, hR, b, s):
    """xt [B, Gx, NH, DH], hR [B, Gr, NH, DH] (= h @ R.T per gate), b [Gb, NH, DH]."""
    sig = torch.sigmoid
    if cell == "lstm":
        pre = xt + hR + b
        i, f, g, o = sig(pre[:, 0]), sig(pre[:, 1]), torch.tanh(pre[:, 2]), sig(pre[:, 3])
        c = f * s[1] + i * g
        return [o * torch.tanh(c), c]
    if cell == "gru":
        r = sig(xt[:, 0] + hR[:, 0] + b[0])
        z = sig(xt[:, 1] + hR[:, 1] + b[1])
        n = torch.tanh(xt[:, 2] + b[2] + r * (hR[:, 2] + b[3]))
        return [(1 - z) * n + z * s[0]]
    if cell == "elman":
        return [torch.tanh(xt[:, 0] + hR[:, 0] + b[0])]
    if cell == "elman_relu":
        return [torch.clamp(xt[:, 0] + hR[:, 0] + b[0], min=0)]
    if cell == "slstm":
        pre = xt + hR + b
        it, ft, zt, ot = pre.unbind(1)
        h, c, n, m = s
        logf = -torch.log1p(torch.exp(-ft))
        m_new = torch.where(n == 0, it, torch.maximum(logf + m, it))
        i = torch.exp(it - m_new)
        f = torch.exp(logf + m - m_new)
        c_new = f * c + i * torch.tanh(zt)
        n_new = f * n + i
        return [sig(ot) * c_new / n_new, c_new, n_new, m_new]
    raise KeyError(cell)


def reference_rnn(cell, x, R, b, states=None, lengths=None):
    """y [B, T, NH, DH], final [S, B, NH, DH] in float64."""
    x, R, b = x.double(), R.double(), b.double()
    B, T, _, NH, DH = x.shape
    S = COUNTS[cell][3]
    s = [x.new_zeros(B, NH, DH) for _ in range(S)] if states is None else list(states.double().unbind(0))
    ys = []
    for t in range(T):
        hR = torch.einsum("bnj,gnij->bgni", s[0], R)
        new = reference_step(cell, x[:, t], hR, b, s)
        if lengths is not None:
            keep = (t < lengths.to(x.device)).view(B, 1, 1)
            new = [torch.where(keep, a, o) for a, o in zip(new, s)]
            ys.append(torch.where(keep, new[0], torch.zeros_like(new[0])))
        else:
            ys.append(new[0])
        s = new
    return torch.stack(ys, 1), torch.stack(s)
