"""What does the planner run for these calls, and how does the NVRTC in use
compile it? For each DHxNH (default: hidden 768 split six ways) and each
direction, LSTM bf16 at B (default 16), T=1024: the plan (kernel family,
instantiation, why), and the kernel's registers, spill bytes, stack and
local-memory instructions from the compile. With a GPU it is that GPU's
plan; without one, the H100 preset's (the compile for sm_90 runs on a CPU:
CI's NVRTC may allocate registers differently from the GPU machine's).
With --resets, the kernels of calls with resets (the planner's plan.with_resets).
Timing belongs to `fusedrnn bench` (its --plan FWD/BWD compares kernel
families). Usage: python tools/plan_report.py [--batch B] [--resets] [DHxNH ...]"""
import argparse

import torch

from fusedrnn.backends.cuda.fused.plan import plan
from fusedrnn.backends.cuda.runtime.compile import compile_kernel, nvrtc_version
from fusedrnn.backends.cuda.runtime.device import H100_SXM, device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem

SPLITS = ["16x48", "32x24", "64x12", "128x6", "256x3", "768x1"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("splits", nargs="*", default=SPLITS, metavar="DHxNH")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--resets", action="store_true", help="the kernels of calls with resets")
    args = parser.parse_args()
    device = device_limits() if torch.cuda.is_available() else H100_SXM
    print(f"{device.name} ({'this GPU' if device.index is not None else 'preset'}), NVRTC {nvrtc_version()}, "
          f"LSTM bf16, B={args.batch}, T=1024{', with resets' if args.resets else ''}")
    print("| DHxNH | direction | family | kernel | why | registers | spill B | stack B | LDL/STL |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for split in args.splits:
        DH, NH = map(int, split.split("x"))
        problem = Problem(get_cell("lstm"), args.batch, 1024, NH, DH, torch.bfloat16, torch.device("cuda"), False, True,
                          has_resets=args.resets)
        for direction in ("forward", "backward"):
            try:
                chosen = plan(problem, device, direction)
            except ValueError as error:
                print(f"| {split} | {direction} | none | {error} | | | | | |")
                continue
            compiled = compile_kernel(chosen.name_expression, device.arch, chosen.config.source)
            print(f"| {split} | {direction} | {chosen.strategy} | `{chosen.name_expression}` | {chosen.why} "
                  f"| {compiled.registers} | {compiled.spill_bytes} | {compiled.stack_bytes} "
                  f"| {compiled.local_memory_instructions} |")


if __name__ == "__main__":
    main()
