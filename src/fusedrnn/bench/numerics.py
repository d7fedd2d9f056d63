"""Error over time: how far each low-precision backend drifts from the float64
reference at every step of a long sequence (`fusedrnn numerics`).

A recurrence feeds its rounding errors back into itself, so the error of step
t could in principle grow with t. For each backend and dtype this runs one
long sequence and records, per step, the largest and the mean absolute
difference of h from the float64 torch loop on the same inputs. The torch loop
run in the same low dtype is the yardstick (docs/design.md, the testing rule): a fast path
should stay within a small factor of it at every step, not only on average.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
from datetime import date

import torch

import fusedrnn

from ..ops import registry
from ..cells import get_cell
from ..arguments import UsageError, ensure_writable_dir, head_split, positive_int

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def inputs(cell: str, B: int, T: int, NH: int, DH: int, device, seed: int = 0):
    """float64 x, R, b with the scales of a trained layer: unit-variance
    pre-activations, R of spectral norm about 1 (so the recurrence neither
    explodes nor forgets at once)."""
    spec = get_cell(cell)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    kw = dict(generator=gen, dtype=torch.float64)
    x = torch.randn(B, T, spec.gates_x, NH, DH, **kw)
    R = torch.randn(spec.gates_r, NH, DH, DH, **kw) / (2 * math.sqrt(DH))
    b = torch.randn(spec.gates_b, NH, DH, **kw) * 0.1
    return x.to(device), R.to(device), b.to(device)


def error_per_step(y: torch.Tensor, reference: torch.Tensor) -> tuple[list[float], list[float]]:
    """Largest and mean |y - reference| at every step of [B, T, NH, DH]."""
    diff = (y.double() - reference).abs().transpose(0, 1).flatten(1)  # [T, B*NH*DH]
    return diff.amax(1).tolist(), diff.mean(1).tolist()


def measure(cell: str, backends: list[str], dtypes: list[str], B: int, T: int, NH: int, DH: int, device) -> dict:
    """Per (backend, dtype): the per-step error curves, or why it could not run."""
    x, R, b = inputs(cell, B, T, NH, DH, device)
    with torch.no_grad():
        reference, _ = fusedrnn.rnn(x, R, b, cell=cell, backend="torch")
        curves = {}
        for dtype in dtypes:
            low = [t.to(DTYPES[dtype]) for t in (x, R, b)]
            for backend in backends:
                try:
                    y, _ = fusedrnn.rnn(*low, cell=cell, backend=backend)
                except ValueError as why:  # the backend cannot run this call here
                    curves[f"{backend}/{dtype}"] = {"note": str(why)}
                    continue
                except RuntimeError as error:  # out of memory, a kernel that failed: a note, not a crash
                    first_line = (str(error).splitlines() or [""])[0]
                    curves[f"{backend}/{dtype}"] = {"note": f"failed: {type(error).__name__}: {first_line[:200]}"}
                    continue
                largest, mean = error_per_step(y, reference)
                curves[f"{backend}/{dtype}"] = {"max": largest, "mean": mean}
                del y
    return {"cell": cell, "B": B, "T": T, "NH": NH, "DH": DH, "curves": curves}


def summary(result: dict, window: int) -> list[dict]:
    """Per curve: the largest error over the first and the last `window` steps,
    and the mean error over each; bounded error means last ≈ first."""
    rows = []
    for name, curve in result["curves"].items():
        if "note" in curve:
            rows.append({"curve": name, "note": curve["note"]})
            continue
        head, tail = slice(0, window), slice(-window, None)
        rows.append({"curve": name, "max_first": max(curve["max"][head]), "max_last": max(curve["max"][tail]),
                     "mean_first": sum(curve["mean"][head]) / window, "mean_last": sum(curve["mean"][tail]) / window})
    return rows


def table(results: list[dict], window: int) -> str:
    lines = [f"| DH×NH | backend/dtype | max err, first {window} steps | max err, last {window} | "
             f"mean err, first {window} | mean err, last {window} |", "|---|---|---|---|---|---|"]
    for result in results:
        shape = f"{result['DH']}×{result['NH']}"
        for r in summary(result, window):
            if "note" in r:
                lines.append(f"| {shape} | {r['curve']} | — | — | — | — |")
            else:
                lines.append(f"| {shape} | {r['curve']} | {r['max_first']:.2e} | {r['max_last']:.2e} "
                             f"| {r['mean_first']:.2e} | {r['mean_last']:.2e} |")
    return "\n".join(lines)


def _binned(values: list[float], points: int, reduce) -> tuple[list[int], list[float]]:
    """`values` reduced over consecutive bins so a long curve stays readable:
    the last step of each bin and the bin's reduction."""
    size = max(1, len(values) // points)
    bins = [values[start:start + size] for start in range(0, len(values), size)]
    return [min(start + size, len(values)) for start in range(0, len(values), size)], [reduce(b) for b in bins]


def plot(results: list[dict], meta: dict, out_png: str, points: int = 256) -> str:
    """One panel per shape: max (solid) and mean (dotted) error against the step,
    log scale, binned to about `points` points (the max of each bin, the mean of each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.2), squeeze=False)
    for ax, result in zip(axes[0], results):
        for index, (name, curve) in enumerate(c for c in result["curves"].items() if "note" not in c[1]):
            color = f"C{index}"
            ax.plot(*_binned(curve["max"], points, max), color=color, linewidth=0.8, label=f"{name} max")
            ax.plot(*_binned(curve["mean"], points, lambda b: sum(b) / len(b)), color=color, linewidth=0.8,
                    linestyle=":", label=f"{name} mean")
        ax.set_yscale("log")
        ax.set_xlabel("time step")
        ax.set_ylabel("|h − h_float64|")
        ax.set_title(f"{result['cell']} {result['DH']}×{result['NH']}, B={result['B']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    figure.suptitle(f"error against the float64 reference, {meta['device']}, {meta['date']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(out_png, dpi=120)
    plt.close(figure)
    return out_png


def check_backends(backends: list[str]) -> list[str]:
    """The requested backends, each once. Unknown names are argparse's error
    (choices=). A known backend that cannot run on this machine is skipped with
    a warning on stderr, its rows a note, while another requested one can run;
    if none can, a UsageError naming each and why."""
    backends = list(dict.fromkeys(backends))
    report = fusedrnn.backends()
    missing = {name: report[name].reason for name in backends if not report[name].available}
    if len(missing) == len(backends):
        why = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
        raise UsageError(f"--backends: none of the requested backends runs here ({why})")
    for name, reason in missing.items():
        print(f"fusedrnn numerics: warning: --backends: skipping {name}, not available here: {reason}",
              file=sys.stderr)
    return backends


def notes(results: list[dict]) -> str:
    """Why each curve without numbers has none, one line each (below the table)."""
    seen = dict.fromkeys(f"- {name}: {curve['note']}" for result in results
                         for name, curve in result["curves"].items() if "note" in curve)
    return "\n".join(seen)


def run(args) -> list[dict]:
    backends = check_backends(args.backends)
    ensure_writable_dir(args.out)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    splits = list(dict.fromkeys(args.splits))
    results = [measure(args.cell, backends, args.dtypes, args.batch, args.length, NH, DH, device)
               for DH, NH in splits]
    if all("note" in curve for result in results for curve in result["curves"].values()):
        why = "; ".join(sorted({curve["note"] for r in results for curve in r["curves"].values()}))
        raise UsageError(f"--backends: none of the requested backends could run these calls ({why})")
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    meta = {"device": name, "torch": torch.__version__, "date": date.today().isoformat()}
    stem = os.path.join(args.out, "numerics")
    window = min(args.window, args.length)
    text = f"{meta}\n\n{table(results, window)}\n"
    if notes(results):
        text += f"\nnot measured:\n{notes(results)}\n"
    try:
        with open(stem + ".json", "w") as f:
            json.dump({"meta": meta, "results": results}, f)
        with open(stem + ".md", "w") as f:
            f.write(text)
    except OSError as error:
        raise UsageError(f"--out: cannot write to {args.out!r}: {error.strerror or error}") from None
    print(text)
    try:
        print("plot:", plot(results, meta, stem + ".png"))
    except ImportError as error:  # matplotlib is in the `bench` extra
        print(f"no plot: {error}; pip install 'fusedrnn[bench]'")
    return results


def add_arguments(parser) -> None:
    gpu = torch.cuda.is_available()
    parser.add_argument("--cell", default="lstm", choices=list(fusedrnn.CELLS))
    parser.add_argument("--backends", nargs="+", choices=registry.names(),
                        default=["cuda_fused", "triton", "cuda_alternating", "torch"] if gpu else ["torch"],
                        help="default: every GPU backend and the torch loop (the torch loop alone without a "
                             "GPU); one that cannot run here is skipped with a warning while another can run")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--splits", nargs="+", type=head_split, metavar="DHxNH",
                        default=[(64, 12), (768, 1)] if gpu else [(16, 2)], help="DHxNH pairs, e.g. 64x12 768x1")
    parser.add_argument("--batch", type=positive_int, default=8 if gpu else 2)
    parser.add_argument("--length", type=positive_int, default=8192 if gpu else 256)
    parser.add_argument("--window", type=positive_int, default=1024,
                        help="steps summarised at the start and at the end")
    parser.add_argument("--out", default="results", help="directory of the result files (default: results)")
