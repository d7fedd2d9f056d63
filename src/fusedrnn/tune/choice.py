"""The tuner's pick for a call: the tuned winner for the call's shape when the
cache has one, else the cost model's first choice. The backend runs the
winner too, but without one its own heuristic, not the model's untimed choice
(backends/cuda/fused.choose_config, split.choose_split)."""
from __future__ import annotations

import functools

import torch

from . import cache
from .cost import rank
from .limits import DeviceLimits, device_limits
from .space import batch_bucket, feasible_configs


def best_config(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
                limits: DeviceLimits | None = None, use_cache: bool = True):
    """The FusedConfig (head on one SM) or SplitConfig (head split over CTAs) to
    run the call with on the device (the current CUDA device when `limits` is
    None); None when no configuration of the kernels can run it."""
    limits = device_limits() if limits is None else limits
    if use_cache:
        cached = cache.lookup(cache.cache_key(limits.name, cell, dtype, DH, NH, B, backward))
        if cached is not None:
            return cached
    return model_choice(cell, dtype, DH, NH, batch_bucket(B), backward, limits)


@functools.lru_cache(maxsize=4096)
def model_choice(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool, limits: DeviceLimits):
    """The cost model's fastest feasible configuration, or None."""
    ranked = rank(feasible_configs(cell, dtype, DH, NH, B, backward, limits), NH, B, limits)
    return ranked[0] if ranked else None
