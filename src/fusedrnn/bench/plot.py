"""Plots of a `fusedrnn bench` result: one PNG per sweep, milliseconds per
provider (log scale), forward and forward+backward side by side."""
from __future__ import annotations

import json

SWEEP_AXIS = {"head": ("DH×NH", lambda r: f"{r['DH']}×{r['NH']}"), "batch": ("batch B", lambda r: r["B"]),
              "length": ("sequence length T", lambda r: r["T"])}


def plot(result_json: str, out_png: str) -> str:
    """Write the plot of the bench result at `result_json` to `out_png`; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(result_json) as f:
        result = json.load(f)
    meta, rows = result["meta"], [r for r in result["rows"] if r["median_ms"] is not None]
    label, key = SWEEP_AXIS[meta["sweep"]]
    passes = [p for p in ("fwd", "fwd+bwd") if any(r["passes"] == p for r in rows)]
    figure, axes = plt.subplots(1, len(passes), figsize=(6 * len(passes), 4.2), squeeze=False)
    ticks = list(dict.fromkeys(key(r) for r in result["rows"]))  # every shape, in sweep order
    for ax, passes_name in zip(axes[0], passes):
        for provider in dict.fromkeys(r["provider"] for r in rows):
            points = [(ticks.index(key(r)), r["median_ms"]) for r in rows
                      if r["provider"] == provider and r["passes"] == passes_name]
            if points:
                xs, ys = zip(*sorted(points))
                ax.plot(xs, ys, marker="o", label=provider)
        ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("milliseconds (median, log scale)")
        ax.set_title(passes_name)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    cells = ",".join(sorted({r["cell"] for r in rows}))
    dtypes = ",".join(sorted({r["dtype"] for r in rows}))
    figure.suptitle(f"{cells} {dtypes}, {meta['device']}, {meta['date']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(out_png, dpi=120)
    plt.close(figure)
    return out_png
