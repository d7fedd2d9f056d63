"""Heads on one SM: the kernel instantiations (csrc/one_sm.cu) that run one
head and batch tile a CTA with all of R on chip, their shared-memory budget,
and the rule that picks one for a call where no tuned winner exists."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ....cells import get_cell
from ..cxx import STORAGE_TYPES, Kernel, cell_unit
from ..runtime.compile import compile_kernel
from ..runtime.device import DeviceLimits
from .registers import registers_needed

SOURCE = Path(__file__).parent / "csrc" / "one_sm.cu"
FORWARD_KERNEL = Kernel(
    "fused_forward_kernel",
    ("cell", "dtype", "DHP", "NT", "WN", "depth", "vec", "r_in_registers", "fast_math", "resets"),
    pointers=("x", "R", "b", "states", "lengths", "resets", "y", "final", "saved"), ints=("B", "T", "NH", "DH"))
BACKWARD_KERNEL = Kernel(
    "fused_backward_kernel", ("cell", "dtype", "DHP", "NT", "WN", "depth", "vec", "fast_math", "resets"),
    pointers=("x", "R", "b", "states", "lengths", "resets", "y", "h_entering", "saved", "dy", "dfinal", "dx", "drec",
              "db_partial", "dstates"), ints=("B", "T", "NH", "DH"))


def ring_bytes(rows: int, DHP: int, itemsize: int, BT: int, depth: int) -> int:
    """Shared memory of a StepRing (csrc/ring.cuh) of `rows` rows a sequence."""
    pad = 16 // itemsize
    row_stride = rows * (DHP + pad) + (pad if rows > 1 else 0)
    return depth * BT * row_stride * itemsize


def reset_ring_bytes(BT: int, depth: int, tile_aligned: bool = True) -> int:
    """Shared memory of a ResetRing (csrc/resets.cuh): the words a tile of BT sequences spans (from a
    multiple of BT where tile_aligned, from any sequence otherwise), a slot a step."""
    if tile_aligned and 32 % BT == 0:
        words = 1
    elif tile_aligned and BT % 32 == 0:
        words = BT // 32
    else:
        words = (BT + 30) // 32 + 1
    return 4 * depth * words


@dataclass(frozen=True)
class FusedConfig:
    """One kernel instantiation: the head dim padded to 16 (DHP), NT column tiles
    of 8 per warp, WN warps along the batch (so BT = 8 * NT * WN sequences per
    CTA), the depth of the cp.async rings that stage each step's inputs, and
    whether the forward keeps its fragments of R in registers. The head dim
    itself, B and T are kernel arguments."""
    cell: str
    dtype: torch.dtype
    DHP: int
    backward: bool
    NT: int = 1
    WN: int = 2
    depth: int = 4
    vec: int = 8  # elements of a row copied at once: the largest of 8, 4, 2, 1 dividing DH
    r_in_registers: bool = False
    fast_math: bool = False
    # the kernel reads `resets` (csrc/resets.cuh); without, every reset test folds away at compile time
    resets: bool = False

    @property
    def batch_tile(self) -> int:
        return 8 * self.NT * self.WN

    @property
    def threads(self) -> int:
        return 32 * self.DHP // 16 * self.WN

    @property
    def shared_memory(self) -> int:
        """Dynamic shared memory bytes, as the kernels carve it up."""
        spec, size, DHP, BT = get_cell(self.cell), self.dtype.itemsize, self.DHP, self.batch_tile
        pad = 16 // size
        total = spec.gates_r * DHP * (DHP + pad) * size  # R
        total += ring_bytes(spec.gates_x, DHP, size, BT, self.depth)  # x
        total += reset_ring_bytes(BT, self.depth) if self.resets else 0  # the reset words
        if not self.backward:
            return total + 2 * BT * (DHP + pad) * size  # h, double-buffered
        total += 2 * BT * (spec.gates_r * DHP + pad) * size  # drec, double-buffered
        total += 2 * ring_bytes(1, DHP, size, BT, self.depth)  # h_{t-1} and dy
        return total + ring_bytes(max(spec.num_states - 1, 1), DHP, 4, BT, self.depth)  # saved states, fp32

    @property
    def static_shared_memory(self) -> int:
        return 4 * self.WN * 4 * self.DHP if self.backward else 0

    @property
    def kernel(self) -> Kernel:
        return BACKWARD_KERNEL if self.backward else FORWARD_KERNEL

    @property
    def source(self):
        """The translation unit: csrc/one_sm.cu, with the cell's struct where it is generated."""
        return cell_unit(SOURCE, self.cell)

    @property
    def name_expression(self) -> str:
        return self.kernel.name_expression(self)

    def fits(self, device: DeviceLimits) -> bool:
        return (self.threads <= device.max_threads_per_block
                and self.shared_memory + self.static_shared_memory <= device.shared_memory_per_block)

    def ctas_per_sm(self, device: DeviceLimits, registers: int | None = None) -> int:
        """CTAs of this instantiation one SM holds at once (its threads, shared memory and
        `registers` a thread: the compiled kernel's where given, else the register model's,
        registers.py, which is what admits a shape without spills and counts the backward's
        short: 130 for LSTM 64x12's, which ptxas compiles to 166), at least 1."""
        shared = self.shared_memory + self.static_shared_memory + device.reserved_shared_memory_per_block
        registers = -(-(registers or registers_needed(self)) // 8) * 8 * self.threads
        return max(1, min(device.max_blocks_per_sm, device.max_threads_per_sm // self.threads,
                          device.shared_memory_per_sm // shared, device.registers_per_sm // registers))


def padded_head_dim(DH: int) -> int:
    return -(-DH // 16) * 16


def rule_config(cell: str, dtype: torch.dtype, DH: int, B: int, backward: bool, NH: int,
                device: DeviceLimits) -> FusedConfig:
    """The rule's instantiation for a call (the planner's, where no tuned winner exists):
    batch tiles of 8 (one warp along the batch) while the CTAs fit the GPU in one wave,
    counting the CTAs an SM holds at once, else 16; then the deepest input ring that fits
    (that keeps the wave, for tiles of 8 sharing SMs). A new B (or any T) reuses a
    compiled kernel."""
    DHP = padded_head_dim(DH)
    sm_count = device.sm_count
    gates = get_cell(cell).gates_r
    tensor_cores = dtype != torch.float32
    # Measured on the H100 (docs/perf-notes.md, tools/cuda_variants.py): at B=16 tiles of
    # 8 beat 16 everywhere (64x12: 0.57 vs 0.74 ms forward, 2.35 vs 3.57 fwd+bwd): the
    # step is latency-bound, so fewer warps a CTA and twice the CTAs win. Past one wave
    # the wider tile halves the waves. Heads over 128 (over 512 threads a CTA, whose
    # register budget would spill) always take the narrow tile.
    r_registers = 4 * gates * DHP // 16

    def shape(WN: int, depth: int) -> FusedConfig:
        # R fragments in registers cost 4 * gates * DHP / 16 registers a thread: when they fit the
        # register budget beside ~96 others (DH=128 holding them beat reading R from shared memory
        # every step: 0.87 vs 2.18 ms forward at 128x6); ~128 with two warps along the batch
        threads = 32 * DHP // 16 * WN
        in_registers = (tensor_cores and not backward and DHP <= 128
                        and r_registers + 96 + 32 * (WN - 1) <= min(255, 65536 // threads))
        return FusedConfig(cell=cell, dtype=dtype, DHP=DHP, backward=backward, WN=WN, depth=depth,
                           vec=math.gcd(DH, 8), r_in_registers=in_registers, fast_math=dtype == torch.bfloat16)

    narrow = [c for c in (shape(1, depth) for depth in (4, 3, 2)) if c.fits(device)]
    ctas = NH * math.ceil(B / 8)
    if narrow and (B <= 8 or ctas <= sm_count or DHP > 128 or (backward and DHP > 96)):
        return narrow[0]
    # past one CTA an SM, narrow tiles still run in one wave where several share an SM: the
    # deepest ring that lets enough of them fit (LSTM 64x12, B=256, NH=12: 384 CTAs, 3 an SM),
    # on a GPU counted with the registers the NVRTC in use gives each (compiled here, once a
    # shape), on a preset (no GPU: tests, the shipped set) with the register model's
    def registers(config: FusedConfig) -> int | None:
        if device.index is None:
            return None
        return compile_kernel(config.name_expression, device.arch, config.source).registers

    one_wave = next((c for c in narrow if c.ctas_per_sm(device, registers(c)) * sm_count >= ctas), None)
    if one_wave is not None:
        return one_wave
    config = None
    for WN, depth in [(2, 4), (2, 3), (1, 4), (1, 3), (2, 2), (1, 2)]:
        config = shape(WN, depth)
        if config.fits(device):
            break
    return config


def fits_one_sm(cell: str, dtype: torch.dtype, DH: int, B: int, device: DeviceLimits) -> bool:
    """Whether a head runs on one SM: the backward, the larger kernel, fits there."""
    return not why_not_one_sm(cell, dtype, DH, B, device)


def why_not_one_sm(cell: str, dtype: torch.dtype, DH: int, B: int, device: DeviceLimits) -> str:
    """Why no single-SM instantiation serves this call ('' when one does)."""
    if dtype not in STORAGE_TYPES:
        return f"dtype {dtype} not supported (float16, bfloat16, float32)"
    # the narrowest tile's backward (B <= 8): wherever it fits, some shape of the rule's fits; and
    # at B <= 8 the rule compiles nothing (this is asked on every call, and traced)
    config = rule_config(cell, dtype, DH, min(B, 8), True, 1, device)
    if config.threads > device.max_threads_per_block:
        return f"head dim DH={DH} needs {config.threads} threads a block (max {device.max_threads_per_block})"
    need = config.shared_memory + config.static_shared_memory
    if need > device.shared_memory_per_block:
        return (f"R of one head and its tiles need {need // 1024} KiB of shared memory in {dtype} at DH={DH}, "
                f"over the {device.shared_memory_per_block // 1024} KiB a block of {device.name}")
    return ""
