"""Elman (torch.nn.RNN) pointwise steps and gradients, tanh and relu."""
import triton
import triton.language as tl

from ..math import tanh


@triton.jit
def elman_tanh_forward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST: tl.constexpr):
    return tanh(x0 + r0 + b0, FAST), s1, s2, s3


@triton.jit
def elman_tanh_backward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
                  FAST: tl.constexpr):
    h = tanh(x0 + r0 + b0, FAST)
    dpre = d0 * (1.0 - h * h)
    zero = tl.zeros_like(s0)
    return (dpre, zero, zero, zero, dpre, zero, zero, zero, dpre, zero, zero, zero, zero, zero, zero, zero)


@triton.jit
def elman_relu_forward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST: tl.constexpr):
    return tl.maximum(x0 + r0 + b0, 0.0), s1, s2, s3


@triton.jit
def elman_relu_backward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
                  FAST: tl.constexpr):
    dpre = tl.where(x0 + r0 + b0 > 0.0, d0, 0.0)
    zero = tl.zeros_like(s0)
    return (dpre, zero, zero, zero, dpre, zero, zero, zero, dpre, zero, zero, zero, zero, zero, zero, zero)
