"""All four gates in one product (the kernels' STACK_GATES option).

R[0..3, n] held as one gate-major [4 DH_P, DH_P] tile turns the four gate
products of a step into one: R h is one [4 DH_P, DH_P] x [DH_P, BLOCK_B] dot
split into the four gate tiles, and the gradient's sum over gates of R_g^T v_g
is one [DH_P, 4 DH_P] x [4 DH_P, BLOCK_B] dot of the transposed tile with the
four tiles joined. The tensor cores then run the four gates' MMAs back to back
with a single wait, and the joined operand is staged in shared memory once,
where separate products wait on each other one by one. The split and the join
only renumber registers (the gate index lives in each thread's registers).
Rows of gates past the cell's G are zero.
"""
import triton
import triton.language as tl


@triton.jit
def load_stacked_weights(R_ptr, n, G: tl.constexpr, NH, DH, DH_P: tl.constexpr):
    """R[g, n] for g = 0..3 stacked gate-major: a [4 DH_P, DH_P] tile, zero-padded."""
    rows = tl.arange(0, 4 * DH_P)[:, None]
    gate = rows // DH_P
    row = rows % DH_P
    cols = tl.arange(0, DH_P)[None, :]
    mask = (gate < G) & (row < DH) & (cols < DH)
    return tl.load(R_ptr + (gate * NH + n) * DH * DH + row * DH + cols, mask=mask, other=0.0)


@triton.jit
def _split4(v):
    """[4 D, N] gate-major -> four [D, N] tiles."""
    D: tl.constexpr = v.shape[0] // 4
    N: tl.constexpr = v.shape[1]
    v = tl.permute(tl.reshape(v, (2, 2, D, N)), (2, 3, 0, 1))  # [D, N, i, j] holds gate 2 i + j
    low, high = tl.split(v)  # j = 0, 1
    g0, g2 = tl.split(low)
    g1, g3 = tl.split(high)
    return g0, g1, g2, g3


@triton.jit
def _join4(v0, v1, v2, v3):
    """Four [D, N] tiles -> [4 D, N] gate-major (the inverse of _split4)."""
    D: tl.constexpr = v0.shape[0]
    N: tl.constexpr = v0.shape[1]
    v = tl.join(tl.join(v0, v2), tl.join(v1, v3))  # [D, N, i, j] holds gate 2 i + j
    return tl.reshape(tl.permute(v, (2, 3, 0, 1)), (4 * D, N))


@triton.jit
def stacked_products(W, h, PRECISION: tl.constexpr):
    """R_g @ h in fp32 for the four gates, as one product."""
    return _split4(tl.dot(W, h, input_precision=PRECISION, out_dtype=tl.float32))


@triton.jit
def stacked_products_t(W, v0, v1, v2, v3, PRECISION: tl.constexpr):
    """The sum over gates of R_g^T @ v_g in fp32, as one product."""
    v = _join4(v0, v1, v2, v3).to(W.dtype)
    return tl.dot(tl.trans(W), v, input_precision=PRECISION, out_dtype=tl.float32)
