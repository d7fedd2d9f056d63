"""sLSTM pointwise step and gradient (gates i, f, z, o; states h, c, n, m),
stabilised in log space; see fusedrnn/cells/slstm.py for the math."""
import triton
import triton.language as tl

from ..math import log_sigmoid, sigmoid, tanh


@triton.jit
def _gates(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, c, n, m, FAST: tl.constexpr):
    i_pre = x0 + r0 + b0
    f_pre = x1 + r1 + b1
    from_f = log_sigmoid(f_pre) + m
    m_new = tl.where(n == 0.0, i_pre, tl.maximum(from_f, i_pre))
    i = tl.exp(i_pre - m_new)
    f = tl.exp(from_f - m_new)
    z = tanh(x2 + r2 + b2, FAST)
    o = sigmoid(x3 + r3 + b3, FAST)
    c_new = f * c + i * z
    n_new = f * n + i
    return i, f, z, o, f_pre, from_f, i_pre, m_new, c_new, n_new


@triton.jit
def slstm_forward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST: tl.constexpr):
    i, f, z, o, f_pre, from_f, i_pre, m_new, c_new, n_new = _gates(
        x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s1, s2, s3, FAST
    )
    return o * c_new / n_new, c_new, n_new, m_new


@triton.jit
def slstm_backward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
                  FAST: tl.constexpr):
    i, f, z, o, f_pre, from_f, i_pre, m_new, c_new, n_new = _gates(
        x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s1, s2, s3, FAST
    )
    dc = d1 + d0 * o / n_new
    dn = d2 - d0 * o * c_new / (n_new * n_new)
    df = (dc * s1 + dn * s2) * f
    di = (dc * z + dn) * i
    dm = d3 - df - di
    m_from_f = (s2 != 0.0) & (from_f > i_pre)
    d_from_f = df + tl.where(m_from_f, dm, 0.0)
    d_i = di + tl.where(m_from_f, 0.0, dm)
    d_f = d_from_f * sigmoid(-f_pre, FAST)
    d_z = dc * i * (1.0 - z * z)
    d_o = d0 * c_new / n_new * o * (1.0 - o)
    zero = tl.zeros_like(s0)
    return (d_i, d_f, d_z, d_o, d_i, d_f, d_z, d_o, d_i, d_f, d_z, d_o, zero, dc * f, dn * f, d_from_f)
