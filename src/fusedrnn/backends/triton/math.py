"""Transcendentals for the pointwise cells, built from tl.exp and a fast
(2-ulp, non-IEEE-rounded) division, so they run the same on the GPU and under
the Triton interpreter and cost a few instructions each on the critical path."""
import triton
import triton.language as tl


@triton.jit
def sigmoid(x):
    return tl.fdiv(1.0, 1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    # 1 - 2 / (exp(2x) + 1): exact at both tails, no overflow to nan
    return 1.0 - tl.fdiv(2.0, tl.exp(2.0 * x) + 1.0)


@triton.jit
def log_sigmoid(x):
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))
