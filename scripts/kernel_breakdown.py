"""Where a cuda_fused forward+backward spends its GPU time, kernel by kernel (torch.profiler):
LSTM bf16, B=16, T=1024, for each DHxNH given (default 768x1 256x3). Prints a table a shape.
Usage: python scripts/kernel_breakdown.py [DHxNH ...]"""
import sys

import torch
from torch.profiler import ProfilerActivity, profile

import fusedrnn

B, T = 16, 1024


def breakdown(DH, NH, repeats=5):
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, 4, NH, DH, **kw, requires_grad=True)
    R = (torch.randn(4, NH, DH, DH, **kw) / DH**0.5).requires_grad_()
    b = torch.zeros(4, NH, DH, **kw, requires_grad=True)
    dy = torch.randn(B, T, NH, DH, **kw)

    def step():
        y, _ = fusedrnn.rnn(x, R, b, backend="cuda_fused")
        torch.autograd.grad(y, (x, R, b), dy)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            step()
        torch.cuda.synchronize()
    rows = [(e.key, e.device_time_total / repeats / 1e3, e.count // repeats) for e in prof.key_averages()
            if e.device_time_total > 0]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    print(f"\n{DH}x{NH}: {total:.3f} ms of kernels a forward+backward ({torch.cuda.get_device_name(0)})")
    print("| kernel | ms | calls |\n|---|---|---|")
    for name, ms, count in rows[:12]:
        print(f"| {name[:90]} | {ms:.3f} | {count} |")


if __name__ == "__main__":
    for shape in sys.argv[1:] or ["768x1", "256x3"]:
        breakdown(*(int(v) for v in shape.split("x")))
