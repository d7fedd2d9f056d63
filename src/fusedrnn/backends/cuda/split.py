"""Heads too large for one SM: split over several CTAs a head, which exchange
h (forward, csrc/split_forward.cuh) or partial sums of dh (backward,
csrc/split_backward.cuh) through global memory every step behind a barrier
of the head's CTAs. They must all be resident at once, so the
kernel is launched cooperatively and the plan never asks for more CTAs than
the GPU has SMs.

On Hopper and later the forward runs instead, where the head fits 16 CTAs, on
the CTAs of a thread-block cluster that exchange h through each other's shared
memory (cluster.py), and so does the backward of half types where its inbox of
partial sums fits beside R (cluster_backward.py; the grid's otherwise).
FUSEDRNN_SPLIT picks: `grid`, `cluster` (raises where no cluster can run the
forward; runs the plan even where it needs local memory, slower but correct;
the backward on the cluster wherever it has a plan) or `auto`, the default: a
cluster where the NVRTC in use compiles the plan without local memory
(cluster.fit_to_compiler), the grid elsewhere. Measured on the H100
(docs/perf-notes.md, 2026-11-26): 256x3 runs 1.20 ms on a cluster against 2.41
on the grid, 768x1 2.63 against 3.11; forward+backward with the cluster
backward 2.50 and 5.75 ms against 6.54 and 8.74 with the grid's. (Before the
cluster product read its fragments at immediate offsets, NVRTC 13.0 spilled
the 768x1 plan, 10.5 ms; the check keeps such a compiler on the grid.)"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from ...cells import get_cell
from .. import outputs
from .fused import CELL_TYPES, MAX_THREADS, SHARED_MEMORY_LIMIT, STORAGE_TYPES, _ring_bytes
from .launch import gpu_name, launch

TARGET_WARPS = 8  # a CTA's warps: row blocks x K slices
PAD_TO = 128  # split heads are padded to a multiple of 128: few instantiations, K slices of 8
MAX_HEAD_DIM = 2048


def split_head_dim(DH: int) -> int:
    return -(-DH // PAD_TO) * PAD_TO


@dataclass(frozen=True)
class HeadSplit:
    """A head split over DHP / ROWS CTAs (the forward's and the backward's kernels)."""
    cell: str
    dtype: torch.dtype
    DHP: int
    ROWS: int  # rows of every gate (units) a CTA computes: DHP / ROWS CTAs a head

    @property
    def parts(self) -> int:
        return self.DHP // self.ROWS


@dataclass(frozen=True)
class SplitShape(HeadSplit):
    """What every forward kernel of a head split over CTAs is made of (the cooperative
    grid's here, the cluster's in cluster.py)."""
    KSPLIT: int  # warps side by side along K
    NT: int      # column tiles of 8: BT = 8 * NT sequences a CTA
    depth: int
    vec: int
    fast_math: bool

    @property
    def batch_tile(self) -> int:
        return 8 * self.NT

    @property
    def warps(self) -> int:
        return self.ROWS // 16 * self.KSPLIT

    @property
    def threads(self) -> int:
        return 32 * self.warps


@dataclass(frozen=True)
class SplitConfig(SplitShape):
    backward: bool = False

    @property
    def shared_memory(self) -> int:
        """Dynamic shared memory bytes, as the kernels carve it up."""
        spec, size, BT, ROWS = get_cell(self.cell), self.dtype.itemsize, self.batch_tile, self.ROWS
        pad = 16 // size
        total = spec.gates_r * ROWS * (self.DHP + pad) * size  # R rows
        total += _ring_bytes(spec.gates_x, ROWS, size, BT, self.depth)  # x
        total += (self.KSPLIT - 1) * ROWS // 16 * 4 * self.NT * 4 * 32 * 4  # partial products
        if not self.backward:
            return total + BT * (self.DHP + pad) * size  # all of h
        total += BT * (spec.gates_r * ROWS + pad) * size  # drec
        total += _ring_bytes(1, self.DHP, size, BT, self.depth)  # all of h_{t-1}
        total += _ring_bytes(1, ROWS, size, BT, self.depth)  # dy
        total += _ring_bytes(max(spec.num_states - 1, 1), ROWS, 4, BT, self.depth)  # saved states
        return total + BT * ROWS * 4  # summed dh

    def fits(self, NH: int, B: int, sm_count: int) -> bool:
        """Whether it can run NH heads of B sequences on a GPU of `sm_count` SMs: a
        block within the limits, the head in whole CTAs and K slices, and every CTA
        of the cooperative grid resident at once (one an SM)."""
        return (self.threads <= MAX_THREADS and self.shared_memory <= SHARED_MEMORY_LIMIT
                and self.DHP % self.ROWS == 0 and (self.DHP // 16) % self.KSPLIT == 0
                and self.parts * NH * math.ceil(B / self.batch_tile) <= sm_count)

    @property
    def name_expression(self) -> str:
        cell, storage, fast = CELL_TYPES[self.cell], STORAGE_TYPES[self.dtype], str(self.fast_math).lower()
        kernel = "fused_split_backward_kernel" if self.backward else "fused_split_forward_kernel"
        return (f"fusedrnn::{kernel}<{cell}, {storage}, {self.DHP}, {self.ROWS}, {self.KSPLIT}, "
                f"{self.NT}, {self.depth}, {self.vec}, {fast}>")


ROWS_CHOICES = (16, 32)  # rows a CTA: 16 (most CTAs, least work each), or 32 when 16 needs too many CTAs


def split_config(cell: str, dtype: torch.dtype, DH: int, B: int, ROWS: int, backward: bool = False,
                 NT_choices: tuple[int, ...] = (2, 1)):
    """The split instantiation with ROWS rows a CTA: the first batch tile of
    NT_choices (8 * NT sequences; only 8 for B <= 8), then the deepest input ring,
    that fits shared memory; None when none fits."""
    DHP = split_head_dim(DH)
    k_tiles, row_blocks = DHP // 16, ROWS // 16
    KSPLIT = max(d for d in range(1, k_tiles + 1) if k_tiles % d == 0 and row_blocks * d <= TARGET_WARPS)
    for NT in NT_choices if B > 8 else (1,):
        for depth in (4, 3, 2):
            config = SplitConfig(cell=cell, dtype=dtype, DHP=DHP, ROWS=ROWS, KSPLIT=KSPLIT, NT=NT, depth=depth,
                                 vec=math.gcd(DH, 8), fast_math=dtype == torch.bfloat16, backward=backward)
            if config.shared_memory <= SHARED_MEMORY_LIMIT:
                return config
    return None


def choose_split(cell: str, dtype: torch.dtype, DH: int, B: int, NH: int, sm_count: int, backward: bool = False,
                 *, tuned_for: str | None = None):
    """With `tuned_for` (a GPU's name), the winner `fusedrnn.tune` measured for the
    call on that GPU, when its cache holds one that still fits. Otherwise the split
    with the fewest rows a CTA (least work between barriers), then the narrowest
    batch tile (more CTAs, each with less to do: 768x1 at B=16 runs 1.4x faster
    on 96 CTAs of 8 sequences than on 48 of 16, docs/perf-notes.md), whose CTAs
    all fit the GPU at once; None when there is none."""
    if DH > MAX_HEAD_DIM:
        return None
    if tuned_for is not None:
        from ...tune.cache import tuned_winner  # not at the top: the tuner imports this module

        tuned = tuned_winner(SplitConfig, tuned_for, cell, dtype, DH, NH, B, backward, split_head_dim(DH))
        if tuned is not None and tuned.fits(NH, B, sm_count):
            return tuned
    for ROWS in ROWS_CHOICES:
        for NT in (1, 2):
            config = split_config(cell, dtype, DH, B, ROWS, backward, NT_choices=(NT,))
            if config is not None and config.fits(NH, B, sm_count):
                return config
    return None


def _arrival_flags(tiles: int, NH: int, parts: int, device) -> torch.Tensor:
    """One flag a CTA, each on its own 128-byte line (csrc/grid_barrier.cuh), zeroed."""
    return torch.zeros((tiles, NH, parts, 32), dtype=torch.int32, device=device)


DEFAULT_SPLIT = "auto"


def _split_mode() -> str:
    mode = os.environ.get("FUSEDRNN_SPLIT", DEFAULT_SPLIT)
    if mode not in ("auto", "cluster", "grid"):
        raise ValueError(f"FUSEDRNN_SPLIT={mode!r}: expected 'auto', 'cluster' or 'grid'")
    return mode


# auto runs sequences shorter than this on the grid: a cluster holds a head on fewer SMs, so each
# loads more of R before the first step (768x1, one step from a CUDA graph on the H100: 23.4 us on
# the cluster, 14.6 on the grid), which its faster steps (0.6 us a step) repay after ~15 steps
CLUSTER_MIN_STEPS = 16


def _fitted_cluster(config, why, fit, resident, x, mode):
    """The cluster plan `config` as `fit` (the NVRTC in use) compiles it without local memory,
    if one cluster of it can run on x's GPU; else None, or, where FUSEDRNN_SPLIT=cluster forces
    the cluster, the plan as it is (slower but correct) or an error saying why not."""
    capability = torch.cuda.get_device_capability(x.device)
    if capability < (9, 0):
        config, why = None, f"compute capability {capability} < (9, 0)"
    if mode == "auto" and x.shape[1] < CLUSTER_MIN_STEPS:
        return None
    if config is not None:
        fitted = fit(config, "sm_{}{}".format(*capability))
        if fitted is not None or mode == "auto":
            config, why = fitted, f"{config.name_expression} needs local memory with this NVRTC"
    if config is not None and resident(config, x.device.index) < 1:
        config, why = None, f"the GPU cannot run one cluster of {config.parts} CTAs of {config.name_expression}"
    if config is None and mode == "cluster":
        raise ValueError(f"FUSEDRNN_SPLIT=cluster: {why}")
    return config


def _cluster_plan(cell, x, sm_count):
    """The cluster instantiation for this forward, or None for the cooperative grid."""
    from .cluster import choose_cluster, clusters_at_once, clusters_resident, fit_to_compiler

    mode = _split_mode()
    if mode == "grid":
        return None
    B, _, _, NH, DH = x.shape
    # one plan per power-of-two batch bucket: a new batch size seldom compiles a kernel
    bucket = 1 << (B - 1).bit_length()
    config = choose_cluster(cell, x.dtype, DH, bucket, NH, sm_count)
    config = _fitted_cluster(config, f"no cluster of <= 16 CTAs holds DH={DH}", fit_to_compiler, clusters_resident,
                             x, mode)
    # the sequences a cluster is a launch argument: chosen for this B and what this GPU runs at once
    return None if config is None else config.with_sequences(B, NH, clusters_at_once(config, x.device.index, sm_count))


def cluster_backward_plan(cell, x, sm_count):
    """The cluster instantiation for this backward (cluster_backward.choose_cluster_backward:
    half types, where the inbox of partial sums fits beside R; heads that fit one SM where
    that measured faster), or None: the grid for heads over one SM, else the one-SM kernel.
    `cluster` forces the plan wherever one exists and raises only where it cannot run."""
    from .cluster import clusters_resident, fit_to_compiler
    from .cluster_backward import choose_cluster_backward

    mode = _split_mode()
    B, _, _, NH, DH = x.shape
    config = None if mode == "grid" else choose_cluster_backward(cell, x.dtype, DH, B, NH, sm_count)
    if config is None:
        return None
    return _fitted_cluster(config, "", fit_to_compiler, clusters_resident, x, mode)


def split_forward(x, R, b, states, lengths, cell, need_saved, sm_count):
    cluster = _cluster_plan(cell, x, sm_count)
    if cluster is not None:
        from .cluster import cluster_forward

        return cluster_forward(cluster, x, R, b, states, lengths, need_saved)
    B, T, _, NH, DH = x.shape
    spec = get_cell(cell)
    config = choose_split(cell, x.dtype, DH, B, NH, sm_count, backward=False, tuned_for=gpu_name(x.device))
    tiles = math.ceil(B / config.batch_tile)
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved = outputs.empty(outputs.saved_states_shape(x, states, need_saved), like=x, dtype=torch.float32)
    exchange = torch.empty((2, B, NH, DH), dtype=x.dtype, device=x.device)
    arrivals = _arrival_flags(tiles, NH, config.parts, x.device)
    launch(config.name_expression, (NH * config.parts, tiles, 1), config.threads, config.shared_memory, x.device,
           x, R, b, states, lengths, y, final, saved if need_saved and spec.num_states > 1 else None,
           exchange, arrivals, B, T, NH, DH, cooperative=True)
    return y, final, saved


def shipped_split_configs() -> list[SplitConfig]:
    """Every split instantiation a call can select: each cell, dtype, padded head
    dim, rows a CTA, small and large batches; row-copy widths other than 8
    sampled at one head dim."""
    configs = set()
    for cell in CELL_TYPES:
        for dtype in STORAGE_TYPES:
            for DHP in range(PAD_TO, MAX_HEAD_DIM + 1, PAD_TO):
                for DH in [DHP] + ([DHP - 2, DHP - 4, DHP - 7] if DHP == 256 else []):
                    for B in (8, 16):
                        for ROWS in ROWS_CHOICES:
                            for backward in (False, True):
                                config = split_config(cell, dtype, DH, B, ROWS, backward)
                                if config is not None:
                                    configs.add(config)
    return sorted(configs, key=lambda c: c.name_expression)


def split_backward(dy, dfinal, x, R, b, states, lengths, y, saved, cell, sm_count, h_prev, cluster=None):
    """On `cluster` (cluster_backward_plan's) where given, else over the cooperative grid."""
    if cluster is not None:
        from .cluster_backward import cluster_backward

        return cluster_backward(cluster, dy, dfinal, x, R, b, states, lengths, y, saved, h_prev)
    B, T, _, NH, DH = x.shape
    spec = get_cell(cell)
    config = choose_split(cell, x.dtype, DH, B, NH, sm_count, backward=True, tuned_for=gpu_name(x.device))
    tiles = math.ceil(B / config.batch_tile)
    dx = outputs.empty(x.shape, like=x)
    drec = outputs.empty((NH, B * T, spec.gates_r * DH), like=x, dtype=torch.float32)
    db_partial = outputs.empty((tiles, spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    dstates = outputs.empty(states.shape, like=states)
    partials = torch.empty((2, config.parts, B, NH, config.DHP), dtype=torch.float32, device=x.device)
    arrivals = _arrival_flags(tiles, NH, config.parts, x.device)
    launch(config.name_expression, (NH * config.parts, tiles, 1), config.threads, config.shared_memory, x.device,
           x, R, b, states, lengths, y, saved, dy, dfinal, dx, drec, db_partial, dstates, partials, arrivals,
           B, T, NH, DH, cooperative=True)
    return dx, drec, db_partial, dstates
