"""One forward of an LSTM head split over a thread-block cluster, for Nsight
Compute to profile (the 768x1 cluster kernel runs 5x slower than its model;
docs/perf-notes.md, 2026-11-26):

    FUSEDRNN_SPLIT=cluster ncu -k regex:fused_cluster --launch-count 1 --set full \\
        python scripts/ncu_cluster.py 768 1
"""
import sys

import torch

import fusedrnn

DH, NH = int(sys.argv[1]), int(sys.argv[2])
B, T = 16, 64
x = torch.randn(B, T, 4, NH, DH, device="cuda", dtype=torch.bfloat16)
R = (torch.randn(4, NH, DH, DH, device="cuda") / DH**0.5).bfloat16()
b = torch.zeros(4, NH, DH, device="cuda", dtype=torch.bfloat16)
with torch.no_grad():
    y, _ = fusedrnn.rnn(x, R, b, cell="lstm", backend="cuda_fused")
torch.cuda.synchronize()
print("ran", tuple(y.shape))
