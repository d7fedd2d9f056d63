"""The hardware-aware tuner of the `cuda_fused` kernels: the plans the
planner may run for a call on a device, as a constraint model over the
device's limits (space.py), ranked by the backend's cost model, the best few
checked (correctness.py) and timed (search.py, timing.py) and the winner
cached on disk (backends/cuda/fused/tuned.py), where the planner finds it.
The tuner imports the backend; the backend never imports the tuner.
docs/tuning.md explains the model.

    tune(cell, dtype, DH, NH, B)                    # check, time and cache (GPU)
    largest_head_dims(preset("a100"))               # per cell and dtype
"""
from ..backends.cuda.runtime.device import A100_SXM, H100_SXM, RTX_4090, DeviceLimits, device_limits, preset
from .search import TuneResult, tune
from .table import largest_head_dims

__all__ = ["A100_SXM", "H100_SXM", "RTX_4090", "DeviceLimits", "TuneResult", "device_limits",
           "largest_head_dims", "preset", "tune"]
