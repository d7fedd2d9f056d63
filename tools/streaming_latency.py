"""Per-step latency of decoding token by token: one time step with
the states carried, fusedrnn.rnn against cuDNN's nn.LSTM stepping the same
way, launched eagerly and replayed from a captured CUDA graph.

LSTM, bf16, hidden 768 as 768x1 and 64x12, B in {1, 16}. cuDNN runs the dense
768x768 recurrence plus its input projection (it has no heads); ours gets the
input projection precomputed (x), as fusedrnn.rnn's contract has it, and for a
like-for-like number also with the projection done by one matmul per step.
Median microseconds over many steps; prints a table, writes JSON to --out.

    PYTHONPATH=src python tools/streaming_latency.py [--out DIR] [--backend cuda_fused] [--profile]
"""
import argparse
import json
import os
import statistics
import time

import torch

import fusedrnn

HIDDEN = 768


def _synchronised_us(step, repeats: int, device: str) -> float:
    """Median wall time of one call of `step`, the device synchronised around each
    call: what a host that waits for every token sees."""
    for _ in range(10):
        step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _back_to_back_us(step, repeats: int, device: str, steps: int = 100) -> float:
    """Time a step of `steps` dependent steps issued back to back (each reads the
    states the last one wrote), median over repeats: the decoding rate of a
    host that does not wait, bound by the host's launches or the device's run."""
    for _ in range(10):
        step()
    times = []
    for _ in range(max(3, repeats // steps)):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times) * 1e6


def _graphed(step, device: str):
    """`step` captured once into a CUDA graph; the replay is the step."""
    if device != "cuda":
        return None
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture (compiles, cuBLAS handles)
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def ours(B: int, NH: int, DH: int, backend: str, project: bool, device: str, dtype):
    """One step of fusedrnn.rnn with the states carried in place (as a decoder would)."""
    kw = dict(device=device, dtype=dtype)
    R = torch.randn(4, NH, DH, DH, **kw) / DH**0.5
    b = torch.zeros(4, NH, DH, **kw)
    W = torch.randn(HIDDEN, 4 * HIDDEN, **kw) / HIDDEN**0.5
    token = torch.randn(B, HIDDEN, **kw)
    x = torch.randn(B, 1, 4, NH, DH, **kw)
    states = torch.zeros(2, B, NH, DH, **kw)

    @torch.no_grad()
    def step():
        pre = (token @ W).view(B, 1, 4, NH, DH) if project else x
        _, final = fusedrnn.rnn(pre, R, b, states, cell="lstm", backend=backend)
        states.copy_(final)
    return step


def cudnn(B: int, device: str, dtype):
    lstm = torch.nn.LSTM(HIDDEN, HIDDEN, batch_first=True, device=device, dtype=dtype)
    lstm.flatten_parameters()  # else cuDNN compacts the weights on every call
    token = torch.randn(B, 1, HIDDEN, device=device, dtype=dtype)
    h, c = (torch.zeros(1, B, HIDDEN, device=device, dtype=dtype) for _ in range(2))

    @torch.no_grad()
    def step():
        _, (h_new, c_new) = lstm(token, (h, c))
        h.copy_(h_new)
        c.copy_(c_new)
    return step


def _profile(step, label: str, out: str) -> None:
    """Host time by function (cProfile) and device time by kernel (torch.profiler)
    of 200 eager steps, appended to OUT/streaming-profile.txt."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        step()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=15)
    with open(os.path.join(out, "streaming-profile.txt"), "a") as f:
        f.write(f"==== {label}: host, 200 steps\n{text.getvalue()}\n==== {label}: device, 20 steps\n{table}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--profile", action="store_true",
                        help="also write where an eager step of ours spends host and device time")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rows = []
    for B in (1, 16):
        cases = {"cudnn nn.LSTM (dense, with projection)": cudnn(B, device, dtype)}
        for DH, NH in ((768, 1), (64, 12)):
            for project in (False, True):
                name = f"fusedrnn {DH}x{NH}" + (" + projection matmul" if project else "")
                cases[name] = ours(B, NH, DH, args.backend, project, device, dtype)
        for name, step in cases.items():
            row = {"B": B, "provider": name}
            for mode, run in (("eager", step), ("graph", _graphed(step, device))):
                row[f"{mode}_us"] = run and _back_to_back_us(run, args.repeats, device)
                row[f"{mode}_synchronised_us"] = run and _synchronised_us(run, args.repeats, device)
            rows.append(row)
            print(row, flush=True)
            if args.profile and name.startswith("fusedrnn") and not name.endswith("matmul"):
                _profile(step, f"{name} B={B}", args.out)
    meta = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
            "dtype": str(dtype), "backend": args.backend}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "streaming-latency.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"\n{meta}\n\nµs a step: back to back (100 dependent steps issued without waiting) "
          "and synchronised (the host waits for each step)\n")
    print("| B | provider | eager | CUDA graph | eager, synchronised | CUDA graph, synchronised |")
    print("|---|---|---|---|---|---|")
    cell = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
    for r in rows:
        print(f"| {r['B']} | {r['provider']} | {cell(r['eager_us'])} | {cell(r['graph_us'])} "
              f"| {cell(r['eager_synchronised_us'])} | {cell(r['graph_synchronised_us'])} |")


if __name__ == "__main__":
    main()
