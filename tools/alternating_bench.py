"""What do CUDA graphs and fp32 GEMM results cost or save in cuda_alternating?
LSTM bf16, B=16, T=1024, hidden 768 as 64x12 and 768x1, forward and
forward+backward, each AlternatingPlan timed side by side (graphs with fp32 or
storage-type GEMM results, launched step by step), medians of
triton.testing.do_bench as `fusedrnn bench` takes them; `fusedrnn bench
--providers cuda_alternating cuda_fused` compares it with the other backends.

    PYTHONPATH=src python tools/alternating_bench.py [--T 1024] [--B 16]
"""
import argparse

import torch
import triton.testing

from fusedrnn.backends.cuda.alternating import loop
from fusedrnn.backends.cuda.alternating.plan import AlternatingPlan
from fusedrnn.testing import random_problem

PLANS = {
    "graphs, fp32 GEMM results": AlternatingPlan(torch.float32),
    "graphs, bf16 GEMM results": AlternatingPlan(torch.bfloat16),
    "launched, fp32 GEMM results": AlternatingPlan(torch.float32, graphs=False),
}


def timed(B, T, NH, DH, plan, backward) -> float:
    x, R, b, states = random_problem("lstm", B, T, NH, DH, dtype=torch.bfloat16, device="cuda")
    if not backward:
        return triton.testing.do_bench(lambda: loop.forward(x, R, b, states, None, "lstm", False, plan=plan),
                                       return_mode="median")
    dy, dfinal = torch.randn(B, T, NH, DH, device="cuda", dtype=x.dtype), torch.zeros_like(states)

    def forward_backward():
        y, final, saved = loop.forward(x, R, b, states, None, "lstm", True, plan=plan)
        loop.backward(dy, dfinal, x, R, b, states, None, y, final, saved, "lstm", plan=plan)
    return triton.testing.do_bench(forward_backward, return_mode="median")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--T", type=int, default=1024)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, f"LSTM bf16, B={args.B}, T={args.T}, ms")
    print("| DHxNH | pass | " + " | ".join(PLANS) + " |\n|---|---|" + "---|" * len(PLANS))
    for DH, NH in ((64, 12), (768, 1)):
        for backward in (False, True):
            times = [timed(args.B, args.T, NH, DH, plan, backward) for plan in PLANS.values()]
            print(f"| {DH}x{NH} | {'fwd+bwd' if backward else 'fwd'} | " + " | ".join(f"{t:.2f}" for t in times) + " |")


if __name__ == "__main__":
    main()
