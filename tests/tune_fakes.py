"""Stand-ins for the tuner's GPU timer and correctness check, so that the search
runs on a CPU (tests/test_tune.py, tests/test_tune_dispatch.py), and the calls
and caches those tests share."""
import math

import pytest
import torch

from fusedrnn.backends.cuda.fused.cost import estimated_ms
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from fusedrnn.tune import H100_SXM


class FakeTimer:
    """Times are the model's estimate, scaled per configuration; some are rejected.
    Records the plans it is asked to time (`calls`) and to prepare (`prepared`)."""

    def __init__(self, scale=None, reject=()):
        self.scale, self.reject, self.calls, self.prepared = scale or {}, set(reject), [], []

    def prepare(self, plans):
        self.prepared.append(list(plans))

    def __call__(self, plan, call):
        self.calls.append(plan)
        config = plan.config
        if config in self.reject:
            return math.inf
        return estimated_ms(config, call.NH, call.B, H100_SXM, call.T) * self.scale.get(config, 1.0)


class FakeCheck:
    """Passes every configuration but those in `fail`; records the plans it checked."""

    def __init__(self, fail=()):
        self.fail, self.calls = set(fail), []

    def __call__(self, plan, call):
        self.calls.append(plan)
        return "forward: MismatchError: y: error 0.5 > 2 x torch's 0.001" if plan.config in self.fail else ""


def problem(DH, NH, B, cell="lstm", dtype=torch.bfloat16, T=1024):
    """A training call on a CUDA device, as the planner sees it."""
    return Problem(get_cell(cell), B, T, NH, DH, dtype, torch.device("cuda"), False, True)


@pytest.fixture(scope="module")
def shared_cubins(tmp_path_factory):
    """One cubin cache for a test module: the rules fit cluster plans to the NVRTC in use by
    compiling them (a second or so each), once."""
    return tmp_path_factory.mktemp("cubin")


def use_cache_dir(tmp_path, monkeypatch, cubins):
    """FUSEDRNN_CACHE_DIR at `tmp_path` (so its own tune.json), with the module's cubins."""
    (tmp_path / "cubin").symlink_to(cubins, target_is_directory=True)
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    return tmp_path
