"""`fusedrnn numerics` on the CPU: error curves against the float64 reference,
written as JSON, markdown and a plot; a backend that cannot run is a note."""
import argparse
import json

import pytest

from fusedrnn.bench.numerics import add_arguments, error_per_step, run


def test_error_per_step_is_per_step():
    import torch

    reference = torch.zeros(2, 3, 1, 2, dtype=torch.float64)
    y = reference.clone()
    y[1, 2, 0, 1] = -0.5
    y[0, 0, 0, 0] = 0.25
    largest, mean = error_per_step(y, reference)
    assert largest == [0.25, 0.0, 0.5] and mean == [0.25 / 4, 0.0, 0.5 / 4]


def test_cpu_run_writes_curves(tmp_path):
    pytest.importorskip("matplotlib")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--backends", "torch", "cuda_fused", "--splits", "16x2",
                              "--length", "40", "--window", "8", "--dtypes", "bfloat16"])
    (result,) = run(args)
    curve = result["curves"]["torch/bfloat16"]
    assert len(curve["max"]) == 40 and all(0 < m < 0.1 for m in curve["max"])
    assert all(mean <= m for mean, m in zip(curve["mean"], curve["max"]))
    assert "note" in result["curves"]["cuda_fused/bfloat16"]
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"numerics.{suffix}").stat().st_size > 0
    assert json.loads((tmp_path / "numerics.json").read_text())["results"][0]["T"] == 40
