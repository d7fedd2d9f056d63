"""Where does a call's time go between the host and the GPU? For each cell at one
head split and batch (bf16, T=1024, forward+backward), `fusedrnn.rnn` (the custom
ops) and the same plans through the internal explicit path (as `fusedrnn bench
--plan auto/auto` runs them): the host time to issue one call (no sync), the GPU
time between CUDA events around it, and the wall time of N calls in a row. A
call is host-bound where its issue time exceeds its GPU time.
--profile prints cProfile's top functions (own time) of 30 calls through fusedrnn.rnn.
Usage: python tools/host_overhead.py [--split DHxNH] [--batch B] [--profile] [cells ...]"""
import argparse
import cProfile
import pstats
import statistics
import time

import torch

import fusedrnn
from fusedrnn.bench.planned import planned_function
from fusedrnn.bench.providers import Case
from fusedrnn.cells import get_cell


def measure(run, x, R, b, states, dy, cell, repeats=30):
    leaves = [x, R, b]

    def call():
        y, _ = run(*leaves, states, cell=cell)
        return torch.autograd.grad(y, leaves, dy)

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    issue, gpu = [], []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        t0 = time.perf_counter()
        call()
        issue.append((time.perf_counter() - t0) * 1e3)
        end.record()
        torch.cuda.synchronize()
        gpu.append(start.elapsed_time(end))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        call()
    torch.cuda.synchronize()
    return statistics.median(issue), statistics.median(gpu), (time.perf_counter() - t0) * 1e3 / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cells", nargs="*", default=["elman", "lstm"])
    parser.add_argument("--split", default="64x12")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    DH, NH = map(int, args.split.split("x"))
    print(f"{torch.cuda.get_device_name()}, bf16, B={args.batch}, T=1024, {args.split}, fwd+bwd, ms (medians)")
    print("| cell | path | issue (host) | GPU (events) | wall a call, back to back |\n|---|---|---|---|---|")
    for cell in args.cells:
        case = Case(cell=cell, dtype=torch.bfloat16, B=args.batch, T=1024, NH=NH, DH=DH, backward=True)
        spec, kw = get_cell(cell), dict(device="cuda", dtype=torch.bfloat16)
        x = torch.randn(args.batch, 1024, spec.gates_x, NH, DH, **kw).requires_grad_()
        R = (torch.randn(spec.gates_r, NH, DH, DH, **kw) / DH ** 0.5).requires_grad_()
        b = (torch.randn(spec.gates_b, NH, DH, **kw) * 0.1).requires_grad_()
        states = torch.zeros(get_cell(cell).num_states, args.batch, NH, DH, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(args.batch, 1024, NH, DH, device="cuda", dtype=torch.bfloat16)
        paths = {"fusedrnn.rnn": lambda *a, cell: fusedrnn.rnn(*a, cell=cell, backend="cuda_fused"),
                 "explicit plans": planned_function("cuda_fused:auto/auto", case)}
        for name, run in paths.items():
            issue, gpu, wall = measure(run, x, R, b, states, dy, cell)
            print(f"| {cell} | {name} | {issue:.3f} | {gpu:.3f} | {wall:.3f} |")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            measure(paths["fusedrnn.rnn"], x, R, b, states, dy, cell)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
