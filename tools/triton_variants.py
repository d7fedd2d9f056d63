"""Time the variants of the Triton kernels side by side on the GPU, in one process.

For each shape (DHxNH, LSTM, bf16, B=16, T=1024) and each variant of
fusedrnn.backends.triton.variants, its plans passed explicitly
(backends/triton/explicit.py): first its correctness against the float64
reference next to the torch backend (tests/kernel_check.py at B=5, T=37 with
the same head dim and count, so the very kernels that are timed; outputs
poisoned with NaN), then the forward and forward+backward medians as
`fusedrnn bench` takes them (the same inputs and do_bench; run_with_plans skips
the custom ops' dispatch, a few microseconds a call). A variant whose plans are
the same as an earlier one's at that shape (say 8 warps where 8 is the default)
is skipped.
A failing variant is reported and not timed. Prints a table last; writes
triton-variants.json to --out (default $OUT, else /tmp).

  python tools/triton_variants.py [--variants a,b,...] [--shapes 128x6,64x12] [--out DIR] [--profile]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from fusedrnn.ops import outputs  # noqa: E402
from fusedrnn.backends.triton.explicit import run_with_plans, variant_plans, with_variant  # noqa: E402
from fusedrnn.backends.triton.variants import VARIANTS  # noqa: E402
from kernel_check import check_backend  # noqa: E402

B, T = 16, 1024
# the Triton backend's targets and the last recorded run (docs/perf-notes.md, H100, run 9), ms: fwd, fwd+bwd
TARGET = {"128x6": (2.0, 6.0), "64x12": (1.5, 4.5)}
RECORDED = {"128x6": (1.854, 6.938), "64x12": (0.920, 3.861)}


def plans(NH: int, DH: int, name: str):
    """The forward and backward plans of variant `name` at this shape: equal plans run the same kernels."""
    x = torch.empty(B, T, 4, NH, DH, device="meta", dtype=torch.bfloat16)  # the planner reads shapes only
    return variant_plans(x, "lstm", None, name)


def check(NH: int, DH: int, name: str) -> str:
    try:
        with outputs.poisoned():
            errors = check_backend(with_variant(name), "lstm", torch.bfloat16, B=5, T=37, NH=NH, DH=DH,
                                   device="cuda", with_lengths=False)
        return "ok (dx err %.2g vs torch %.2g)" % errors["dx"]
    except AssertionError as failure:
        return "FAIL: " + str(failure).splitlines()[0][:120]


def step(NH: int, DH: int, planned, backward: bool):
    """One forward (under no_grad) or forward+backward with `planned`, on the inputs `fusedrnn bench` draws."""
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, 4, NH, DH, **kw)
    R = torch.randn(4, NH, DH, DH, **kw) / math.sqrt(DH)
    b = torch.randn(4, NH, DH, **kw) * 0.1
    states = torch.zeros(2, B, NH, DH, **kw)
    if not backward:
        def fwd():
            with torch.no_grad():
                return run_with_plans(x, R, b, states, None, "lstm", *planned)
        return fwd
    leaves = [t.requires_grad_() for t in (x, R, b)]
    dy = torch.randn(B, T, NH, DH, **kw)

    def fwd_bwd():
        y, _ = run_with_plans(*leaves, states, None, "lstm", *planned)
        return torch.autograd.grad(y, leaves, dy)
    return fwd_bwd


def time_variant(NH: int, DH: int, planned) -> dict:
    """Medians, first call and peak memory as fusedrnn.bench.harness.measure takes them."""
    out = {}
    for backward in (False, True):
        key = "fwd_bwd" if backward else "fwd"
        try:
            fn = step(NH, DH, planned, backward)
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            first_call_s = time.perf_counter() - start
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
            out[key] = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
            if backward:
                out["peak_mib"], out["first_call_s"] = peak_mib, first_call_s
        except Exception as error:  # noqa: BLE001 (a variant that fails is a row's note, never the sweep's end)
            out[key + "_note"] = f"failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
        finally:
            torch.cuda.empty_cache()
    return out


def profile(NH: int, DH: int, planned) -> str:
    """Where the time of one forward+backward goes, kernel by kernel."""
    step_once = step(NH, DH, planned, True)
    step_once()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step_once()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=10, max_name_column_width=50)


def write(out: str, rows: list, profiles: dict, started: float):
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                date=time.strftime("%Y-%m-%d %H:%M"), B=B, T=T, cell="lstm", dtype="bfloat16",
                seconds=round(time.perf_counter() - started, 1), recorded=RECORDED, target=TARGET)
    path = os.path.join(out, "triton-variants.json")
    with open(path, "w") as f:
        json.dump(dict(meta=meta, rows=rows, profiles=profiles), f, indent=1)
    return meta, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--shapes", default="128x6,64x12", help="DHxNH,...")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    parser.add_argument("--profile", action="store_true", help="per-kernel breakdown of the fastest fwd+bwd per shape")
    args = parser.parse_args()
    names = args.variants.split(",")
    started = time.perf_counter()
    rows, profiles = [], {}
    for shape in args.shapes.split(","):
        DH, NH = (int(v) for v in shape.split("x"))
        seen = {}
        for name in names:
            row = dict(variant=name, shape=shape)
            planned = plans(NH, DH, name)
            if planned in seen:
                row["check"] = f"same kernels as {seen[planned]}"
            else:
                seen[planned] = name
                row["check"] = check(NH, DH, name)
                if row["check"].startswith("ok"):
                    row.update(time_variant(NH, DH, planned))
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(args.out, rows, profiles, started)  # after every row: a run cut short keeps what it measured
        timed = [r for r in rows if r["shape"] == shape and isinstance(r.get("fwd_bwd"), float)]
        if args.profile and timed:
            best = min(timed, key=lambda r: r["fwd_bwd"])
            profiles[f"{shape} {best['variant']}"] = profile(NH, DH, plans(NH, DH, best["variant"]))
    meta, path = write(args.out, rows, profiles, started)
    for title, table in profiles.items():
        print(f"\n{title}\n{table}")
    print(f"\n{meta['device']}, {meta['seconds']} s; written {path}")
    for shape in args.shapes.split(","):
        if shape in TARGET:
            print(f"{shape}: target fwd <= {TARGET[shape][0]} / fwd+bwd <= {TARGET[shape][1]} ms; "
                  f"recorded run 9 {RECORDED[shape][0]} / {RECORDED[shape][1]} ms")
    print("| shape | variant | check | fwd ms | fwd+bwd ms | vs shipped | peak MiB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        base = next((s for s in rows if s["shape"] == r["shape"] and s["variant"] == "shipped"), {})
        timed = isinstance(r.get("fwd_bwd"), float) and isinstance(base.get("fwd_bwd"), float)
        delta = f"{r['fwd_bwd'] - base['fwd_bwd']:+.3f}" if timed else ""
        times = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else "" for k in ("fwd", "fwd_bwd", "peak_mib")]
        print(f"| {r['shape']} | {r['variant']} | {r['check']} | {times[0]} | {times[1]} | {delta} | {times[2]} |")


if __name__ == "__main__":
    main()
