"""Where a Triton step's time goes (METHOD.md: time variants that leave a stage out).

The kernels never name a cell, so they can be launched with stand-in cells
and gate counts: no matmul, one matmul, four matmuls with a trivial pointwise,
and the real LSTM, each with accurate and with MUFU (tanh.approx.f32) math. LSTM bf16,
B=16, T=1024.
"""
import itertools

import torch
import triton
import triton.language as tl
import triton.testing

from fusedrnn.backends.triton.backward import recurrence_bwd_kernel
from fusedrnn.backends.triton.forward import recurrence_fwd_kernel
from fusedrnn.backends.triton.pointwise import pointwise
from fusedrnn.cells import get_cell


@triton.jit
def trivial_forward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, FAST: tl.constexpr):
    return x0 + r0 + r1 + r2 + r3 + b0, s1, s2, s3


@triton.jit
def trivial_backward(x0, x1, x2, x3, r0, r1, r2, r3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
                     FAST: tl.constexpr):
    g = d0 * (x0 + r0)
    zero = tl.zeros_like(s0)
    return g, g, g, g, g, g, g, g, g, g, g, g, zero, d1, zero, zero


B, T = 16, 1024
VARIANTS = [  # name, GX, GR, cell forward, cell backward
    ("4 matmuls", 4, 4, trivial_forward, trivial_backward),
    ("lstm", 4, 4, *pointwise(get_cell("lstm"))),  # the functions generated from its step
]
rows = []
for NH, DH in ((12, 64), (6, 128)):
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, 4, NH, DH, **kw)
    R = (torch.randn(4, NH, DH, DH, device="cuda") / DH**0.5).to(torch.bfloat16)
    b = torch.zeros(4, NH, DH, **kw)
    s = torch.zeros(2, B, NH, DH, **kw)
    y = torch.empty(B, T, NH, DH, **kw)
    final = torch.empty_like(s)
    saved = torch.zeros(T + 1, 2, B, NH, DH, device="cuda")
    dy, dfinal = torch.randn_like(y), torch.zeros_like(s)
    dx, drec = torch.empty_like(x), torch.empty(NH, B * T, 4 * DH, device="cuda")
    db, ds = torch.empty(1, 4, NH, DH, device="cuda"), torch.empty_like(s)
    warps = 4 if DH <= 64 else 8
    for (name, GX, GR, fwd_cell, bwd_cell), fast in itertools.product(VARIANTS, (False, True)):
        name = name + (" tanh.approx" if fast else "")
        meta = dict(NH=NH, DH=DH, DH_P=DH, BLOCK_B=16, GX=GX, GR=GR, GB=4, S=2, WIDE_OFFSETS=False, FAST_MATH=fast,
                    HAS_LENGTHS=False, PRECISION="tf32", STACK_GATES=False, num_warps=warps, num_stages=1)
        bwd_meta = dict(PREFETCH=True, DB_EACH_STEP=DH <= 64, LOAD_PRODUCTS=False, DX_DB_FROM_DREC=False)
        fwd = lambda: recurrence_fwd_kernel[(NH, 1)](x, R, b, s, x, y, final, saved, saved, B, T,  # noqa
                                                     CELL=fwd_cell, SAVE=False, SAVE_PRODUCTS=False, **meta)
        bwd = lambda: recurrence_bwd_kernel[(NH, 1)](x, R, b, s, x, y, saved, saved, dy, dfinal, dx, drec, db,  # noqa
                                                     ds, B, T, CELL=bwd_cell, **bwd_meta, **meta)
        times = [triton.testing.do_bench(f, warmup=10, rep=50, return_mode="median") for f in (fwd, bwd)]
        rows.append((f"{DH}x{NH}", name, *times))
        print(rows[-1], flush=True)
print("| shape | variant | fwd ms | bwd ms | fwd us/step | bwd us/step |\n|---|---|---|---|---|---|")
for shape, name, f, bw in rows:
    print(f"| {shape} | {name} | {f:.3f} | {bw:.3f} | {f * 1e3 / T:.2f} | {bw * 1e3 / T:.2f} |")
