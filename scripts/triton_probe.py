"""Which launch options give a wrong backward for which cell (run on the GPU).

Prints, per (cell, DH, num_warps, PREFETCH), the relative error of dx from the
Triton backward against the torch backend on the same bf16 inputs.
"""
import itertools
import sys

import torch

import fusedrnn
from fusedrnn.backends.triton import launch

small = len(sys.argv) > 1 and sys.argv[1] == "small"  # for compute-sanitizer
default = launch.launch_options
for cell, DH in itertools.product(["elman", "lstm"], [64] if small else [64, 128]):
    for warps, prefetch in itertools.product([4, 8], [True, False]):
        if small and (warps, prefetch) != (4, True):
            continue
        launch.launch_options = lambda DH_P, BB, backward, gates_r=4, w=warps, p=prefetch: (
            dict(num_warps=w, num_stages=1, PREFETCH=p) if backward else default(DH_P, BB, backward, gates_r))
        torch.manual_seed(0)
        spec = fusedrnn.CELLS[cell]
        B, T, NH = 5, 8 if small else 37, 1 if small else 3
        x = torch.randn(B, T, spec.gates_x, NH, DH, device="cuda").bfloat16()
        R = (torch.randn(spec.gates_r, NH, DH, DH, device="cuda") / DH**0.5).bfloat16()
        b = torch.randn(spec.gates_b, NH, DH, device="cuda").bfloat16()
        grads = []
        for backend in ("triton", "torch"):
            leaves = [t.clone().requires_grad_() for t in (x, R, b)]
            y, _ = fusedrnn.rnn(*leaves, cell=cell, backend=backend)
            grads.append(torch.autograd.grad(y.float().sum(), leaves))
        errors = [((a.float() - c.float()).norm() / c.float().norm()).item() for a, c in zip(*grads)]
        print(f"{cell} DH={DH} warps={warps} prefetch={prefetch}: rel err dx {errors[0]:.2e} dR {errors[1]:.2e}",
              flush=True)
launch.launch_options = default
