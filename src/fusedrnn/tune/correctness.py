"""The tuner's correctness gate (the default check of `tune`; tests inject a
fake one). Many candidates have never run on a GPU (other K-slice counts,
splits of one column tile...), and a winner is what the backend will run: so
before a candidate is timed it runs, forced in place of the backend's choice
(timing.forced), at a small shape with the call's cell, dtype, DH and NH, on
fresh random inputs with lengths and initial states, outputs poisoned with
NaN, and must pass the project's rule against the float64 torch reference
(fusedrnn.testing): forward only (inference) and forward+backward (training).

A check is `check(config, call) -> str`: '' when the configuration passes,
else why not."""
from __future__ import annotations

import torch

from ..backends.outputs import poisoned
from ..testing import check_backend
from .timing import forced

CHECK_BATCH = 5  # at most: a partial batch tile
CHECK_STEPS = 37


class GpuCheck:
    def __init__(self, device=None):
        index = torch.cuda.current_device() if device is None else torch.device(device).index
        self.device = torch.device("cuda", index)

    def __call__(self, config, call) -> str:
        # a forward configuration runs in inference and in training (which also saves states);
        # a backward one only in training
        for with_grads in (True,) if config.backward else (False, True):
            passes = "forward+backward" if with_grads else "forward"
            try:
                with torch.cuda.device(self.device), forced(config), poisoned():
                    check_backend("cuda_fused", call.cell, call.dtype, min(call.B, CHECK_BATCH), CHECK_STEPS,
                                  call.NH, call.DH, self.device, with_grads=with_grads)
            except Exception as error:  # a mismatch, or a kernel that fails to compile or launch
                return f"{passes}: {type(error).__name__}: {error}"
        return ""
