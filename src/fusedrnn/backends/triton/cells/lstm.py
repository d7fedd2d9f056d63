"""LSTM pointwise step and its gradient (gates i, f, g, o; states h, c)."""
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs tl in every jit function's globals)

from ..math import sigmoid, tanh


@triton.jit
def lstm_forward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST: tl.constexpr):
    i = sigmoid(x0 + r0 + b0, FAST)
    f = sigmoid(x1 + r1 + b1, FAST)
    g = tanh(x2 + r2 + b2, FAST)
    o = sigmoid(x3 + r3 + b3, FAST)
    c = f * s1 + i * g
    return o * tanh(c, FAST), c, s2, s3


@triton.jit
def lstm_backward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
                  FAST: tl.constexpr):
    i = sigmoid(x0 + r0 + b0, FAST)
    f = sigmoid(x1 + r1 + b1, FAST)
    g = tanh(x2 + r2 + b2, FAST)
    o = sigmoid(x3 + r3 + b3, FAST)
    tanh_c = tanh(f * s1 + i * g, FAST)
    # each gradient is (incoming gradient) x (a factor of the step's own values): the
    # kernels hold the two sides in different layouts and convert only the factors
    dc = d1 + d0 * (o * (1.0 - tanh_c * tanh_c))
    di = dc * (g * i * (1.0 - i))
    df = dc * (s1 * f * (1.0 - f))
    dg = dc * (i * (1.0 - g * g))
    do = d0 * (tanh_c * o * (1.0 - o))
    zero = tl.zeros_like(s0)
    return (di, df, dg, do, di, df, dg, do, di, df, dg, do, zero, dc * f, zero, zero)
