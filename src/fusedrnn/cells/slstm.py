"""sLSTM of xLSTM with the log-space stabiliser m; gates i, f, z, o; states h, c, n, m.

m' = max(logsigmoid(f~) + m, i~), or i~ where the normaliser n is still 0 (the first
step from a zero state), so that neither exponential overflows; at a tie of the two
the gradient goes to logsigmoid(f~) + m (cellmath.maximum's rule)."""
from . import cellmath as m
from .define import cell_from_step


def slstm_step(x, r, b, s):
    _, c, n, stabiliser = s
    i_pre, f_pre, z_pre, o_pre = (x[k] + r[k] + b[k] for k in range(4))
    from_f = m.logsigmoid(f_pre) + stabiliser
    m_new = m.where(m.eq(n, 0), i_pre, m.maximum(from_f, i_pre))
    i = m.exp(i_pre - m_new)
    f = m.exp(from_f - m_new)
    c_new = f * c + i * m.tanh(z_pre)
    n_new = f * n + i
    return m.sigmoid(o_pre) * c_new / n_new, c_new, n_new, m_new


SLSTM = cell_from_step("slstm", slstm_step, gates_x=4, gates_r=4, gates_b=4, states=("h", "c", "n", "m"))
