"""Timing one plan of the `cuda_fused` kernels on the GPU (the default timer
of `tune`; tests inject a fake one).

The plan runs through the internal call path with explicit plans
(backends/cuda/fused/launchers.py): a forward plan is timed alone; a backward
plan is timed alone too, on the outputs of one forward the planner plans (the
same for every candidate). Nothing is replaced or set for the call: what is
timed is the launch the planner's winner will make."""
from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from ..backends.cuda.fused import launchers
from ..backends.cuda.fused.plan import plan as planned
from ..backends.cuda.runtime.compile import compile_kernel
from ..backends.cuda.runtime.device import device_limits
from ..backends.cuda.runtime.launch import device_arch


def kernel_touches_local_memory(name_expression: str, source, arch: str) -> tuple[str, bool]:
    compiled = compile_kernel(name_expression, arch, source)
    return name_expression, compiled.uses_local_memory


class GpuTimer:
    """Median milliseconds of one plan's launch by triton.testing.do_bench; a plan whose
    kernel spills registers or uses local memory (ptxas's report, the cubin) is not
    timed: it measures as infinitely slow."""

    def __init__(self, device=None, warmup: int = 5, rep: int = 30):
        import torch

        index = torch.cuda.current_device() if device is None else torch.device(device).index
        self.device = torch.device("cuda", index)
        self.warmup, self.rep = warmup, rep
        self.local_memory: dict[str, bool] = {}

    def prepare(self, plans) -> None:
        """Compile every candidate at once (NVRTC in parallel processes; the cubins land
        in the disk cache the launches load from)."""
        # by name: a source may be a TranslationUnit (a generated cell's), which has no order
        kernels = sorted({(p.config.name_expression, p.config.source) for p in plans}, key=lambda k: k[0])
        arch = device_arch(self.device)
        # spawned, not forked: this process already holds a CUDA context
        with ProcessPoolExecutor(max_workers=max(1, min(len(kernels), os.cpu_count() or 1)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            self.local_memory.update(pool.map(kernel_touches_local_memory, *zip(*kernels), [arch] * len(kernels)))

    def __call__(self, plan, call) -> float:
        import torch
        import triton.testing

        from ..problem import problem_of
        from ..testing import random_problem

        if self.local_memory.get(plan.config.name_expression, False):
            return math.inf
        with torch.cuda.device(self.device):
            x, R, b, states = random_problem(call.cell, call.B, call.T, call.NH, call.DH, dtype=call.dtype,
                                             device=self.device)
            if plan.direction == "forward":
                def run():
                    launchers.forward(plan, x, R, b, states, None, call.cell, False)
            else:
                first = planned(problem_of(x, call.cell, None, True), device_limits(self.device.index), "forward")
                y, final, saved = launchers.forward(first, x, R, b, states, None, call.cell, True)
                dy, dfinal = torch.randn_like(y), torch.randn_like(final)

                def run():
                    launchers.backward(plan, dy, dfinal, x, R, b, states, None, y, final, saved, call.cell)
            run()
            return triton.testing.do_bench(run, warmup=self.warmup, rep=self.rep, return_mode="median")
