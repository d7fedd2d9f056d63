"""What do resets cost? fusedrnn.rnn with and without `resets` (packed documents of
~256 tokens: a reset at each step with probability 1/256), LSTM bf16, T=1024, forward
and forward+backward, medians of triton.testing.do_bench, for each backend, head
split and batch given. Issue 18 asks for at most 5 % more.
--probability 0 times the kernels built for resets on a call with none set: what the
reset path costs where no sequence takes it.
Usage: python tools/resets_cost.py [--backends cuda_fused triton] [--splits 64x12 768x1] [--batch 16 256]
       [--probability P]"""
import argparse

import torch
import triton.testing

import fusedrnn


def timed(backend, cell, B, T, NH, DH, resets, backward):
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
    return triton.testing.do_bench(run, warmup=50, rep=300, return_mode="median")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["cuda_fused", "triton"])
    parser.add_argument("--splits", nargs="+", default=["64x12", "768x1"])
    parser.add_argument("--batch", nargs="+", type=int, default=[16, 256])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--probability", type=float, default=1 / 256, help="of a reset at each step")
    args = parser.parse_args()
    T = 1024
    print(f"{torch.cuda.get_device_name()}, {args.cell} bf16, T={T}, resets with p={args.probability:.4g} a step; "
          "ms (medians)")
    print("| backend | DH×NH | B | pass | no resets | resets | ratio |\n|---|---|---|---|---|---|---|")
    for backend in args.backends:
        for split in args.splits:
            DH, NH = map(int, split.split("x"))
            for B in args.batch:
                generator = torch.Generator(device="cuda").manual_seed(0)
                resets = torch.rand(B, T, device="cuda", generator=generator) < args.probability
                for backward in (False, True):
                    try:
                        plain = timed(backend, args.cell, B, T, NH, DH, None, backward)
                        with_resets = timed(backend, args.cell, B, T, NH, DH, resets, backward)
                    except (ValueError, RuntimeError) as error:
                        print(f"| {backend} | {split} | {B} | {'fwd+bwd' if backward else 'fwd'} | {error} | | |")
                        continue
                    print(f"| {backend} | {split} | {B} | {'fwd+bwd' if backward else 'fwd'} | {plain:.3f} "
                          f"| {with_resets:.3f} | {with_resets / plain:.3f} |")


if __name__ == "__main__":
    main()
