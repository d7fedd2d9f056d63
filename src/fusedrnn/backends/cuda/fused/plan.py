"""The one planner of `cuda_fused`: what runs a call, forward or backward, on
a device, as an immutable Plan. Nothing else chooses: the launchers run the
plan they are given, the tuner times plans of the space this planner picks
from (space.py) and the winner it caches is the plan of the next call.

The plan is the tuned winner for the call's shape on this GPU where one is
cached and can run the call; otherwise the rules below, measured on the H100
(docs/perf-notes.md):
  forward:  a head that fits one SM runs there (one_sm.rule_config), unless a
            cluster runs the whole call in one wave and the head is from
            CLUSTER_FORWARD_MIN_HEAD_DIM (or its cell's step chains LONG_CHAIN
            transcendentals); a larger head runs on a thread-block cluster on Hopper and later where one
            holds it, compiles without local memory with the NVRTC in use, and
            the sequence has CLUSTER_MIN_STEPS steps or more; else on the
            cooperative grid.
  backward: a cluster where choose_cluster_backward plans one (half types;
            heads over one SM, and LSTM-sized heads from 64 that fit one, where
            that measured faster) and the sequence has CLUSTER_MIN_STEPS steps or
            more; else one SM where the head fits; else the grid.
Where neither one SM nor the grid can run a direction (a head over one SM
whose grid needs more CTAs than the GPU has SMs), a cluster runs it whatever
the length and the compiler: the last resort before refusing the call.
A tuned cluster winner runs only from CLUSTER_MIN_STEPS steps, as the rules.
A call with `resets` runs the same plan built with resets (`with_resets`: the kernel
that reads them; a cluster's fitted again to the compiler, its register use grown).
`strategy` narrows the choice to one kernel family (tests, probes, `fusedrnn
bench --plan`): the rule's pick within it, or a ValueError saying why none.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import torch

from ....cells import get_cell
from ....problem import Problem
from ..runtime.device import DeviceLimits
from . import tuned
from .cluster import ClusterConfig, choose_cluster, clusters_at_once, estimated_clusters_at_once, fit_to_compiler
from .cluster_backward import ClusterBackwardConfig, choose_cluster_backward, cluster_backward_configs
from .grid import MAX_HEAD_DIM, SplitConfig, rule_split, split_head_dim
from .one_sm import FusedConfig, fits_one_sm, padded_head_dim, rule_config, why_not_one_sm

DIRECTIONS = ("forward", "backward")
STRATEGIES = ("one_sm", "grid", "cluster")
# the rules run sequences shorter than this on the grid: a cluster holds a head on fewer SMs, so each
# loads more of R before the first step (768x1, one step from a CUDA graph on the H100: 23.4 us on
# the cluster, 14.6 on the grid), which its faster steps (0.6 us a step) repay after ~15 steps
CLUSTER_MIN_STEPS = 16


def strategy_of(config) -> str:
    if isinstance(config, FusedConfig):
        return "one_sm"
    if isinstance(config, SplitConfig):
        return "grid"
    if isinstance(config, (ClusterConfig, ClusterBackwardConfig)):
        return "cluster"
    raise TypeError(f"not a cuda_fused kernel configuration: {config!r}")


@dataclass(frozen=True)
class Plan:
    """One kernel instantiation and its launch shape for one direction of a call.
    `why` says where it came from (the tuned winner, a rule); it is not part of
    the plan's identity."""
    direction: str
    config: FusedConfig | SplitConfig | ClusterConfig | ClusterBackwardConfig
    why: str = field(default="", compare=False)

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction: expected one of {DIRECTIONS}, got {self.direction!r}")
        if self.config.backward != (self.direction == "backward"):
            raise ValueError(f"a {'backward' if self.config.backward else 'forward'} kernel cannot run the "
                             f"{self.direction}: {self.config.name_expression}")

    @property
    def strategy(self) -> str:
        return strategy_of(self.config)

    @property
    def name_expression(self) -> str:
        return self.config.name_expression

    def __str__(self) -> str:
        return f"{self.direction} {self.strategy}: {self.config.name_expression}" + (f" ({self.why})" if self.why else "")


def plan(problem: Problem, device: DeviceLimits, direction: str, *, strategy: str | None = None) -> Plan:
    """The plan that runs `problem`'s `direction` on `device` (see the module's docstring)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES} or None, got {strategy!r}")
    cell, DH, NH, B = problem.cell.name, problem.head_dim, problem.heads, problem.batch
    chosen = None
    if strategy is None:
        winner = tuned.lookup(tuned.cache_key(device.name, cell, problem.dtype, DH, NH, B, direction == "backward"))
        runnable = admissible(winner, problem, device, direction)
        if runnable is not None:
            chosen = Plan(direction, runnable, "tuned winner")
    if chosen is None:
        chosen = rule_plan(cell, problem.dtype, DH, NH, B, problem.steps >= CLUSTER_MIN_STEPS, device, direction,
                           strategy, problem.has_resets)
    return with_resets(chosen, device) if problem.has_resets else chosen


@functools.lru_cache(maxsize=4096)  # asked on every call with resets, as rule_plan is on every call
def with_resets(chosen: Plan, device: DeviceLimits) -> Plan:
    """The plan with the kernel that reads resets: the same shape; for a cluster, fitted to the
    compiler again (the reset path holds a few more registers: fewer fragments of R if need be)."""
    config = dataclasses.replace(chosen.config, resets=True)
    if isinstance(config, (ClusterConfig, ClusterBackwardConfig)):
        config = fit_to_compiler(config, device) or config
    return Plan(chosen.direction, config, f"{chosen.why}, with resets")


# From this batch a forward-only call of a head over one SM runs faster on cuda_alternating: the
# cluster holds R on 16 SMs with room for 8 sequences, so a large batch runs in waves, while the
# alternating loop's per-step GEMM streams R from L2 for the whole batch at once (H100, LSTM bf16,
# 768x1, B=256, T=1024: 12.46 ms against 19.38; with the backward the fused kernels still win,
# 36.8 against 41.0 ms: docs/perf-notes.md, 2026-12-07)
ALTERNATING_FORWARD_MIN_BATCH = 256


def alternating_is_faster(problem: Problem, device: DeviceLimits) -> bool:
    """Whether cuda_alternating runs this call faster than any plan here (measured rule above):
    `backend="auto"` then takes it instead. With resets too (the rule was measured without them:
    they cost the kernels here 1-4 % forward at these shapes, docs/perf-notes.md, and the
    alternating loop a flag's byte a step and a read of the initial states at a reset; not yet
    measured there). Pure Python, as supports()."""
    return (not problem.needs_grad and problem.batch >= ALTERNATING_FORWARD_MIN_BATCH
            and not fits_one_sm(problem.cell.name, problem.dtype, problem.head_dim, problem.batch, device))


def why_no_plan(problem: Problem, device: DeviceLimits) -> str:
    """Why no plan runs the call on the device ('' when every direction it needs has one).
    Pure Python, so torch.compile can trace it: one SM, the grid, or a cluster shape (the
    rules' last resort) for each direction."""
    cell, dtype, DH, NH, B = problem.cell.name, problem.dtype, problem.head_dim, problem.heads, problem.batch
    if DH > MAX_HEAD_DIM:
        return f"DH={DH} over {MAX_HEAD_DIM}, the largest head the kernels are written for"
    reason = why_not_one_sm(cell, dtype, DH, B, device)
    if not reason:
        return ""
    for backward in (False, True) if problem.needs_grad else (False,):
        direction = "backward" if backward else "forward"
        if (rule_split(cell, dtype, DH, B, NH, backward, device, problem.has_resets) is None
                and (device.capability < (9, 0)
                     or cluster_shape(cell, dtype, DH, NH, B, device, direction, any_shape=True) is None)):
            return (f"{reason}; split over CTAs ({direction}), it needs more shared memory or SMs than "
                    f"{device.sm_count}, and no thread-block cluster holds it")
    return ""


def admissible(config, problem: Problem, device: DeviceLimits, direction: str):
    """`config` (a tuned winner) fitted to this call where it can run it on `device`, else None:
    the call's cell, dtype and padded head dim, the direction, a row-copy width dividing DH,
    and within the device's limits."""
    if config is None or config.cell != problem.cell.name or config.dtype != problem.dtype:
        return None
    DH, NH, B = problem.head_dim, problem.heads, problem.batch
    if config.backward != (direction == "backward") or DH % config.vec:
        return None
    if isinstance(config, FusedConfig):
        ok = (config.DHP == padded_head_dim(DH) and config.fits(device)
              and fits_one_sm(config.cell, config.dtype, DH, B, device))
        return config if ok else None
    if config.DHP != split_head_dim(DH) or DH > MAX_HEAD_DIM:
        return None
    if isinstance(config, SplitConfig):  # in the form the call runs (with_resets)
        return config if dataclasses.replace(config, resets=problem.has_resets).fits(NH, B, device) else None
    if device.capability < (9, 0) or config.parts > device.max_cluster_size_non_portable:
        return None
    at_once = clusters_at_once(config, device)
    if problem.steps < CLUSTER_MIN_STEPS or at_once < 1:
        return None
    return config.with_sequences(B, NH, at_once)


# The forward of a head that fits one SM runs faster on clusters where every cluster of the call
# runs at once, from DH 128 for every cell, and from DH 64 for a cell whose step chains LONG_CHAIN
# transcendental calls and divisions (SymbolicCell.forward_chain): a one-SM thread runs the cell
# for 4 elements of each column tile, a spread cluster's for one, so the chain's latency is paid
# once, not four times. bf16, B=16, T=1024 on the H100, one SM / clusters, ms: 128x6 LSTM 0.78 /
# 0.59, GRU 0.70 / 0.43, sLSTM 1.20 / 0.62, Elman 0.42 / 0.39; 64x12 sLSTM 0.87 / 0.56, LSTM and
# GRU (chains of 2) within 3% either way, Elman (1) 0.32 / 0.41 (docs/perf-notes.md, 2026-12-07).
CLUSTER_FORWARD_MIN_HEAD_DIM = 128
LONG_CHAIN = 3
LONG_CHAIN_MIN_HEAD_DIM = 64


def cluster_first(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, device: DeviceLimits,
                  direction: str, one_sm: bool) -> bool:
    """Whether the rules try a cluster before one SM: always backward; forward, for a head
    that fits one SM, as measured above, where the call's clusters run in one wave."""
    if direction == "backward":
        return True
    symbolic = get_cell(cell).symbolic
    long_chain = symbolic is not None and symbolic.forward_chain >= LONG_CHAIN
    if not one_sm or DH < (LONG_CHAIN_MIN_HEAD_DIM if long_chain else CLUSTER_FORWARD_MIN_HEAD_DIM):
        return False
    shape = cluster_shape(cell, dtype, DH, NH, B, device, direction, False)
    if shape is None:
        return False
    at_once = estimated_clusters_at_once(shape.parts, device.sm_count)
    return NH * math.ceil(B / shape.with_sequences(B, NH, at_once).cluster_sequences) <= at_once


@functools.lru_cache(maxsize=4096)  # asked on every call: the rules cost ~0.5 ms for a cluster
def rule_plan(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, long_enough: bool, device: DeviceLimits,
              direction: str, strategy: str | None, resets: bool = False) -> Plan:
    """The rules' plan (module docstring); `long_enough`: T >= CLUSTER_MIN_STEPS; `resets`: the call
    has them (the grid's shape must fit in the form that reads them). The forward tries one SM
    before a cluster, the backward a cluster before one SM; then the grid."""
    one_sm = fits_one_sm(cell, dtype, DH, B, device)
    forced = strategy is not None
    if strategy == "one_sm" and not one_sm:
        raise ValueError(f"strategy='one_sm': {why_not_one_sm(cell, dtype, DH, B, device)}")
    first = cluster_first(cell, dtype, DH, NH, B, device, direction, one_sm) and long_enough
    for family in ("cluster", "one_sm") if first else ("one_sm", "cluster"):
        if strategy not in (None, family):
            continue
        if family == "one_sm" and one_sm:
            config = rule_config(cell, dtype, DH, B, direction == "backward", NH, device)
            return Plan(direction, config, "rule: the head fits one SM")
        if family == "cluster" and (long_enough or forced):
            config, why = cluster_or_why(cluster_shape(cell, dtype, DH, NH, B, device, direction, forced),
                                         B, NH, device, forced)
            if config is not None:
                return Plan(direction, config, "rule: a cluster holds the head")
            if forced:
                raise ValueError(f"strategy='cluster' ({direction}): {why}")
    config = rule_split(cell, dtype, DH, B, NH, direction == "backward", device, resets)
    if config is None and strategy is None:  # the last resort: a cluster, whatever T and the compiler
        config, _ = cluster_or_why(cluster_shape(cell, dtype, DH, NH, B, device, direction, True), B, NH, device,
                                   forced=True)
        if config is not None:
            return Plan(direction, config, "rule: no grid fits the GPU, a cluster does")
    if config is None:
        raise ValueError(f"cuda_fused has no plan for the {direction} of cell={cell!r} dtype={dtype} DH={DH} NH={NH} "
                         f"B={B} on {device.name}: the head needs more shared memory or SMs than it has"
                         f" (or DH over {MAX_HEAD_DIM})")
    return Plan(direction, config, "rule: the cooperative grid")


def cluster_shape(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, device: DeviceLimits, direction: str,
                  any_shape: bool):
    """The cluster shape the rules take for a direction, before the fit to a compiler (None where
    none): forward, the cost model's for B's power-of-two bucket (one kernel a bucket); backward,
    choose_cluster_backward's, or with `any_shape` where it declines, the one of most CTAs that
    holds the head. Pure Python: no compile, no occupancy query."""
    if direction == "forward":
        return choose_cluster(cell, dtype, DH, 1 << (B - 1).bit_length(), NH, device)
    chosen = choose_cluster_backward(cell, dtype, DH, B, NH, device)
    if chosen is None and any_shape:
        shapes = cluster_backward_configs(cell, dtype, split_head_dim(DH), math.gcd(DH, 8),
                                          device.shared_memory_per_block)
        chosen = next(iter(shapes), None)
    return chosen


def cluster_or_why(config, B: int, NH: int, device: DeviceLimits, forced: bool):
    """(the cluster config as the NVRTC in use compiles it without local memory, with the sequences a
    cluster for B, '') where one cluster of it can run on the device; else (None, why). Forced, a
    config that needs local memory runs as it is (slower, but what was asked for)."""
    if config is None:
        return None, "no cluster of at most 16 CTAs holds the head"
    if device.capability < (9, 0):
        return None, f"compute capability {device.capability} < (9, 0)"
    fitted = fit_to_compiler(config, device)
    if fitted is None and not forced:
        return None, f"{config.name_expression} needs local memory with this NVRTC"
    config = fitted or config
    at_once = clusters_at_once(config, device)
    if device.index is not None and at_once < 1:
        return None, f"the GPU cannot run one cluster of {config.parts} CTAs of {config.name_expression}"
    # the sequences a cluster (forward) or the tiles a launch (backward) are the call's, for this B
    return config.with_sequences(B, NH, at_once), ""
