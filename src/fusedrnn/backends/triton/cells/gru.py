"""GRU pointwise step and its gradient, as torch.nn.GRU: gates r, z, n; biases
r, z, n_in, n_hid; the reset gate scales the recurrent part of n with its bias."""
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs tl in every jit function's globals)

from ..math import sigmoid, tanh


@triton.jit
def _gates(x0, x1, x2, r0, r1, r2, b0, b1, b2, b3, FAST: tl.constexpr):
    r = sigmoid(x0 + r0 + b0, FAST)
    z = sigmoid(x1 + r1 + b1, FAST)
    hidden_n = r2 + b3
    n = tanh(x2 + b2 + r * hidden_n, FAST)
    return r, z, n, hidden_n


@triton.jit
def gru_forward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST: tl.constexpr):
    r, z, n, hidden_n = _gates(x0, x1, x2, r0, r1, r2, b0, b1, b2, b3, FAST)
    return (1.0 - z) * n + z * s0, s1, s2, s3


@triton.jit
def gru_backward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
                  FAST: tl.constexpr):
    r, z, n, hidden_n = _gates(x0, x1, x2, r0, r1, r2, b0, b1, b2, b3, FAST)
    dn = d0 * (1.0 - z) * (1.0 - n * n)
    dr = dn * hidden_n * r * (1.0 - r)
    dz = d0 * (s0 - n) * z * (1.0 - z)
    zero = tl.zeros_like(s0)
    return (dr, dz, dn, zero, dr, dz, dn * r, zero, dr, dz, dn, dn * r, d0 * z, zero, zero, zero)
