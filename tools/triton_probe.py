"""Hunt for launch options or inputs that give a wrong Triton backward (GPU).

For each cell, head size and launch variant, over several seeds: the relative
error of dx and dR from the Triton backend against the float64 reference, next
to the torch backend's error on the same bf16 inputs. A kernel bug shows as an
error far above torch's on some seeds; a race as errors that move between runs.
A launch variant is the shipped plans with fields replaced (the backward's
options below; MUFU tanh on or off in both), run through run_with_plans.
usage: python tools/triton_probe.py CELL[,CELL] DH[,DH] SEEDS
"""
import dataclasses
import sys

import torch

sys.path.insert(0, "tests")
import fusedrnn  # noqa: E402
from fusedrnn.backends.triton.explicit import run_with_plans, variant_plans  # noqa: E402
from reference import random_problem, reference_rnn  # noqa: E402

cells = sys.argv[1].split(",") if len(sys.argv) > 1 else ["elman", "lstm"]
dims = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [64]
seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
VARIANTS = {  # fields of the backward plan replaced
    "default": {},
    "db-tiles": {"DB_EACH_STEP": False},
    "8 warps": {"num_warps": 8},
    "late loads": {"PREFETCH": False},
}


def errors(cell, DH, seed, fast, change):
    torch.manual_seed(seed)
    B, T, NH = 5, 37, 3
    x, R, b, s = random_problem(cell, B, T, NH, DH, dtype=torch.bfloat16, device="cuda")
    lengths = torch.randint(1, T + 1, (B,), device="cuda")
    lengths[0] = T
    ref_leaves = [t.detach().double().requires_grad_() for t in (x, R, b, s)]
    y_ref, f_ref = reference_rnn(cell, *ref_leaves, lengths=lengths)
    w = [torch.randn_like(y_ref), torch.randn_like(f_ref)]
    want = torch.autograd.grad((y_ref * w[0]).sum() + (f_ref * w[1]).sum(), ref_leaves)
    forward, backward = variant_plans(x, cell, lengths, "shipped")
    plans = (dataclasses.replace(forward, FAST_MATH=fast), dataclasses.replace(backward, FAST_MATH=fast, **change))
    runs = (lambda *leaves: run_with_plans(*leaves, lengths, cell, *plans),
            lambda *leaves: fusedrnn.rnn(*leaves, cell=cell, backend="torch", lengths=lengths))
    out = []
    for run in runs:  # triton, then torch
        leaves = [t.detach().clone().requires_grad_() for t in (x, R, b, s)]
        y, f = run(*leaves)
        got = torch.autograd.grad((y.double() * w[0]).sum() + (f.double() * w[1]).sum(), leaves)
        out.append([((a.double() - c).norm() / c.norm()).item() for a, c in zip(got, want)])
    return out


for cell in cells:
    for DH in dims:
        for fast in (True, False):
            for name, change in VARIANTS.items():
                worst = [0.0, 0.0]
                for seed in range(seeds):
                    (tri, tor) = errors(cell, DH, seed, fast, change)
                    worst = [max(worst[0], tri[0]), max(worst[1], tor[0])]
                flag = "  <-- BAD" if worst[0] > 3 * worst[1] + 1e-3 else ""
                print(f"{cell} DH={DH} fast={fast} {name}: worst dx err triton {worst[0]:.2e} torch {worst[1]:.2e}{flag}",
                      flush=True)
