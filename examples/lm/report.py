"""Results out: one JSON file, and markdown tables on stdout."""
from __future__ import annotations

import json
import os
import platform

import torch

import fusedrnn


def environment(device: torch.device) -> dict:
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "fusedrnn": fusedrnn.__version__,
        "python": platform.python_version(),
    }


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


def write_run(args, device: torch.device, **results) -> None:
    """A run's results to args.out beside its options (all but --out) and the environment."""
    config = {k: v for k, v in vars(args).items() if k != "out"}
    write_json(args.out, {"config": config, "environment": environment(device), **results})


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_tail(values: list[float], count: int = 10) -> float:
    """The mean of the last `count` values: a less noisy 'final loss'."""
    tail = values[-count:]
    return sum(tail) / len(tail)
