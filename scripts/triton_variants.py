"""Time the variants of the Triton kernels side by side on the GPU, in one process.

For each shape (DHxNH, LSTM, bf16, B=16, T=1024) and each variant of
fusedrnn.backends.triton.variants: first its correctness against the float64
reference next to the torch backend (tests/kernel_check.py at B=5, T=37 with
the same head dim and count, so the very kernels that are timed; outputs
poisoned with NaN), then the forward and forward+backward medians exactly as
`fusedrnn bench` takes them. A variant whose kernels are the same as an
earlier one's at that shape (say 8 warps where 8 is the default) is skipped.
A failing variant is reported and not timed. Prints a table last; writes
triton-variants.json to --out (default $OUT, else /tmp).

  python scripts/triton_variants.py [--variants a,b,...] [--shapes 128x6,64x12] [--out DIR] [--profile]
"""
import argparse
import json
import os
import sys
import time

import torch
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from fusedrnn.backends import outputs  # noqa: E402
from fusedrnn.backends.triton import launch  # noqa: E402
from fusedrnn.backends.triton.variants import VARIANTS, variant  # noqa: E402
from fusedrnn.bench.harness import measure  # noqa: E402
from fusedrnn.bench.providers import PROVIDERS, Case  # noqa: E402
from kernel_check import check_backend  # noqa: E402

B, T = 16, 1024
# the Triton backend's targets and the last recorded run (docs/perf-notes.md, H100, run 9), ms: fwd, fwd+bwd
TARGET = {"128x6": (2.0, 6.0), "64x12": (1.5, 4.5)}
RECORDED = {"128x6": (1.854, 6.938), "64x12": (0.920, 3.861)}


def kernels(NH: int, DH: int) -> str:
    """What tells two variants' kernels apart at this shape."""
    x = torch.empty(B, T, 4, NH, DH, device="cuda", dtype=torch.bfloat16)
    return repr([sorted(launch.kernel_options(x, "lstm", backward).items(), key=lambda kv: kv[0])
                 for backward in (False, True)])


def check(NH: int, DH: int) -> str:
    try:
        with outputs.poisoned():
            errors = check_backend("triton", "lstm", torch.bfloat16, B=5, T=37, NH=NH, DH=DH, device="cuda",
                                   with_lengths=False)
        return "ok (dx err %.2g vs torch %.2g)" % errors["dx"]
    except AssertionError as failure:
        return "FAIL: " + str(failure).splitlines()[0][:120]


def time_variant(NH: int, DH: int) -> dict:
    out = {}
    for backward in (False, True):
        m = measure("triton", Case("lstm", torch.bfloat16, B, T, NH, DH, backward))
        key = "fwd_bwd" if backward else "fwd"
        out[key], out[key + "_note"] = m.median_ms, m.note
        if backward:
            out["peak_mib"], out["first_call_s"] = m.peak_mib, m.first_call_s
    return out


def profile(NH: int, DH: int) -> str:
    """Where the time of one forward+backward goes, kernel by kernel."""
    step = PROVIDERS["triton"](Case("lstm", torch.bfloat16, B, T, NH, DH, True))
    step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
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
            with variant(name):
                key = kernels(NH, DH)
                if key in seen:
                    row["check"] = f"same kernels as {seen[key]}"
                else:
                    seen[key] = name
                    row["check"] = check(NH, DH)
                    if row["check"].startswith("ok"):
                        row.update(time_variant(NH, DH))
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(args.out, rows, profiles, started)  # after every row: a run cut short keeps what it measured
        timed = [r for r in rows if r["shape"] == shape and isinstance(r.get("fwd_bwd"), float)]
        if args.profile and timed:
            best = min(timed, key=lambda r: r["fwd_bwd"])
            with variant(best["variant"]):
                profiles[f"{shape} {best['variant']}"] = profile(NH, DH)
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
