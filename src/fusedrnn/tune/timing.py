"""Timing one configuration of the `cuda_fused` kernels on the GPU (the
default timer of `tune`; tests inject a fake one).

A configuration is forced by standing in for the backend's choice
(backends/cuda/fused.choose_config, split.choose_split) while the call runs;
the call itself is the benchmark's (bench/providers.py), so what is timed is
exactly what `fusedrnn.rnn` runs: forward, or forward+backward for a
backward configuration (the forward then as the backend picks it, the same
for every candidate: the forward winner when one is cached). Standing in for
the functions bypasses their lookup of tuned winners, so the forced
configuration wins over the cache."""
from __future__ import annotations

import contextlib
import inspect
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from ..backends.cuda import fused, split
from ..backends.cuda.split import SplitConfig


@contextlib.contextmanager
def forced(config):
    """While inside, the backend runs `config` for calls in its direction. A
    split configuration runs on the cooperative grid (FUSEDRNN_SPLIT=grid), not
    on the thread-block cluster split.py prefers on Hopper where one fits."""
    module, name = (split, "choose_split") if isinstance(config, SplitConfig) else (fused, "choose_config")
    original = getattr(module, name)
    signature = inspect.signature(original)

    def choose(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return config if bound.arguments["backward"] == config.backward else original(*args, **kwargs)

    mode = os.environ.get("FUSEDRNN_SPLIT")
    setattr(module, name, choose)
    if isinstance(config, SplitConfig):
        os.environ["FUSEDRNN_SPLIT"] = "grid"
    try:
        yield
    finally:
        setattr(module, name, original)
        if mode is None:
            os.environ.pop("FUSEDRNN_SPLIT", None)
        else:
            os.environ["FUSEDRNN_SPLIT"] = mode


def _compile(name_expression: str, arch: str) -> tuple[str, int]:
    from ..backends.cuda.compile import compile_kernel

    return name_expression, compile_kernel(name_expression, arch).spill_bytes


class GpuTimer:
    """Median milliseconds of the call with a configuration forced, by
    triton.testing.do_bench; a configuration whose kernel spills registers
    (ptxas's report) is not timed: it measures as infinitely slow."""

    def __init__(self, device=None, warmup: int = 5, rep: int = 30):
        import torch

        index = torch.cuda.current_device() if device is None else torch.device(device).index
        self.device = torch.device("cuda", index)
        self.warmup, self.rep = warmup, rep
        self.spills: dict[str, int] = {}

    def prepare(self, configs) -> None:
        """Compile every candidate at once (NVRTC in parallel processes; the cubins
        land in the disk cache the launches load from)."""
        from ..backends.cuda.launch import device_arch

        names = sorted({c.name_expression for c in configs})
        arch = device_arch(self.device)
        # spawned, not forked: this process already holds a CUDA context
        with ProcessPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            self.spills.update(pool.map(_compile, names, [arch] * len(names)))

    def __call__(self, config, call) -> float:
        import torch
        import triton.testing

        from ..bench.providers import PROVIDERS, Case

        if self.spills.get(config.name_expression, 0):
            return math.inf
        case = Case(call.cell, call.dtype, call.B, call.T, call.NH, call.DH, backward=config.backward,
                    device=str(self.device))
        with torch.cuda.device(self.device), forced(config):
            run = PROVIDERS["cuda_fused"](case)
            run()
            return triton.testing.do_bench(run, warmup=self.warmup, rep=self.rep, return_mode="median")
