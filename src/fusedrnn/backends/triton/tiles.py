"""Tile helpers shared by the forward and backward kernels.

A program owns one head n and a tile of BLOCK_B sequences. Every per-step
tile is held transposed, [DH_P, BLOCK_B] (head dim x batch), so that the
recurrent product is R_g [DH, DH] @ h [DH, BLOCK_B]: M = DH fills the tensor
core's M side and the batch tile can stay as small as 16. DH_P is DH rounded
up to a power of two; rows past DH are masked to zero on load and never stored.
"""
import triton
import triton.language as tl


@triton.jit
def mask_and(mask, condition):
    """mask & condition for a scalar condition (t >= 0, t + 1 < T). Triton's interpreter
    broadcasts a scalar comparison as int32 data, a mask that Triton 3.9's tl.load
    rejects ("mask has unsupported dtype"; 3.6 to 3.8 took it); a select of constants
    broadcasts as int1. The compiler folds the select away: the sm_90 PTX is the same
    as `mask & condition`'s, and so are compile_check's reports."""
    return mask & tl.where(condition, True, False)


@triton.jit
def load_slice(ptr, offsets, mask, i: tl.constexpr, count: tl.constexpr, stride, zero):
    """Slice i (a gate or a state) of a tensor with `count` slices `stride` apart, as
    fp32; `zero` for i >= count, so that every cell is called with four of each."""
    if i < count:
        return tl.load(ptr + i * stride + offsets, mask=mask, other=0.0).to(tl.float32)
    else:
        return zero


@triton.jit
def load_slices(ptr, offsets, mask, count: tl.constexpr, stride, zero):
    return (load_slice(ptr, offsets, mask, 0, count, stride, zero),
            load_slice(ptr, offsets, mask, 1, count, stride, zero),
            load_slice(ptr, offsets, mask, 2, count, stride, zero),
            load_slice(ptr, offsets, mask, 3, count, stride, zero))


@triton.jit
def store_slice(ptr, offsets, mask, value, i: tl.constexpr, count: tl.constexpr, stride):
    if i < count:
        tl.store(ptr + i * stride + offsets, value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def store_slices(ptr, offsets, mask, v0, v1, v2, v3, count: tl.constexpr, stride):
    store_slice(ptr, offsets, mask, v0, 0, count, stride)
    store_slice(ptr, offsets, mask, v1, 1, count, stride)
    store_slice(ptr, offsets, mask, v2, 2, count, stride)
    store_slice(ptr, offsets, mask, v3, 3, count, stride)


@triton.jit
def load_carried_states(ptr, mask, S: tl.constexpr, state_stride, zero):
    """States 1..S-1 from slots 0..S-2 at ptr (save_carried_states' layout), fp32; `zero` past S."""
    return (load_slice(ptr, 0, mask, 0, S - 1, state_stride, zero),
            load_slice(ptr, 0, mask, 1, S - 1, state_stride, zero),
            load_slice(ptr, 0, mask, 2, S - 1, state_stride, zero))


@triton.jit
def save_carried_states(ptr, mask, s1, s2, s3, S: tl.constexpr, state_stride):
    """States 1..S-1 into slots 0..S-2 at ptr. State 0, h, is not saved: the
    backward reads it back from y, exactly as the forward's matmul saw it."""
    store_slice(ptr, 0, mask, s1, 0, S - 1, state_stride)
    store_slice(ptr, 0, mask, s2, 1, S - 1, state_stride)
    store_slice(ptr, 0, mask, s3, 2, S - 1, state_stride)


@triton.jit
def load_weight(R_ptr, n, g: tl.constexpr, G: tl.constexpr, NH, DH, DH_P: tl.constexpr):
    """R[g, n] as a [DH_P, DH_P] tile, zero-padded."""
    rows = tl.arange(0, DH_P)[:, None]
    cols = tl.arange(0, DH_P)[None, :]
    mask = (rows < DH) & (cols < DH)
    if g < G:
        return tl.load(R_ptr + (g * NH + n) * DH * DH + rows * DH + cols, mask=mask, other=0.0)
    else:
        return tl.zeros((DH_P, DH_P), dtype=R_ptr.dtype.element_ty)


@triton.jit
def load_weights(R_ptr, n, G: tl.constexpr, NH, DH, DH_P: tl.constexpr):
    return (load_weight(R_ptr, n, 0, G, NH, DH, DH_P), load_weight(R_ptr, n, 1, G, NH, DH, DH_P),
            load_weight(R_ptr, n, 2, G, NH, DH, DH_P), load_weight(R_ptr, n, 3, G, NH, DH, DH_P))


@triton.jit
def load_bias(b_ptr, n, g: tl.constexpr, G: tl.constexpr, NH, DH, DH_P: tl.constexpr):
    """b[g, n] as a [DH_P, 1] column (zero past the cell's G biases)."""
    rows = tl.arange(0, DH_P)[:, None]
    if g < G:
        return tl.load(b_ptr + (g * NH + n) * DH + rows, mask=rows < DH, other=0.0).to(tl.float32)
    else:
        return tl.zeros((DH_P, 1), dtype=tl.float32)


@triton.jit
def load_biases(b_ptr, n, G: tl.constexpr, NH, DH, DH_P: tl.constexpr):
    return (load_bias(b_ptr, n, 0, G, NH, DH, DH_P), load_bias(b_ptr, n, 1, G, NH, DH, DH_P),
            load_bias(b_ptr, n, 2, G, NH, DH, DH_P), load_bias(b_ptr, n, 3, G, NH, DH, DH_P))


@triton.jit
def recurrent_product(W, h, g: tl.constexpr, G: tl.constexpr, zero, PRECISION: tl.constexpr):
    """W @ h in fp32 for the cell's gates; `zero` past them."""
    if g < G:
        return tl.dot(W, h, input_precision=PRECISION, out_dtype=tl.float32)
    else:
        return zero


@triton.jit
def gate_products(W0, W1, W2, W3, h, G: tl.constexpr, zero, PRECISION: tl.constexpr):
    """R_g @ h in fp32 for the four gate slots, one product a gate (`zero` past G)."""
    return (recurrent_product(W0, h, 0, G, zero, PRECISION), recurrent_product(W1, h, 1, G, zero, PRECISION),
            recurrent_product(W2, h, 2, G, zero, PRECISION), recurrent_product(W3, h, 3, G, zero, PRECISION))


@triton.jit
def recurrent_product_t(W, v, g: tl.constexpr, G: tl.constexpr, zero, PRECISION: tl.constexpr):
    """W^T @ v in fp32 (the gradient's way back through R); `zero` past the cell's gates."""
    if g < G:
        return tl.dot(tl.trans(W), v.to(W.dtype), input_precision=PRECISION, out_dtype=tl.float32)
    else:
        return zero


@triton.jit
def accumulate(acc, value, g: tl.constexpr, G: tl.constexpr):
    if g < G:
        return acc + value
    else:
        return acc


@triton.jit
def select_state(valid, new, old, s: tl.constexpr, S: tl.constexpr):
    """where(valid, new, old) for the cell's states; states past S stay constant zero."""
    if s < S:
        return tl.where(valid, new, old)
    else:
        return old
