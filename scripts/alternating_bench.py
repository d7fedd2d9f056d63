"""GPU timing of the cuda_alternating backend: LSTM bf16, B=16, T=1024, hidden
768 as 64x12 and 768x1, forward and forward+backward, with CUDA graphs, with
fp32 vs storage-type GEMM results, and launched step by step; cuda_fused
beside it; then where a forward step's time goes (the GEMM alone, the
pointwise alone, each replayed from a graph of 1024). The targets set for it:
<= 6.2 ms forward at 64x12 and <= 6.7 ms at 768x1.

    PYTHONPATH=src python scripts/alternating_bench.py [--T 1024] [--B 16]
"""
import argparse
import os

import torch

from fusedrnn.backends.cuda import alternating, alternating_workspace
from fusedrnn.bench.harness import measure
from fusedrnn.bench.providers import Case

VARIANTS = {  # name: environment
    "graphs": {},
    "graphs, bf16 GEMM results": {"FUSEDRNN_ALTERNATING_PRODUCT": "storage"},
    "launched": {"FUSEDRNN_ALTERNATING_GRAPHS": "0"},
}


def _timed(fn, repeats=5):
    """Median ms of fn() over repeats, by CUDA events."""
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def _graph_of(fn, count):
    graph = torch.cuda.CUDAGraph()
    side = alternating._capture_stream(torch.device("cuda", torch.cuda.current_device()))  # cuda.core knows it
    with torch.cuda.graph(graph, stream=side):
        for k in range(count):
            fn(k)
    return graph


def breakdown(B, T, NH, DH):
    """The forward step's two kernels, each alone, T of them replayed from graphs."""
    spec_x = torch.randn(B, T, 4, NH, DH, device="cuda", dtype=torch.bfloat16)
    R = torch.randn(4, NH, DH, DH, device="cuda", dtype=torch.bfloat16) / DH**0.5
    b = torch.zeros(4, NH, DH, device="cuda", dtype=torch.bfloat16)
    states = torch.zeros(2, B, NH, DH, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        y, _, _ = alternating.forward(spec_x, R, b, states, None, "lstm", False)  # y: what the call block points at
    ws = next(w for w in reversed(alternating_workspace._WORKSPACES.values()) if not w.shape.backward)
    pointwise = alternating.NvrtcPointwise()
    gemm = _graph_of(lambda k: alternating._product(ws.h_operand, ws.W, ws.rec), T)
    chunk = ws.capacity
    steps = _graph_of(lambda k: pointwise.step(ws, k, chunk), chunk)

    def pointwise_only():
        ws.call[alternating_workspace.DONE] = 0
        for _ in range(T // chunk):
            steps.replay()
    print(f"  {DH}x{NH}: GEMM alone {_timed(gemm.replay):.2f} ms, pointwise alone {_timed(pointwise_only):.2f} ms "
          f"for {T} steps (each from a graph; y of the last call rewritten)")
    del y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--T", type=int, default=1024)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    for DH, NH in ((64, 12), (768, 1)):
        for backward in (False, True):
            rows = []
            for name, env in VARIANTS.items():
                os.environ.update(env)
                m = measure("cuda_alternating", Case("lstm", torch.bfloat16, args.B, args.T, NH, DH, backward))
                for key in env:
                    del os.environ[key]
                rows.append(f"{name} {m.median_ms and round(m.median_ms, 2)} ms {m.note}".strip())
            fused = measure("cuda_fused", Case("lstm", torch.bfloat16, args.B, args.T, NH, DH, backward))
            rows.append(f"cuda_fused {fused.median_ms and round(fused.median_ms, 2)} ms {fused.note}".strip())
            print(f"{DH}x{NH} {'fwd+bwd' if backward else 'fwd'}: " + "; ".join(rows))
        breakdown(args.B, args.T, NH, DH)


if __name__ == "__main__":
    main()
