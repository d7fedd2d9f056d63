"""Transcendentals and other math for the pointwise cells, which cell_codegen.py
generates from each cell's step.

Accurate versions are built from tl.exp and a fast (2-ulp, non-IEEE) division
and run the same on the GPU and under the Triton interpreter. With FAST (used
for bfloat16, whose own rounding is 2^-9) tanh is one MUFU instruction,
tanh.approx.f32 (relative error 2^-11), and sigmoid(x) = (1 + tanh(x/2)) / 2:
half the special-function work on every step's critical path.
"""
import triton
import triton.language as tl


@triton.jit
def _tanh_approx(x):
    return tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def sigmoid(x, FAST: tl.constexpr):
    if FAST:
        return 0.5 + 0.5 * _tanh_approx(0.5 * x)
    else:
        return tl.fdiv(1.0, 1.0 + tl.exp(-x))


@triton.jit
def tanh(x, FAST: tl.constexpr):
    if FAST:
        return _tanh_approx(x)
    else:
        # 1 - 2 / (exp(2x) + 1): exact at both tails, no overflow to nan
        return 1.0 - tl.fdiv(2.0, tl.exp(2.0 * x) + 1.0)


@triton.jit
def log_sigmoid(x):
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def sqrt(x, FAST: tl.constexpr):
    """Correctly rounded, as torch.sqrt; with FAST the approximate one (bfloat16 rounds more anyway)."""
    if FAST:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def integer_power(x, N: tl.constexpr):
    """x ** N for a constant N >= 1, by N - 1 multiplies: exact for a negative x, where
    exp(N log x) is NaN (a step's integer powers are small: x**2, x**3)."""
    result = x
    for _ in tl.static_range(N - 1):
        result = result * x
    return result


@triton.jit
def sign(x):
    """-1, 0 or 1, as torch.sign (the derivative of abs); NaN stays NaN (x * 0)."""
    return tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, x * 0.0))
