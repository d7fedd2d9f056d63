"""Stand-ins for the tuner's GPU timer and correctness check, so that the search
runs on a CPU (tests/test_tune.py, tests/test_tune_dispatch.py)."""
import math

from fusedrnn.tune import H100_SXM
from fusedrnn.tune.cost import estimated_ms


class FakeTimer:
    """Times are the model's estimate, scaled per configuration; some are rejected."""

    def __init__(self, scale=None, reject=()):
        self.scale, self.reject, self.calls, self.prepared = scale or {}, set(reject), [], []

    def prepare(self, configs):
        self.prepared.append(list(configs))

    def __call__(self, config, call):
        self.calls.append(config)
        if config in self.reject:
            return math.inf
        return estimated_ms(config, call.NH, call.B, H100_SXM, call.T) * self.scale.get(config, 1.0)


class FakeCheck:
    """Passes every configuration but those in `fail`; records what it checked."""

    def __init__(self, fail=()):
        self.fail, self.calls = set(fail), []

    def __call__(self, config, call):
        self.calls.append(config)
        return "forward: MismatchError: y: error 0.5 > 2 x torch's 0.001" if config in self.fail else ""
