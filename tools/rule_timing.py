"""The planner's rule plans of cuda_fused for each cell, head split and batch (bf16, T=1024, no
tuned winners: run it with FUSEDRNN_CACHE_DIR pointing at a cache without tune.json): the plans
and fwd / fwd+bwd ms (do_bench medians). Run it from two source trees (PYTHONPATH) to compare
two versions of the rules, each in its own process.

  python tools/rule_timing.py CELLS SPLITS BATCHES   e.g. lstm,gru 64x12,32x24 128,256
"""
import sys

import torch
import triton.testing

from fusedrnn.backends.cuda.fused.plan import plan
from fusedrnn.backends.cuda.runtime.device import device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from resets_cost import call  # the inputs and the call (run once: compiled, or refused)

T = 1024


def main():
    print("| cell | DHxNH | B | fwd plan | bwd plan | fwd ms | fwd+bwd ms |\n|---|---|---|---|---|---|---|")
    for cell in sys.argv[1].split(","):
        for split in sys.argv[2].split(","):
            DH, NH = map(int, split.split("x"))
            for B in map(int, sys.argv[3].split(",")):
                fwd, both = (call("cuda_fused", cell, B, T, NH, DH, None, backward) for backward in (False, True))
                p = Problem(get_cell(cell), B, T, NH, DH, torch.bfloat16, torch.device("cuda"), False, True)
                names = []
                for d in ("forward", "backward"):
                    c = plan(p, device_limits(0), d).config
                    names.append(f"{type(c).__name__[:5]} NT{getattr(c, 'NT', '-')} WN{getattr(c, 'WN', '-')} d{c.depth}")
                f = triton.testing.do_bench(fwd, warmup=10, rep=150, return_mode="median")
                fb = triton.testing.do_bench(both, warmup=5, rep=250, return_mode="median")
                print(f"| {cell} | {split} | {B} | {names[0]} | {names[1]} | {f:.3f} | {fb:.3f} |", flush=True)


if __name__ == "__main__":
    main()
