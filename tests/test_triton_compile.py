"""Every shipped Triton configuration compiles for an H100 (sm_90) within its
budget: shared memory under the 227 KiB a block may take; no register spills
in the forward of the 1-2 state cells; a bounded stack in the backward, whose
one-warpgroup launch spills a little yet measured faster than two warpgroups
without spills (docs/perf-notes.md). The same for every variant of
fusedrnn.backends.triton.variants at the benchmark's head dims, and for the
kernels of calls with resets. Runs on CPU.

The reports (registers, spills, shared memory, and the time loop's SASS:
instructions, barriers, spill accesses, wgmma and their waits, fences) come
from `python -m fusedrnn.backends.triton.compile_check SPEC...`."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")
from fusedrnn.backends.triton.variants import VARIANTS  # noqa: E402

H100_SHARED_PER_BLOCK = 232448
CELLS = ["lstm", "gru", "elman", "elman_relu", "slstm"]
SPECS = [f"{cell},bfloat16,{DH},{B},{d}" for cell in CELLS for DH in (16, 32, 64, 128) for B in (16, 256)
         for d in ("fwd", "bwd")] + ["lstm,float32,64,16,bwd", "gru,float16,48,16,fwd"]
SPECS += [f"lstm,bfloat16,{DH},16,{d},variant={name}" for name in VARIANTS if name != "shipped"
          for DH in (64, 128) for d in ("fwd", "bwd")]
# the kernels of calls with resets (HAS_RESETS, backends/triton/resets.py)
SPECS += [f"{cell},bfloat16,{DH},16,{d},resets=true" for cell in CELLS for DH in (64, 128) for d in ("fwd", "bwd")]
# issue 3's kernels, the LSTM backward at the benchmark's head dims, spill little: with Triton 3.6
# 16 B of stack at DH=64 and 64 B at DH=128 (88 B and 160 B before lstm_backward grouped its factors)
SMALL_STACK = {"lstm,bfloat16,64,16,bwd": 128, "lstm,bfloat16,128,16,bwd": 128}


@pytest.fixture(scope="module")
def reports():
    """The compile reports of every spec, from one compile_check process a CPU core (a spec
    takes ~2 s, most of it ptxas)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    workers = max(1, min(os.cpu_count() or 1, 8))
    procs = [subprocess.Popen([sys.executable, "-m", "fusedrnn.backends.triton.compile_check", *SPECS[i::workers]],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    found = {}
    for proc in procs:
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, err[-3000:]
        found.update((r["spec"], r) for r in map(json.loads, out.splitlines()))
    assert set(found) == set(SPECS)
    return found


@pytest.mark.parametrize("spec", SPECS)
def test_fits_an_h100(reports, spec):
    report = reports[spec]
    cell, _, DH, _, direction = spec.split(",")[:5]
    assert report["shared"] <= H100_SHARED_PER_BLOCK, report
    if direction == "fwd" and cell != "slstm":
        assert report["spill_stores"] == 0, report
    assert report["stack"] < 2048, report
    assert report["stack"] <= SMALL_STACK.get(spec, 2048), report


@pytest.mark.parametrize("spec", SPECS)
def test_only_calls_with_resets_read_them(reports, spec):
    # the resets tables are the kernels' only byte loads; a kernel compiled without
    # resets (HAS_RESETS off, what every call without them runs) reads none
    assert (reports[spec]["byte_loads"] > 0) == ("resets=true" in spec), reports[spec]


@pytest.mark.parametrize("spec", [s for s in SPECS if s.split(",")[4] == "bwd"])
def test_transposed_weights_read_consistently(reports, spec):
    # the R^T products read the on-chip R through a transposed view: its K steps
    # must be evenly spaced (Triton 3.6 gets the view of a [512, 128] tile wrong, stacked.py)
    assert reports[spec]["transposed_a_jumps"] == 0, reports[spec]
