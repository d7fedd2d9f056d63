"""`fusedrnn bench` on the CPU: a tiny sweep writes its table, JSON, CSV and plot,
and a peer that cannot run here is reported with the reason, not dropped."""
import argparse
import json

import pytest

from fusedrnn.bench.run import add_arguments, run


def _args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--out", str(tmp_path), "--splits", "16x2", "32x1", "--batch", "2", "--length", "8",
                              *extra])


@pytest.mark.parametrize("sweep", ["head", "batch"])
def test_cpu_sweep_writes_every_file(tmp_path, sweep):
    pytest.importorskip("matplotlib")
    rows = run(_args(tmp_path, "--providers", "torch", "torch_nn", "cudnn_fp16", "--dtypes", "float32",
                     "--sweep", sweep, "--passes", "fwd"))
    for suffix in ("json", "csv", "md", "png"):
        assert (tmp_path / f"bench-{sweep}.{suffix}").stat().st_size > 0
    timed = [r for r in rows if r["provider"] in ("torch", "torch_nn")]
    assert timed and all(r["median_ms"] > 0 for r in timed)
    cudnn = [r for r in rows if r["provider"] == "cudnn_fp16"]
    assert cudnn and all(r["median_ms"] is None and "unavailable" in r["note"] for r in cudnn)
    saved = json.loads((tmp_path / f"bench-{sweep}.json").read_text())
    assert saved["meta"]["sweep"] == sweep and len(saved["rows"]) == len(rows)


def test_cpu_defaults_are_small(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU defaults")
    args = _args(tmp_path)
    args.splits = args.batch = args.length = None
    from fusedrnn.bench.run import CPU_DEFAULTS, resolve_defaults

    resolve_defaults(args)
    assert args.providers == CPU_DEFAULTS["providers"] and args.length == CPU_DEFAULTS["length"]
