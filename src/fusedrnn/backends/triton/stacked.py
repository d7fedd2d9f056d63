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

Where the tile also serves R^T products (the backward) and has more than
MAX_TRANSPOSED_ROWS rows (4 DH_P > 256: DH_P = 128), it is held as two
[2 DH_P, DH_P] tiles, gates 0-1 and 2-3: two products each way instead of one.
Triton 3.6 on sm_90 computes a wrong R^T product from the one [512, 128]
tile (16-bit): shared memory holds it as two 64-column slabs (128-byte
swizzle) of 512 rows each, slab 1 at +64 KiB and row 256 at +32 KiB, as the
R h product's wgmma descriptors read it; but the descriptors of its
transposed view (memdesc_trans) put columns 64-127 at +32 KiB and K >= 256 at
+64 KiB, as for slabs of 256 rows. Half of each dh came from the wrong rows
(dx error 0.27 vs 0.0024 in bf16 at DH=128) while the forward was right.
Tiles of at most 256 rows agree both ways. Triton 3.9's PTX has the same jumps
for the one tile (MAX_TRANSPOSED_ROWS = 512 tried). tests/test_triton_compile.py reads
those descriptors from the sm_90 PTX (compile_check.transposed_a_jumps);
tools/triton_stacked_check.py checks the results on a GPU.
"""
import triton
import triton.language as tl

# The most rows of a stacked tile that also serves a transposed (R^T) product.
MAX_TRANSPOSED_ROWS = tl.constexpr(256)


@triton.jit
def _load_gate_rows(R_ptr, n, first: tl.constexpr, count: tl.constexpr, G: tl.constexpr, NH, DH,
                    DH_P: tl.constexpr):
    """R[g, n] for g = first..first+count-1 stacked gate-major: a [count DH_P, DH_P] tile, zero-padded."""
    rows = tl.arange(0, count * DH_P)[:, None]
    gate = first + rows // DH_P
    row = rows % DH_P
    cols = tl.arange(0, DH_P)[None, :]
    mask = (gate < G) & (row < DH) & (cols < DH)
    return tl.load(R_ptr + (gate * NH + n) * DH * DH + row * DH + cols, mask=mask, other=0.0)


@triton.jit
def load_stacked_weights(R_ptr, n, G: tl.constexpr, NH, DH, DH_P: tl.constexpr, TRANSPOSED: tl.constexpr):
    """R[g, n] for g = 0..3 stacked gate-major, as a pair of tiles: the one
    [4 DH_P, DH_P] tile twice, or (TRANSPOSED, for R^T products too, and more
    than MAX_TRANSPOSED_ROWS rows) gates 0-1 and gates 2-3 as two [2 DH_P, DH_P] tiles."""
    if TRANSPOSED and 4 * DH_P > MAX_TRANSPOSED_ROWS:
        return (_load_gate_rows(R_ptr, n, 0, 2, G, NH, DH, DH_P),
                _load_gate_rows(R_ptr, n, 2, 2, G, NH, DH, DH_P))
    else:
        W = _load_gate_rows(R_ptr, n, 0, 4, G, NH, DH, DH_P)
        return W, W


@triton.jit
def _split2(v):
    """[2 D, N] gate-major -> two [D, N] tiles."""
    D: tl.constexpr = v.shape[0] // 2
    N: tl.constexpr = v.shape[1]
    return tl.split(tl.permute(tl.reshape(v, (2, D, N)), (1, 2, 0)))  # [D, N, j] holds gate j


@triton.jit
def _join2(v0, v1):
    """Two [D, N] tiles -> [2 D, N] gate-major (the inverse of _split2)."""
    D: tl.constexpr = v0.shape[0]
    N: tl.constexpr = v0.shape[1]
    return tl.reshape(tl.permute(tl.join(v0, v1), (2, 0, 1)), (2 * D, N))


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
def stacked_products(W01, W23, h, PRECISION: tl.constexpr):
    """R_g @ h in fp32 for the four gates (W01, W23 from load_stacked_weights),
    as one product, or two where the tiles hold two gates each."""
    if W01.shape[0] == 2 * W01.shape[1]:
        r0, r1 = _split2(tl.dot(W01, h, input_precision=PRECISION, out_dtype=tl.float32))
        r2, r3 = _split2(tl.dot(W23, h, input_precision=PRECISION, out_dtype=tl.float32))
        return r0, r1, r2, r3
    else:
        return _split4(tl.dot(W01, h, input_precision=PRECISION, out_dtype=tl.float32))


@triton.jit
def stacked_products_t(W01, W23, v0, v1, v2, v3, PRECISION: tl.constexpr):
    """The sum over gates of R_g^T @ v_g in fp32, as one product (or two, as stacked_products)."""
    if W01.shape[0] == 2 * W01.shape[1]:
        dh = tl.dot(tl.trans(W01), _join2(v0, v1).to(W01.dtype), input_precision=PRECISION,
                    out_dtype=tl.float32)
        return tl.dot(tl.trans(W23), _join2(v2, v3).to(W23.dtype), acc=dh, input_precision=PRECISION,
                      out_dtype=tl.float32)
    else:
        v = _join4(v0, v1, v2, v3).to(W01.dtype)
        return tl.dot(tl.trans(W01), v, input_precision=PRECISION, out_dtype=tl.float32)
