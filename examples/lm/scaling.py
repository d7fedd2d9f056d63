"""Scaling efficiency from train_distributed.py's JSON files in a folder:
tokens/s on n GPUs / (n x tokens/s on 1 GPU), per strategy and model.

  python examples/lm/scaling.py OUT_DIR     # prints a table, writes OUT_DIR/scaling.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os

from report import markdown_table, write_json


def load_runs(folder: str) -> list[dict]:
    """The `result` of every train_distributed.py JSON in `folder` (other JSON files are skipped)."""
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            payload = json.load(f)
        if isinstance(payload, dict) and "result" in payload:
            runs.append({**payload["result"], "global_batch": payload["config"]["batch"], "file": path})
    return runs


def with_efficiency(runs: list[dict]) -> list[dict]:
    """Each run with `efficiency` against the 1-process run of its strategy and model (None without one)."""
    single = {(r["strategy"], r["model"]): r["tokens_per_second"] for r in runs if r["world_size"] == 1}
    rows = []
    for run in sorted(runs, key=lambda r: (r["strategy"], r["model"], r["world_size"])):
        base = single.get((run["strategy"], run["model"]))
        efficiency = None if base is None else run["tokens_per_second"] / (run["world_size"] * base)
        rows.append({**run, "efficiency": efficiency})
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where train_distributed.py wrote its --out files")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.folder):
        parser.error(f"{args.folder} is not a folder")
    rows = with_efficiency(load_runs(args.folder))
    if not rows:
        parser.error(f"no train_distributed.py results (JSON with a 'result') in {args.folder}")
    print(markdown_table(
        ["strategy", "model", "GPUs", "global batch", "tokens/s", "scaling efficiency"],
        [[r["strategy"], r["model"], r["world_size"], r["global_batch"], f"{r['tokens_per_second']:,.0f}",
          "-" if r["efficiency"] is None else f"{r['efficiency']:.1%}"] for r in rows]))
    write_json(os.path.join(args.folder, "scaling.json"),
               {"runs": [{k: v for k, v in r.items() if k != "losses_rank0"} for r in rows]})
    return rows


if __name__ == "__main__":
    main()
