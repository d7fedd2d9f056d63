"""The cost model of the `cuda_fused` kernels: one estimate of a plan's time,
which the tuner ranks its candidates by and the cluster rule picks its shape by.
One SM and the grid are modelled below; the cluster forward's step is modelled
with its shape (cluster.py, ClusterConfig.step_cycles), the cluster backward's
roughly (cluster_backward_cycles).

The kernels are latency-bound: a time step is a dependent chain on each warp
(the R h product, the cell's pointwise step, the store of h, a barrier), and
steps cannot overlap. So a step costs the longest of
  - the chain of one warp: the products' mma (and, where R is not held in
    registers, the ldmatrix of R in front of each), the pointwise step of its
    NT column tiles, the SM's scattered global stores (y; dx and drec
    backward), which stall the warps that issue them; for a split head also
    the sum of K slices through shared memory, the grid barrier and the
    reload of the exchanged values from L2;
  - the issue time of one warp scheduler, shared by every warp resident on it
    (the warps of the CTA, and of other CTAs on the same SM past one wave):
    the tensor pipe's share of every mma and the pointwise instructions;
  - the latency of the step's staged inputs over the DEPTH - 1 steps the
    cp.async ring runs ahead;
and a call costs T steps times the waves of CTAs the grid needs.

The cycle constants were fitted to the H100 measurements of 2026-11-25 (LSTM,
bf16, B=16, T=1024: docs/perf-notes.md, tests/data/h100-2026-11-25-cuda-*.json);
tests/test_tune.py compares the model's ranking with them and docs/tuning.md
reports how well it agrees. Other cells scale the pointwise terms by their
count of transcendental calls and divisions, counted on their traced steps
(pointwise_weight; not measured).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ....cells import get_cell
from ..runtime.device import WARP_SCHEDULERS, DeviceLimits
from .cluster import ClusterConfig, clusters_at_once
from .cluster_backward import ClusterBackwardConfig
from .grid import SplitConfig
from .registers import registers_needed


@dataclass(frozen=True)
class Cycles:
    """Costs in cycles of the SM clock, for one direction of the kernels."""
    pointwise: float  # one column tile of the LSTM cell's pointwise step on a warp's chain
    issue: float  # a scheduler's issue time for one column tile's pointwise step
    products: int  # matrix products a step: R h forward; R h and R^T drec backward
    store: float  # the SM's memory pipeline, one scattered store instruction of a warp
    mma: float = 14  # a scheduler's tensor pipe, one mma.m16n8k16
    fma_tile: float = 96  # fp32 on FMA units: one 16x16 by 8 tile, 64 FMAs a lane plus its loads
    ldmatrix: float = 90  # one ldmatrix.x4 of R on the chain (R read from shared memory)
    memory: float = 1300  # until a staged step's inputs land
    barrier: float = 2000  # a split head's grid barrier: release, then every CTA's acquire
    exchange: float = 1000  # the L2 round trip that reloads the exchanged values
    l2_bytes: float = 64  # bytes an SM reloads from L2 a cycle
    k_reduce: float = 700  # K slices summed through shared memory behind one more barrier


FORWARD = Cycles(pointwise=860, issue=420, products=1, store=10)
# the backward's loads of R run ahead of its products (cheap ldmatrix); its exchange
# also waits for every part's partial sums to land
BACKWARD = Cycles(pointwise=1550, issue=1300, products=2, ldmatrix=27, store=8, exchange=5200)

def pointwise_weight(cell: str, backward: bool) -> float:
    """The cell's pointwise work relative to the LSTM's, from its traced forward or backward:
    (2 + count) / 7, where count is its transcendental calls and divisions (LSTM: three
    sigmoids and two tanh, no division) and ~2 stands for its FMAs. A division counts as a
    transcendental: in fp32 it is a reciprocal on the special-function unit refined by
    Newton steps (NVRTC compiles IEEE division), as long a chain as a MUFU tanh or more."""
    symbolic = get_cell(cell).symbolic
    if backward:
        count = symbolic.backward_transcendentals + symbolic.backward_divisions
    else:
        count = symbolic.forward_transcendentals + symbolic.forward_divisions
    return (2 + count) / 7


def step_cycles(config, NH: int, B: int, limits: DeviceLimits) -> float:
    """Cycles of one time step on the busiest SM."""
    c = BACKWARD if config.backward else FORWARD
    spec = get_cell(config.cell)
    split = isinstance(config, SplitConfig)
    ctas = grid_ctas(config, NH, B)
    on_sm = 1 if split else min(config.ctas_per_sm(limits), math.ceil(ctas / limits.sm_count))
    warps_per_scheduler = math.ceil(config.threads // 32 * on_sm / WARP_SCHEDULERS)
    k_tiles = config.DHP // 16 // (config.KSPLIT if split else 1)
    tile = c.mma if config.dtype != torch.float32 else c.fma_tile
    product = c.products * spec.gates_r * k_tiles * config.NT * tile
    weight = pointwise_weight(config.cell, config.backward)
    chain = config.NT * c.pointwise * weight + product
    if not getattr(config, "r_in_registers", False):
        chain += c.products * spec.gates_r * k_tiles * c.ldmatrix
    # store instructions (32 lanes each) of the SM's CTAs; columns past B store nothing
    rows = config.ROWS if split else config.DHP
    stores = on_sm * min(config.batch_tile, B) * rows * stores_per_element(spec, config.backward) / 32
    chain += stores * c.store
    if split:
        chain += (c.k_reduce if config.KSPLIT > 1 else 0) + c.barrier + c.exchange
        chain += exchanged_bytes(config) / c.l2_bytes
    issue = warps_per_scheduler * (config.NT * c.issue * weight + product)
    return max(chain, issue, c.memory / (config.depth - 1))


def stores_per_element(spec, backward: bool) -> int:
    """Global stores a thread issues for one element a step: y forward (inference;
    training also stores the states the backward reads); dx and drec of every
    gate backward."""
    return spec.gates_x + spec.gates_r if backward else 1


def exchanged_bytes(config: SplitConfig) -> int:
    """Bytes a split CTA moves through L2 a step: forward, it reloads all of h;
    backward, it writes its partial sums (fp32) for every unit of the head and
    reads back every part's for its own rows."""
    if config.backward:
        return 2 * config.batch_tile * config.DHP * 4
    return config.batch_tile * config.DHP * config.dtype.itemsize


def grid_ctas(config, NH: int, B: int) -> int:
    tiles = math.ceil(B / config.batch_tile)
    return NH * tiles * (config.parts if isinstance(config, SplitConfig) else 1)


def estimated_ms(config, NH: int, B: int, limits: DeviceLimits, T: int = 1024) -> float:
    """The model's time of one kernel over T steps, in milliseconds."""
    if isinstance(config, ClusterConfig):
        return T * config.call_cycles(B, NH, clusters_at_once(config, limits)) / (limits.clock_mhz * 1e3)
    if isinstance(config, ClusterBackwardConfig):
        return T * cluster_backward_cycles(config, NH, B, limits) / (limits.clock_mhz * 1e3)
    split = isinstance(config, SplitConfig)
    waves = 1 if split else math.ceil(grid_ctas(config, NH, B) / (limits.sm_count * config.ctas_per_sm(limits)))
    return waves * T * step_cycles(config, NH, B, limits) / (limits.clock_mhz * 1e3)


def rank(configs, NH: int, B: int, limits: DeviceLimits) -> list:
    """The configurations, fastest first by the model; among equals the deeper ring
    (more slack for the memory latency), then fewer threads."""
    return sorted(configs, key=lambda c: (estimated_ms(c, NH, B, limits), -c.depth, c.threads, c.name_expression))


def cluster_backward_cycles(config: ClusterBackwardConfig, NH: int, B: int, limits: DeviceLimits) -> float:
    """A step of the cluster backward, roughly: the product dh = R^T drec on the tensor cores
    (R^T from shared memory where not in registers), the cell's backward, the partial sums
    pushed to their owners and the cluster's barrier; waves of clusters past what the GPU
    holds at once. Not fitted to measurements: it orders shapes, it does not predict times."""
    G = get_cell(config.cell).gates_r
    k_tiles = G * config.ROWS // 16
    product = config.blocks_per_warp * k_tiles * (FORWARD.mma + (0 if config.reg_blocks else BACKWARD.ldmatrix))
    chain = product + BACKWARD.pointwise * pointwise_weight(config.cell, True) + 1300  # the cluster barrier and DSMEM
    clusters = NH * math.ceil(B / config.batch_tile)
    waves = math.ceil(clusters / max(1, limits.sm_count // config.parts))
    return waves * chain
