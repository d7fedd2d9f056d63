"""The `fusedrnn bench` command: sweeps, progress bar, and result files."""
from __future__ import annotations

import csv
import json
import os
import platform
from datetime import date

import torch
from tqdm import tqdm

import fusedrnn

from ..arguments import UsageError, ensure_writable_dir, head_split, positive_int
from .auto_choice import auto_table
from .harness import as_dict, measure
from .planned import PREFIX, plan_spec
from .providers import PROVIDERS, Case, unavailable_reason

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
HEAD_SPLITS = [(16, 48), (32, 24), (64, 12), (128, 6), (256, 3), (768, 1)]  # DH x NH, hidden 768


# without a GPU: a small sweep in fp32 against torch.nn on the CPU
CPU_DEFAULTS = dict(providers=["torch", "torch_nn"], dtypes=["float32"], splits=[(16, 8), (32, 4), (64, 2)],
                    batch=4, length=64)
GPU_DEFAULTS = dict(providers=list(PROVIDERS), dtypes=["bfloat16"], splits=HEAD_SPLITS, batch=16, length=1024)


def resolve_defaults(args) -> None:
    """Options the user left out take the defaults of the machine: the GPU sweep of
    docs/design.md's benchmark protocol with a GPU, a small CPU one without."""
    defaults = GPU_DEFAULTS if torch.cuda.is_available() else CPU_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def cases(args) -> list[Case]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = []
    for cell in args.cells:
        for dtype in args.dtypes:
            for backward in [p == "fwd+bwd" for p in args.passes]:
                if args.sweep == "head":
                    shapes = [(args.batch, args.length, nh, dh) for dh, nh in args.splits]
                elif args.sweep == "batch":  # at the first head split
                    DH, NH = args.splits[0] if args.splits != HEAD_SPLITS else (64, 12)
                    shapes = [(b, args.length, NH, DH) for b in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
                else:
                    DH, NH = args.splits[0] if args.splits != HEAD_SPLITS else (64, 12)
                    shapes = [(args.batch, t, NH, DH) for t in (256, 512, 1024, 2048, 4096, 8192)]
                for B, T, NH, DH in shapes:
                    out.append(Case(cell, DTYPES[dtype], B, T, NH, DH, backward, device))
    return out


def table(rows) -> str:
    lines = ["| provider | cell | dtype | B | T | DH×NH | pass | median ms | peak MiB | first call s | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {r['provider']} | {r['cell']} | {r['dtype']} | {r['B']} | {r['T']} | {r['DH']}×{r['NH']} "
                     f"| {r['passes']} | {fmt(r['median_ms'], '.3f')} | {fmt(r['peak_mib'], '.0f')} "
                     f"| {fmt(r['first_call_s'], '.2f')} | {r['note']} |")
    return "\n".join(lines)


def _distinct(values: list) -> list:
    return list(dict.fromkeys(values))


def check(args) -> None:
    """What parsing cannot see: a sweep with some provider that can run here,
    and an --out that can be written (checked before the sweep, whose results
    would be lost). A UsageError if not."""
    for name in ("providers", "cells", "dtypes", "passes", "splits", "plan"):
        setattr(args, name, _distinct(getattr(args, name)))
    args.providers = _distinct(args.providers + [PREFIX + spec for spec in args.plan])
    reasons = {p: unavailable_reason(p) for p in args.providers}
    if all(reasons.values()):
        why = "; ".join(f"{p}: {reason}" for p, reason in reasons.items())
        raise UsageError(f"--providers: nothing to time here ({why})")
    ensure_writable_dir(args.out)


def _write(path: str, write) -> None:
    try:
        with open(path, "w", newline="") as f:
            write(f)
    except OSError as error:
        raise UsageError(f"--out: cannot write {path!r}: {error.strerror or error}") from None


def run(args) -> list[dict]:
    resolve_defaults(args)
    check(args)
    rows = []
    todo = [(p, c) for c in cases(args) for p in args.providers]
    for provider, case in tqdm(todo, desc="bench", dynamic_ncols=True):
        rows.append(as_dict(measure(provider, case)))
    if all(r["median_ms"] is None for r in rows):
        notes = "; ".join(_distinct(f"{r['provider']} {r['cell']}: {r['note']}" for r in rows))
        raise UsageError(f"nothing could be timed ({notes})")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    meta = {"device": device, "torch": torch.__version__, "date": date.today().isoformat(), "sweep": args.sweep}
    stem = os.path.join(args.out, f"bench-{args.sweep}")
    _write(stem + ".json", lambda f: json.dump({"meta": meta, "rows": rows}, f, indent=1))

    def write_csv(f):
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _write(stem + ".csv", write_csv)
    text = (f"{meta}\n\n{table(rows)}\n\nbackend='auto' against the fastest of ours, measured above:\n\n"
            f"{auto_table(rows)}\n")
    _write(stem + ".md", lambda f: f.write(text))
    print(text)
    try:
        from .plot import plot

        print("plot:", plot(stem + ".json", stem + ".png"))
    except ImportError as error:  # matplotlib is in the `bench` extra
        print(f"no plot: {error}; pip install 'fusedrnn[bench]'")
    return rows


def add_arguments(parser) -> None:
    parser.add_argument("--providers", nargs="+", choices=list(PROVIDERS),
                        help="default: all with a GPU; torch and torch_nn without")
    parser.add_argument("--cells", nargs="+", default=["lstm"], choices=list(fusedrnn.CELLS))
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), help="default: bfloat16 (GPU), float32 (CPU)")
    parser.add_argument("--passes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    parser.add_argument("--sweep", default="head", choices=["head", "batch", "length"])
    parser.add_argument("--splits", nargs="+", type=head_split, metavar="DHxNH",
                        help="DHxNH pairs for the head sweep, e.g. 64x12 128x6 (the first also sets the "
                             "shape of the batch and length sweeps); default: hidden 768 split 6 ways")
    parser.add_argument("--batch", type=positive_int, help="default: 16 (GPU), 4 (CPU)")
    parser.add_argument("--length", type=positive_int, help="default: 1024 (GPU), 64 (CPU)")
    parser.add_argument("--out", default="results", help="directory of the result files (default: results)")
    parser.add_argument("--plan", nargs="+", default=[], type=plan_spec, metavar="FWD/BWD",
                        help="also time cuda_fused with its planner narrowed to these kernel families, "
                             "e.g. one_sm/cluster cluster/grid (each of one_sm, grid, cluster, auto)")
