"""The tuner's space: every plan of the `cuda_fused` planner that can run a
call on a device. One SM and the grid are stated as integer constraint
models (python-constraint2) over the kernels' template knobs; the cluster
kernels' shapes come from the backend's own enumerations, each with every
split of R between registers and shared memory (the timer rejects those the
compiler spills). The planner's rules pick within this space
(tests/test_tune.py checks that on a grid of calls).

Variables are the kernels' template knobs, over the values the kernels are
written for. Constraints are the device's limits: threads a block, shared
memory a block (the byte counts of FusedConfig / SplitConfig themselves),
registers a thread (backends/cuda/fused/registers.py) within the block's share, a batch tile
no wider than the batch bucket, and for a head split over CTAs, every CTA of
the grid resident at once (the cooperative launch of its grid barrier; the
kernels' __launch_bounds__(THREADS, 1) lets ptxas take a whole SM's
registers, so one CTA an SM is all that is certain). Head dims stay within
the range the shipped kernels are instantiated and compiled for.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import torch

from ..backends.cuda.cxx import STORAGE_TYPES
from ..backends.cuda.fused import cluster, cluster_backward
from ..backends.cuda.fused.grid import MAX_HEAD_DIM, ROWS_CHOICES, SPLIT_NT_CHOICES, SplitConfig, split_head_dim
from ..backends.cuda.fused.one_sm import FusedConfig, fits_one_sm, padded_head_dim
from ..backends.cuda.fused.plan import Plan
from ..backends.cuda.fused.registers import registers_needed
from ..backends.cuda.fused.shipped import one_sm_configs
from ..backends.cuda.fused.tuned import batch_bucket
from ..backends.cuda.runtime.device import DeviceLimits
from ..cells import get_cell

FUSED_KNOBS = {"NT": (1, 2), "WN": (1, 2, 4), "depth": (2, 3, 4), "r_in_registers": (False, True)}
SPLIT_KNOBS = {"ROWS": ROWS_CHOICES, "NT": SPLIT_NT_CHOICES, "depth": (2, 3, 4)}
# warps of a split CTA (row blocks x K slices): 1, 2 or 4 on each of the 4 schedulers
SPLIT_WARPS = (4, 8, 16)


@functools.lru_cache(maxsize=None)
def one_sm_head_dims() -> frozenset[int]:
    """The padded head dims of the shipped single-SM kernels (what CI compiles)."""
    return frozenset(c.DHP for c in one_sm_configs())


def _check_call(cell: str, dtype: torch.dtype, DH: int, NH: int) -> None:
    get_cell(cell)  # raises on an unknown cell
    if dtype not in STORAGE_TYPES:
        raise TypeError(f"dtype: expected one of {list(STORAGE_TYPES)}, got {dtype!r}")
    for name, value in (("DH", DH), ("NH", NH)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _solutions(knobs: dict, constraints: list) -> list[dict]:
    try:
        from constraint import Problem
    except ImportError as error:
        message = "the tuner's constraint model needs python-constraint2: pip install 'fusedrnn[tune]'"
        raise ImportError(message) from error

    problem = Problem()
    for name, values in knobs.items():
        problem.addVariable(name, list(values))
    for function, variables in constraints:
        problem.addConstraint(function, variables)
    solutions = problem.getSolutions()
    return sorted(solutions, key=lambda s: [s[name] for name in knobs])


def fused_space(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
                limits: DeviceLimits) -> list[FusedConfig]:
    """Every single-SM instantiation that can run the call on the device."""
    _check_call(cell, dtype, DH, NH)
    DHP, bucket = padded_head_dim(DH), batch_bucket(B)
    if DHP not in one_sm_head_dims():
        return []

    def config(NT=1, WN=1, depth=2, r_in_registers=False):
        return FusedConfig(cell=cell, dtype=dtype, DHP=DHP, backward=backward, NT=NT, WN=WN, depth=depth,
                           vec=math.gcd(DH, 8), r_in_registers=r_in_registers, fast_math=dtype == torch.bfloat16)

    knobs = dict(FUSED_KNOBS)
    # only the tensor-core forward reads R from registers (the backward and fp32 read shared memory)
    if backward or dtype == torch.float32:
        knobs["r_in_registers"] = (False,)
    constraints = [
        (lambda NT, WN: 8 * NT * WN <= bucket, ["NT", "WN"]),
        (lambda WN: config(WN=WN).threads <= limits.max_threads_per_block, ["WN"]),
        (lambda NT, WN, depth: _shared_memory(config(NT, WN, depth)) <= limits.shared_memory_per_block,
         ["NT", "WN", "depth"]),
        (lambda NT, WN, r_in_registers: _registers_fit(config(NT, WN, r_in_registers=r_in_registers), limits),
         ["NT", "WN", "r_in_registers"]),
    ]
    return [config(**s) for s in _solutions(knobs, constraints)]


def split_space(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
                limits: DeviceLimits) -> list[SplitConfig]:
    """Every instantiation that splits each head over CTAs and can run the call."""
    _check_call(cell, dtype, DH, NH)
    DHP, bucket = split_head_dim(DH), batch_bucket(B)
    if DHP > MAX_HEAD_DIM:
        return []
    k_tiles = DHP // 16

    def config(ROWS=16, KSPLIT=1, NT=1, depth=2):
        return SplitConfig(cell=cell, dtype=dtype, DHP=DHP, ROWS=ROWS, KSPLIT=KSPLIT, NT=NT, depth=depth,
                           vec=math.gcd(DH, 8), fast_math=dtype == torch.bfloat16, backward=backward)

    knobs = dict(SPLIT_KNOBS, KSPLIT=[d for d in range(1, k_tiles + 1) if k_tiles % d == 0])
    constraints = [
        (lambda NT: 8 * NT <= bucket, ["NT"]),
        (lambda ROWS, KSPLIT: ROWS // 16 * KSPLIT in SPLIT_WARPS, ["ROWS", "KSPLIT"]),
        (lambda ROWS, KSPLIT: config(ROWS, KSPLIT).threads <= limits.max_threads_per_block, ["ROWS", "KSPLIT"]),
        # the cooperative launch needs every CTA resident, one an SM, for any batch of the bucket
        (lambda ROWS, NT: DHP // ROWS * NH * math.ceil(bucket / (8 * NT)) <= limits.sm_count, ["ROWS", "NT"]),
        (lambda ROWS, KSPLIT, NT: _registers_fit(config(ROWS, KSPLIT, NT), limits), ["ROWS", "KSPLIT", "NT"]),
        (lambda ROWS, KSPLIT, NT, depth: _shared_memory(config(ROWS, KSPLIT, NT, depth))
         <= limits.shared_memory_per_block, ["ROWS", "KSPLIT", "NT", "depth"]),
    ]
    return [config(**s) for s in _solutions(knobs, constraints)]


def cluster_space(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
                  limits: DeviceLimits) -> list:
    """Every thread-block cluster shape (Hopper and later) with each count of R's tiles in
    registers, the deepest input ring that fits beside the rest; a forward shape with the
    sequences a cluster the launch would pick for B."""
    if limits.capability < (9, 0) or DH > MAX_HEAD_DIM:
        return []
    DHP, vec, smem = split_head_dim(DH), math.gcd(DH, 8), limits.shared_memory_per_block
    configs = []
    if backward:
        for shape in cluster_backward.cluster_backward_configs(cell, dtype, DHP, vec, smem):
            configs += [config.with_sequences(B, NH, cluster.clusters_at_once(config, limits))
                        for config in cluster.register_forms(shape, smem)]
        return configs
    for shape in cluster.cluster_configs(cell, dtype, DHP, vec, batch_bucket(B) > 8, smem):
        if shape.options & cluster.SPREAD_CELLS:
            shape = dataclasses.replace(shape, elements=1)
        for config in cluster.register_forms(shape, smem):
            configs.append(config.with_sequences(B, NH, cluster.clusters_at_once(config, limits)))
    return configs


def candidates(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
               limits: DeviceLimits) -> list[Plan]:
    """Every plan that can run the call's direction on the device: one SM where the head fits
    there, the cooperative grid, and clusters on Hopper and later."""
    _check_call(cell, dtype, DH, NH)
    configs = []
    if fits_one_sm(cell, dtype, DH, B, limits):
        configs += fused_space(cell, dtype, DH, NH, B, backward, limits)
    configs += split_space(cell, dtype, DH, NH, B, backward, limits)
    configs += cluster_space(cell, dtype, DH, NH, B, backward, limits)
    direction = "backward" if backward else "forward"
    return [Plan(direction, config, "tuner candidate") for config in configs]


def _shared_memory(config) -> int:
    return config.shared_memory + getattr(config, "static_shared_memory", 0)


def _registers_fit(config, limits: DeviceLimits) -> bool:
    return registers_needed(config) <= limits.register_cap(config.threads)


def feasible_configs(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
                     limits: DeviceLimits) -> list:
    """The configurations of candidates()' plans."""
    return [plan.config for plan in candidates(cell, dtype, DH, NH, B, backward, limits)]
