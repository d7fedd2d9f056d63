"""What `backend="auto"` picks for each benchmarked call, beside the fastest of
our backends as measured in the same run (the table in docs/perf-notes.md)."""
from __future__ import annotations

import torch

from ..ops import registry
from ..cells import get_cell
from ..problem import Problem


def auto_choice(row: dict) -> str:
    """The backend auto runs for the call a bench row measured."""
    problem = Problem(get_cell(row["cell"]), row["B"], row["T"], row["NH"], row["DH"], getattr(torch, row["dtype"]),
                      torch.device("cuda" if torch.cuda.is_available() else "cpu"), False,
                      row["passes"] == "fwd+bwd")
    try:
        return registry.choose("auto", problem).name
    except ValueError as error:
        return f"none ({error})"


def auto_table(rows: list[dict]) -> str:
    """One line per call: auto's pick, its measured time, the fastest of ours and
    the ratio (1.00: auto picked the fastest)."""
    ours, calls = set(registry.names()), {}  # names asked here: every backend registers on import
    for r in rows:
        key = (r["cell"], r["dtype"], r["B"], r["T"], r["DH"], r["NH"], r["passes"])
        if r["provider"] in ours and r["median_ms"] is not None:
            calls.setdefault(key, {})[r["provider"]] = r["median_ms"]
    lines = ["| cell | dtype | B | T | DH×NH | pass | auto picks | its ms | fastest of ours | ms | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (cell, dtype, B, T, DH, NH, passes), times in calls.items():
        pick = auto_choice(dict(cell=cell, dtype=dtype, B=B, T=T, DH=DH, NH=NH, passes=passes))
        best = min(times, key=times.get)
        mine = times.get(pick)
        ratio = "" if mine is None else f"{mine / times[best]:.2f}"
        lines.append(f"| {cell} | {dtype} | {B} | {T} | {DH}×{NH} | {passes} | {pick} "
                     f"| {'' if mine is None else format(mine, '.3f')} | {best} | {times[best]:.3f} | {ratio} |")
    return "\n".join(lines)
