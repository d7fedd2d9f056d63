"""The backward of heads split over a thread-block cluster (Hopper and later,
half types; csrc/cluster_backward.cuh). The recurrent pre-activations of every
step are one GEMM first (fp32 out), so the kernel's only product is
dh = R^T drec; each CTA holds its rows of R, transposed, in registers and
shared memory, and sends each block of the product's partial sums to the CTA
that owns the block's units.

The plan: 8 warps (so a thread may hold 255 registers), one column tile of 8
sequences a cluster (the partial sums are fp32: a wider tile would double the
inbox), the most CTAs a cluster (<= 16) that keeps every cluster of the call
resident at once, and as many of a warp's blocks of R in registers as compile
without local memory (cluster.fit_to_compiler). Heads over one SM take it
wherever it has a plan; heads that fit one take it where it measured faster
than the one-SM backward (ONE_SM_MIN_HEAD_DIM)."""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ....cells import get_cell
from ..cxx import Kernel, cell_unit
from ..runtime.device import DeviceLimits
from .grid import MAX_HEAD_DIM, HeadSplit, split_head_dim
from .one_sm import fits_one_sm, reset_ring_bytes, ring_bytes

SOURCE = Path(__file__).parent / "csrc" / "cluster_backward.cu"
KERNEL = Kernel("fused_cluster_backward_kernel",
                ("cell", "dtype", "DHP", "ROWS", "warps", "depth", "vec", "reg_blocks", "fast_math", "x_in_rh",
                 "resets"),
                pointers=("x", "R", "b", "states", "lengths", "resets", "y", "h_entering", "saved", "dy", "dfinal",
                          "rh", "dx", "drec", "db_partial", "dstates"),
                ints=("B", "T", "NH", "DH", "first_tile"))

WARPS = 8
BATCH_TILE = 8
MAX_CLUSTER = 16
# registers a thread needs beside its fragments of R (the product's accumulators, the pairs'
# states and biases, addresses): fitted to ptxas's reports (tests/test_cuda_compile.py)
OTHER_REGISTERS = 80
OTHER_PER_BLOCK = 4  # an accumulator a block of 16 units


@dataclass(frozen=True)
class ClusterBackwardConfig(HeadSplit):  # ROWS: the units a CTA owns
    depth: int
    vec: int
    reg_blocks: int  # of a warp's blocks of 16 units of R^T, those held in registers
    fast_math: bool
    # x comes added into rh (the launcher's GEMM), not staged: a ring less of shared memory, for
    # cells whose gates are sums, where only so the shape fits (sLSTM 768x1); elsewhere the add
    # costs more than the ring saves (LSTM 64x12 B=16 fwd+bwd 1.67 -> 1.96 ms on the H100)
    x_in_rh: bool = False
    # the kernel reads `resets` (csrc/resets.cuh); without, every reset test folds away at compile time
    resets: bool = False
    # the batch tiles a launch runs, R h computed for them alone before it (0: every tile in one
    # launch): a wave of clusters a launch where the call runs in waves, so that R h (fp32, 3.2 GB
    # at 768x1 B=256) is held a wave at a time; with_sequences sets it for a call
    launch_tiles: int = 0
    REGISTER_FIELD = "reg_blocks"  # what cluster.fit_to_compiler lowers (class attributes, not fields)
    kernel = KERNEL
    backward = True

    @property
    def source(self):
        """The translation unit: csrc/cluster_backward.cu, with the cell's struct where it is generated."""
        return cell_unit(SOURCE, self.cell)

    @property
    def warps(self) -> int:
        return WARPS

    @property
    def batch_tile(self) -> int:
        return BATCH_TILE

    @property
    def threads(self) -> int:
        return 32 * WARPS

    @property
    def blocks_per_warp(self) -> int:
        return self.DHP // 16 // WARPS

    @property
    def shared_memory(self) -> int:
        """Dynamic shared memory bytes, as the kernel carves it up."""
        spec, size, BT, ROWS = get_cell(self.cell), self.dtype.itemsize, BATCH_TILE, self.ROWS
        pad = 16 // size
        shared_blocks = self.blocks_per_warp - self.reg_blocks
        lds = WARPS * shared_blocks * 16 + pad if shared_blocks else 0
        weights = spec.gates_r * ROWS * lds * size  # R^T not in registers
        total = BT * (spec.gates_r * ROWS + pad) * size  # the drec tile
        total += ring_bytes(0 if self.x_in_rh else spec.gates_x, ROWS, size, BT, self.depth)  # x
        total += 2 * ring_bytes(1, ROWS, size, BT, self.depth)  # h_{t-1}, dy
        total += ring_bytes(spec.gates_r, ROWS, 4, BT, self.depth)  # R h_{t-1}
        total += ring_bytes(max(spec.num_states - 1, 1), ROWS, 4, BT, self.depth)  # saved states
        total += 2 * self.parts * ROWS * BT * 4  # the inbox of partial sums
        total += 16  # its two mbarriers
        total += reset_ring_bytes(BT, self.depth) if self.resets else 0  # the reset words
        # the register blocks are staged, before the loop, where the drec tile, rings and inbox go
        stage = spec.gates_r * ROWS * (WARPS * 16 + pad) * size if self.reg_blocks else 0
        return weights + max(total, stage)

    @property
    def name_expression(self) -> str:
        return KERNEL.name_expression(self)

    @functools.lru_cache(maxsize=None)  # asked at every launch
    def with_sequences(self, B: int, NH: int, clusters_at_once: int) -> "ClusterBackwardConfig":
        """This shape with the tiles a launch for a call of B sequences and NH heads: where its
        clusters run in waves, as many launches as waves, each of the fewest tiles that still
        fill one (none added: 768x1, B=256, 7 clusters at once: 5 launches of 7 tiles); else,
        or where NH heads do not divide a wave, every tile in one launch."""
        tiles = math.ceil(B / BATCH_TILE)
        waves = math.ceil(NH * tiles / max(1, clusters_at_once))
        per_launch = math.ceil(tiles / waves)
        split = waves > 1 and NH * per_launch <= clusters_at_once
        return dataclasses.replace(self, launch_tiles=per_launch if split else 0)


def register_blocks(cell: str, ROWS: int, blocks_per_warp: int) -> int:
    """How many of a warp's blocks of R^T its threads can hold (4 registers a K tile)."""
    k_tiles = get_cell(cell).gates_r * ROWS // 16
    free = 255 - OTHER_REGISTERS - OTHER_PER_BLOCK * blocks_per_warp
    return max(0, min(blocks_per_warp, free // (4 * k_tiles)))


def cluster_backward_configs(cell: str, dtype: torch.dtype, DHP: int, vec: int, shared_memory_per_block: int):
    """Every shape that fits one SM a CTA, most CTAs first, with the deepest input ring."""
    if dtype == torch.float32:  # the product runs on tensor cores only
        return
    for parts in range(MAX_CLUSTER, 1, -1):
        ROWS = DHP // parts
        if DHP % parts or ROWS % 16 or (DHP // 16) % WARPS:
            continue
        blocks = DHP // 16 // WARPS
        for reg_blocks in range(register_blocks(cell, ROWS, blocks), -1, -1):
            fitting = [ClusterBackwardConfig(cell=cell, dtype=dtype, DHP=DHP, ROWS=ROWS, depth=depth, vec=vec,
                                             reg_blocks=reg_blocks, fast_math=dtype == torch.bfloat16,
                                             x_in_rh=x_in_rh)
                       for x_in_rh in (False, True)[:1 + get_cell(cell).gates_are_sums] for depth in (4, 3, 2)]
            fitting = [c for c in fitting if c.shared_memory <= shared_memory_per_block]
            if fitting:
                yield fitting[0]
                break


# Heads that fit one SM take the cluster too where it measured faster: LSTM bf16, B=16, T=1024 on
# the H100, one-SM forward with the one-SM / cluster backward, fwd+bwd ms: 32x24 1.73 / 1.99,
# 64x12 2.31 / 1.79, 96x8 3.13 / 2.12, 128x6 4.25 / 2.02 (docs/perf-notes.md). Cells from DH
# 64 of three or four recurrent gates (Elman, one gate, keeps the one-SM kernel: 64x12 1.00 / 1.17
# ms, 2026-12-07), and only where every cluster of the call runs at once (a large batch keeps the
# one-SM kernel, whose CTAs hold 16 sequences and more).
ONE_SM_MIN_HEAD_DIM = 64
ONE_SM_MIN_GATES = 3


@functools.lru_cache(maxsize=None)
def choose_cluster_backward(cell: str, dtype: torch.dtype, DH: int, B: int, NH: int, device: DeviceLimits):
    """The shape with the most CTAs a cluster whose clusters all run at once (else,
    for a head over one SM, the most CTAs), or None when no cluster holds the head or
    the one-SM kernel is the better choice."""
    one_sm, sm_count = fits_one_sm(cell, dtype, DH, B, device), device.sm_count
    if DH > MAX_HEAD_DIM or one_sm and (DH < ONE_SM_MIN_HEAD_DIM or get_cell(cell).gates_r < ONE_SM_MIN_GATES):
        return None
    configs = list(cluster_backward_configs(cell, dtype, split_head_dim(DH), math.gcd(DH, 8),
                                            device.shared_memory_per_block))
    clusters = NH * math.ceil(B / BATCH_TILE)
    for config in configs:
        if clusters * config.parts <= sm_count:
            return config
    return configs[0] if configs and not one_sm else None
