"""Heads too large for one SM, split over several CTAs of a cooperative grid
(csrc/grid.cu), which exchange h (forward) or partial sums of dh (backward)
through global memory every step behind a barrier of the head's CTAs. They
must all be resident at once, so the kernel is launched cooperatively and no
configuration asks for more CTAs than the GPU has SMs. Any GPU from sm_80;
on Hopper the planner prefers a thread-block cluster (cluster.py) where one
holds the head (plan.py says when)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ....cells import get_cell
from ..cxx import Kernel, cell_unit
from ..runtime.device import DeviceLimits
from .one_sm import reset_ring_bytes, ring_bytes
from .registers import registers_needed

SOURCE = Path(__file__).parent / "csrc" / "grid.cu"
TEMPLATE = ("cell", "dtype", "DHP", "ROWS", "KSPLIT", "NT", "depth", "vec", "fast_math", "resets")
FORWARD_KERNEL = Kernel("fused_split_forward_kernel", TEMPLATE,
                        pointers=("x", "R", "b", "states", "lengths", "resets", "y", "final", "saved", "exchange",
                                  "arrivals"),
                        ints=("B", "T", "NH", "DH"))
BACKWARD_KERNEL = Kernel("fused_split_backward_kernel", TEMPLATE,
                         pointers=("x", "R", "b", "states", "lengths", "resets", "y", "h_entering", "saved", "dy",
                                   "dfinal", "dx", "drec", "db_partial", "dstates", "partials", "arrivals"),
                         ints=("B", "T", "NH", "DH"))

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
    # the kernel reads `resets` (csrc/resets.cuh); without, every reset test folds away at compile time
    resets: bool = False

    @property
    def source(self):
        """The translation unit: csrc/grid.cu, with the cell's struct where it is generated."""
        return cell_unit(SOURCE, self.cell)

    @property
    def shared_memory(self) -> int:
        """Dynamic shared memory bytes, as the kernels carve it up."""
        spec, size, BT, ROWS = get_cell(self.cell), self.dtype.itemsize, self.batch_tile, self.ROWS
        pad = 16 // size
        total = spec.gates_r * ROWS * (self.DHP + pad) * size  # R rows
        total += ring_bytes(spec.gates_x, ROWS, size, BT, self.depth)  # x
        total += (self.KSPLIT - 1) * ROWS // 16 * 4 * self.NT * 4 * 32 * 4  # partial products
        total += reset_ring_bytes(BT, self.depth) if self.resets else 0  # the reset words
        if not self.backward:
            return total + BT * (self.DHP + pad) * size  # all of h
        total += BT * (spec.gates_r * ROWS + pad) * size  # drec
        total += ring_bytes(1, self.DHP, size, BT, self.depth)  # all of h_{t-1}
        total += ring_bytes(1, ROWS, size, BT, self.depth)  # dy
        total += ring_bytes(max(spec.num_states - 1, 1), ROWS, 4, BT, self.depth)  # saved states
        return total + BT * ROWS * 4  # summed dh

    @property
    def split_forward(self) -> bool:
        """The forward kernel (registers.py estimates its registers apart from the others')."""
        return not self.backward

    def fits(self, NH: int, B: int, device: DeviceLimits) -> bool:
        """Whether it can run NH heads of B sequences on a GPU of `sm_count` SMs: a
        block within the limits (its registers by registers.py's estimate), the head in
        whole CTAs and K slices, and every CTA of the cooperative grid resident at once
        (one an SM)."""
        return (self.threads <= device.max_threads_per_block and self.shared_memory <= device.shared_memory_per_block
                and registers_needed(self) <= device.register_cap(self.threads)
                and self.DHP % self.ROWS == 0 and (self.DHP // 16) % self.KSPLIT == 0
                and self.parts * NH * math.ceil(B / self.batch_tile) <= device.sm_count)

    @property
    def kernel(self) -> Kernel:
        return BACKWARD_KERNEL if self.backward else FORWARD_KERNEL

    @property
    def name_expression(self) -> str:
        return self.kernel.name_expression(self)


ROWS_CHOICES = (16, 32)  # rows a CTA: 16 (most CTAs, least work each), or 32 when 16 needs too many CTAs
# batch tiles of 8, 16 or 32 sequences (NT): the widest is how a 768 head runs 64 sequences in one
# wave of 96 CTAs (16 rows each); the backward's buffers do not fit shared memory past 16
SPLIT_NT_CHOICES = (1, 2, 4)


def split_config(cell: str, dtype: torch.dtype, DH: int, B: int, ROWS: int, backward: bool,
                 shared_memory_per_block: int, NT_choices: tuple[int, ...] = (2, 1), resets: bool = False):
    """The split instantiation with ROWS rows a CTA: the first batch tile of
    NT_choices (8 * NT sequences; only 8 for B <= 8), then the deepest input ring,
    that fits shared memory (with `resets`, in the form that reads them: its reset
    ring too; the config returned is the form without, with_resets makes the other);
    None when none fits."""
    DHP = split_head_dim(DH)
    k_tiles, row_blocks = DHP // 16, ROWS // 16
    KSPLIT = max(d for d in range(1, k_tiles + 1) if k_tiles % d == 0 and row_blocks * d <= TARGET_WARPS)
    for NT in NT_choices if B > 8 else (1,):
        for depth in (4, 3, 2):
            config = SplitConfig(cell=cell, dtype=dtype, DHP=DHP, ROWS=ROWS, KSPLIT=KSPLIT, NT=NT, depth=depth,
                                 vec=math.gcd(DH, 8), fast_math=dtype == torch.bfloat16, backward=backward)
            if dataclasses.replace(config, resets=resets).shared_memory <= shared_memory_per_block:
                return config
    return None


def rule_split(cell: str, dtype: torch.dtype, DH: int, B: int, NH: int, backward: bool, device: DeviceLimits,
               resets: bool = False):
    """The rule's split (the planner's, where no tuned winner exists): the fewest rows a CTA (least work between barriers), then the narrowest
    batch tile (more CTAs, each with less to do: 768x1 at B=16 runs 1.4x faster
    on 96 CTAs of 8 sequences than on 48 of 16, docs/perf-notes.md), whose CTAs
    all fit the GPU at once, in the form that reads resets where the call has them
    (a few more registers); None when there is none."""
    if DH > MAX_HEAD_DIM:
        return None
    for ROWS in ROWS_CHOICES:
        for NT in SPLIT_NT_CHOICES:
            config = split_config(cell, dtype, DH, B, ROWS, backward, device.shared_memory_per_block, NT_choices=(NT,),
                                  resets=resets)
            if config is not None and dataclasses.replace(config, resets=resets).fits(NH, B, device):
                return config
    return None
