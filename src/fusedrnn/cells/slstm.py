"""sLSTM of xLSTM with the log-space stabiliser m; gate order i, f, z, o.

m' = max(log sigmoid(f~) + m, i~), or i~ where the normaliser n is still 0
(the first step from a zero state), so exp never overflows.
"""
import torch
import torch.nn.functional as F

from .base import Cell


def _gates(x, rec, b, states):
    _, c, n, m = states
    i_pre, f_pre, z_pre, o_pre = (x + rec + b).unbind(1)
    log_f = F.logsigmoid(f_pre)
    from_f = log_f + m
    m_new = torch.where(n == 0, i_pre, torch.maximum(from_f, i_pre))
    i = torch.exp(i_pre - m_new)
    f = torch.exp(from_f - m_new)
    z = torch.tanh(z_pre)
    o = torch.sigmoid(o_pre)
    c_new = f * c + i * z
    n_new = f * n + i
    return i, f, z, o, f_pre, from_f, i_pre, m_new, c_new, n_new


def slstm_forward(x, rec, b, states):
    i, f, z, o, _, _, _, m_new, c_new, n_new = _gates(x, rec, b, states)
    return o * c_new / n_new, c_new, n_new, m_new


def slstm_backward(x, rec, b, states, d_new):
    _, c, n, _ = states
    dh, dc_new, dn_new, dm_new = d_new
    i, f, z, o, f_pre, from_f, i_pre, m_new, c_new, n_new = _gates(x, rec, b, states)
    dc = dc_new + dh * o / n_new
    dn = dn_new - dh * o * c_new / (n_new * n_new)
    df = (dc * c + dn * n) * f  # w.r.t. log f, i.e. the exponent
    di = (dc * z + dn) * i  # w.r.t. the exponent of i
    dm = dm_new - df - di  # m' appears in both exponents
    m_from_f = (n != 0) & (from_f > i_pre)
    d_from_f = df + torch.where(m_from_f, dm, 0)
    d_i_pre = di + torch.where(m_from_f, 0, dm)
    dpre = torch.stack(
        (d_i_pre, d_from_f * torch.sigmoid(-f_pre), dc * i * (1 - z * z), dh * c_new / n_new * o * (1 - o)), dim=1
    )
    return dpre, dpre, dpre, (torch.zeros_like(c), dc * f, dn * f, d_from_f)


SLSTM = Cell("slstm", 4, 4, 4, ("h", "c", "n", "m"), slstm_forward, slstm_backward)
