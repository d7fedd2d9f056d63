"""One small LSTM bf16 call whose cluster kernels compute-sanitizer checks, one kernel form
at a time (scripts/sanitize_cuda.sh runs the plan's forward and backward together).
Usage: python scripts/racecheck_cluster.py DHxNH T VARIANT
VARIANT: fwd-plan | fwd-async (one mbarrier a buffer) | fwd-barrier (the cluster barrier) |
bwd (the forward on the grid, the backward on the cluster) | bwd-shared (the same, all of R^T in
shared memory: no register blocks, nothing staged)"""
import dataclasses
import os
import sys

import torch

import fusedrnn
from fusedrnn.backends.cuda import cluster

DH, NH = (int(v) for v in sys.argv[1].split("x"))
T, variant = int(sys.argv[2]), sys.argv[3]
B = 16
os.environ["FUSEDRNN_SPLIT"] = "cluster"
plan = cluster.choose_cluster("lstm", torch.bfloat16, DH, B, NH, torch.cuda.get_device_properties(0).multi_processor_count)
options = {"fwd-plan": plan.options, "fwd-async": cluster.ASYNC_PUSH, "fwd-barrier": 0}.get(variant, plan.options)
chosen = dataclasses.replace(plan, options=options)
cluster.choose_cluster = lambda *args, **kwargs: chosen
if variant.startswith("bwd"):
    from fusedrnn.backends.cuda import cluster_backward, split
    split._cluster_plan = lambda *args, **kwargs: None  # the grid's forward
    if variant == "bwd-shared":
        choose = cluster_backward.choose_cluster_backward
        cluster_backward.choose_cluster_backward = lambda *a: dataclasses.replace(choose(*a), reg_blocks=0)
kw = dict(device="cuda", dtype=torch.bfloat16)
x = torch.randn(B, T, 4, NH, DH, **kw, requires_grad=True)
R = (torch.randn(4, NH, DH, DH, **kw) / DH**0.5).requires_grad_()
b = torch.zeros(4, NH, DH, **kw, requires_grad=True)
y, _ = fusedrnn.rnn(x, R, b, backend="cuda_fused")
if variant.startswith("bwd"):
    torch.autograd.grad(y, (x, R, b), torch.randn_like(y))
torch.cuda.synchronize()
print("ran", variant)
