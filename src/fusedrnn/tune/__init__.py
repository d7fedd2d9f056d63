"""The hardware-aware tuner of the `cuda_fused` kernels: the configurations a
call can run with on a device as a constraint model over the device's limits
(space.py), ranked by a cost model (cost.py), the best few checked
(correctness.py) and timed (search.py) and the winner cached on disk
(cache.py), where the backend finds it. docs/tuning.md explains the model.

    best_config(cell, dtype, DH, NH, B, backward)  # the tuner's pick
    tune(cell, dtype, DH, NH, B)                    # check, time and cache (GPU)
    largest_head_dims(preset("a100"))               # per cell and dtype
"""
from .choice import best_config
from .limits import A100_SXM, H100_SXM, RTX_4090, DeviceLimits, device_limits, preset
from .search import TuneResult, tune
from .table import largest_head_dims

__all__ = ["A100_SXM", "H100_SXM", "RTX_4090", "DeviceLimits", "TuneResult", "best_config", "device_limits",
           "largest_head_dims", "preset", "tune"]
