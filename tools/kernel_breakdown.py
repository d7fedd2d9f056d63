"""Which kernels does a cuda_fused forward+backward spend its GPU time in: the
recurrence kernels, or around them the R h recompute, the dR GEMM, the bias
reduction, copies? torch.profiler's device time a call, kernel by kernel, for
each DHxNH given (default 768x1 256x3) and each plan spec FWD/BWD (default
auto/auto; each one_sm, grid, cluster or auto, as `fusedrnn bench --plan`),
LSTM bf16, B=16, T=1024, on explicit plans (tools/cuda_profile.py's plans,
planned.with_plans). Prints a table a shape and plan. `fusedrnn bench --plan`
gives the total of each, not where it goes. With --resets P > 0, the plans' kernels
built for resets (plan.with_resets), a reset at each step with probability P.

  python tools/kernel_breakdown.py [DHxNH ...] [--plan FWD/BWD ...] [--batch B] [--length T] [--resets P]
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from cuda_profile import plan_spec, plans
from fusedrnn.backends.cuda.fused.planned import with_plans
from fusedrnn.testing import random_problem

CELL, DTYPE = "lstm", torch.bfloat16


def breakdown(DH, NH, B, T, spec, reset_probability=0.0, repeats=5):
    forward, backward = plans(CELL, DTYPE, B, T, NH, DH, spec, resets=reset_probability > 0)
    resets = None
    if reset_probability > 0:
        resets = torch.rand(B, T, device="cuda", generator=torch.Generator("cuda").manual_seed(1)) < reset_probability
    run = with_plans(forward, backward)
    torch.manual_seed(0)
    x, R, b, states = random_problem(CELL, B, T, NH, DH, dtype=DTYPE, device="cuda")
    leaves = [t.requires_grad_() for t in (x, R, b, states)]
    dy = torch.randn(B, T, NH, DH, device="cuda", dtype=DTYPE)

    def step():
        y, _ = run(*leaves, cell=CELL, resets=resets)
        torch.autograd.grad(y, leaves, dy)

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
    print(f"\n{DH}x{NH}, B={B}, T={T}, resets p={reset_probability}: {total:.3f} ms of kernels a forward+backward "
          f"({torch.cuda.get_device_name(0)})\n  {forward}\n  {backward}")
    print("| kernel | ms | calls |\n|---|---|---|")
    for name, ms, count in rows[:12]:
        print(f"| {name[:90]} | {ms:.3f} | {count} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", default=["768x1", "256x3"], metavar="DHxNH")
    parser.add_argument("--plan", nargs="+", type=plan_spec, default=[(None, None)], metavar="FWD/BWD")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--resets", type=float, default=0.0, metavar="P", help="a reset a step with probability P")
    args = parser.parse_args()
    if any(spec[1] == "none" for spec in args.plan):
        parser.error("--plan: BWD none, but a forward+backward needs a backward plan")
    for shape in args.shapes:
        DH, NH = (int(v) for v in shape.split("x"))
        for spec in args.plan:
            try:
                breakdown(DH, NH, args.batch, args.length, spec, args.resets)
            except ValueError as no_plan:  # the family cannot run this shape
                print(f"\n{shape} {spec}: {no_plan}")


if __name__ == "__main__":
    main()
