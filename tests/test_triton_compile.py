"""Every shipped Triton configuration compiles for an H100 (sm_90) within its
budget: shared memory under the 227 KiB a block may take; no register spills
in the forward of the 1-2 state cells; a bounded stack in the backward, whose
one-warpgroup launch spills a little yet measured faster than two warpgroups
without spills (docs/perf-notes.md). Runs on CPU."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

H100_SHARED_PER_BLOCK = 232448
CELLS = ["lstm", "gru", "elman", "elman_relu", "slstm"]
SPECS = [f"{cell},bfloat16,{DH},{B},{d}" for cell in CELLS for DH in (16, 32, 64, 128) for B in (16, 256)
         for d in ("fwd", "bwd")] + ["lstm,float32,64,16,bwd", "gru,float16,48,16,fwd"]


@pytest.fixture(scope="module")
def reports():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-m", "fusedrnn.backends.triton.compile_check", *SPECS],
                         env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return {r["spec"]: r for r in map(json.loads, out.stdout.splitlines())}


@pytest.mark.parametrize("spec", SPECS)
def test_fits_an_h100(reports, spec):
    report = reports[spec]
    cell, _, DH, _, direction = spec.split(",")
    assert report["shared"] <= H100_SHARED_PER_BLOCK, report
    if direction == "fwd" and cell != "slstm":
        assert report["spill_stores"] == 0, report
    assert report["stack"] < 2048, report
