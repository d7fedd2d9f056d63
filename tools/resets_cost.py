"""What do resets cost? fusedrnn.rnn with and without `resets` (packed documents of
~256 tokens: a reset at each step with probability 1/256), LSTM bf16, T=1024, forward
and forward+backward, medians of triton.testing.do_bench, for each backend, head
split and batch given. Issue 18 asks for at most 5 % more.
--probability 0 times the kernels built for resets on a call with none set: what the
reset path costs where no sequence takes it.
The two calls are timed in turn, --rounds times (do_bench, 100 ms each), a ratio taken within
each round; the median of the rounds' ratios is reported, with their range. The last column is
the host's time to issue a call: where it reaches the GPU's (LSTM 64x12 B=16: 0.3-0.8 ms against
0.5, varying from process to process on the H100 machine, 2026-12-07) the eager time is the
host's, not the GPU's.
Usage: python tools/resets_cost.py [--backends cuda_fused triton] [--splits 64x12 768x1] [--batch 16 256]
       [--probability P] [--passes fwd fwd+bwd] [--rounds N]"""
import argparse
import statistics
import time

import torch
import triton.testing

import fusedrnn


def call(backend, cell, B, T, NH, DH, resets, backward):
    """The call to time, its inputs made."""
    spec = fusedrnn.CELLS[cell]
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, spec.gates_x, NH, DH, **kw)
    R = torch.randn(spec.gates_r, NH, DH, DH, **kw) / DH ** 0.5
    b = torch.randn(spec.gates_b, NH, DH, **kw) * 0.1
    if not backward:
        def run():
            with torch.no_grad():
                return fusedrnn.rnn(x, R, b, cell=cell, backend=backend, resets=resets)
    else:
        leaves = [t.requires_grad_() for t in (x, R, b)]
        dy = torch.randn(B, T, NH, DH, **kw)

        def run():
            y, _ = fusedrnn.rnn(*leaves, cell=cell, backend=backend, resets=resets)
            return torch.autograd.grad(y, leaves, dy)
    run()  # compiles, and refuses what the backend cannot run
    return run


def issue_time(run, calls=20):
    """The host's time to issue one call (no sync; the median of `calls`): above the GPU time a
    call is host-bound, and do_bench's time is the host's."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    torch.cuda.synchronize()
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["cuda_fused", "triton"])
    parser.add_argument("--splits", nargs="+", default=["64x12", "768x1"])
    parser.add_argument("--batch", nargs="+", type=int, default=[16, 256])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--probability", type=float, default=1 / 256, help="of a reset at each step")
    parser.add_argument("--passes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    parser.add_argument("--rounds", type=int, default=5, help="of timing the two calls in turn")
    args = parser.parse_args()
    T = 1024
    print(f"{torch.cuda.get_device_name()}, {args.cell} bf16, T={T}, resets with p={args.probability:.4g} a step; "
          f"ms (medians of {args.rounds} rounds; ratio: the median of the rounds' ratios, their range)")
    print("| backend | DH×NH | B | pass | no resets | resets | ratio | host ms: no resets, resets |\n"
          "|---|---|---|---|---|---|---|---|")
    for backend in args.backends:
        for split in args.splits:
            DH, NH = map(int, split.split("x"))
            for B in args.batch:
                generator = torch.Generator(device="cuda").manual_seed(0)
                resets = torch.rand(B, T, device="cuda", generator=generator) < args.probability
                for name in args.passes:
                    backward = name == "fwd+bwd"
                    try:
                        runs = [call(backend, args.cell, B, T, NH, DH, r, backward) for r in (None, resets)]
                    except (ValueError, RuntimeError) as error:
                        print(f"| {backend} | {split} | {B} | {name} | {error} | | | |")
                        continue
                    times = [[triton.testing.do_bench(run, warmup=25, rep=100, return_mode="median") for run in runs]
                             for _ in range(args.rounds)]
                    plain, with_resets = (statistics.median(t[k] for t in times) for k in (0, 1))
                    ratios = sorted(t[1] / t[0] for t in times)
                    print(f"| {backend} | {split} | {B} | {name} | {plain:.3f} "
                          f"| {with_resets:.3f} | {statistics.median(ratios):.3f} "
                          f"({ratios[0]:.3f}–{ratios[-1]:.3f}) | {issue_time(runs[0]):.3f}, {issue_time(runs[1]):.3f} |")


if __name__ == "__main__":
    main()
