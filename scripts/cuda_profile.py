"""One forward and one backward of the cuda_fused backend, for ncu / nsys.
Usage: python scripts/cuda_profile.py [DHxNH] [T] [fwd]   (fwd: forward only, as split heads)"""
import sys

import torch

import fusedrnn

DH, NH = (int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "64x12").split("x"))
T = int(sys.argv[2]) if len(sys.argv) > 2 else 256
B = 16
kw = dict(device="cuda", dtype=torch.bfloat16)
x = torch.randn(B, T, 4, NH, DH, **kw, requires_grad=True)
R = (torch.randn(4, NH, DH, DH, **kw) / DH**0.5).requires_grad_()
b = torch.zeros(4, NH, DH, **kw, requires_grad=True)
forward_only = len(sys.argv) > 3 and sys.argv[3] == "fwd"
for _ in range(2):
    if forward_only:
        with torch.no_grad():
            fusedrnn.rnn(x, R, b, backend="cuda_fused")
        continue
    y, final = fusedrnn.rnn(x, R, b, backend="cuda_fused")
    torch.autograd.grad(y, (x, R, b), torch.randn_like(y))
torch.cuda.synchronize()
