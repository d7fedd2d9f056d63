"""Heads too large for one SM, split over the CTAs of one thread-block cluster
(Hopper and later; csrc/cluster_forward.cuh): each CTA holds its rows of R in
registers and shared memory, runs the cell on its units, and pushes its slice
of h into every other CTA's shared memory each step (st.async, counted by the
receiver's mbarrier). No round trip through L2 as the cooperative grid split
(grid.py) makes; that stays the fallback for older GPUs and larger heads.

The plan picks, among the shapes that fit, the one a small cost model of a
step says is fastest: the product is bound by shared-memory reads (R not in
registers, h, the K slices' partial sums) or by the tensor cores, then the
cell and the exchange, whose bytes shrink with the sequences a cluster runs
(chosen at launch, with_sequences)."""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ....cells import get_cell
from ..cxx import Kernel, cell_unit, struct_constants
from ..runtime.compile import compile_kernel
from ..runtime.device import DeviceLimits
from ..runtime.launch import load_kernel, torch_stream
from .grid import MAX_HEAD_DIM, SplitShape, split_head_dim
from .one_sm import reset_ring_bytes, ring_bytes

SOURCE = Path(__file__).parent / "csrc" / "cluster_forward.cu"
KERNEL = Kernel("fused_cluster_forward_kernel",
                ("cell", "dtype", "DHP", "ROWS", "KSPLIT", "NT", "depth", "vec", "reg_tiles", "fast_math", "options",
                 "elements", "probe_type", "resets"),
                pointers=("x", "R", "b", "states", "lengths", "resets", "y", "final", "saved"),
                ints=("ldr", "B", "T", "NH", "DH", "sequences"))

MAX_CLUSTER = 16  # CTAs in a cluster on Hopper; over 8 needs the non-portable attribute (runtime/launch.py)
PARTITION_REGISTERS = 16384  # an SM's 4 partitions hold 16K registers each; a warp takes them from one
# Registers a thread needs beside its fragments of R (accumulators, states, pointers): fitted to
# ptxas's reports so that every shipped kernel holds as many tiles as it can without a spill
# (tests/test_cuda_compile.py checks them all); more for each state of each element a thread runs
# the cell for (4 a column tile where warps own their products' cells, 1 where cells are spread: sLSTM
# bf16 768x1 spread holds 10 tiles in 240 registers, not the 9 that 4 a state a tile allowed) and for
# each column tile past the first.
OTHER_REGISTERS = 72
OTHER_PER_STATE = 1
OTHER_PER_COLUMN_TILE = 40
# the st.async exchange's addresses and mbarrier phases, a column tile (LSTM bf16 256, 128 rows, 2 column
# tiles spilled 8 B with 8 for both)
ASYNC_PUSH_REGISTERS = 8
# the step cost model (cycles): shared memory delivers 128 bytes a cycle; mma.sync m16n8k16 issues
# about every 6.4 cycles on an SM partition (0.6 of the wgmma peak) and returns after ~33; the cluster barrier
# with its DSMEM stores; the cell and the two __syncthreads
SHARED_BYTES_PER_CYCLE = 128
MMA_CYCLES = 6.4
MMA_LATENCY = 33
BARRIER_CYCLES = {True: 1150, False: 1300}  # portable cluster (<= 8 CTAs) or not
CELL_CYCLES = 400
# the forms of a step, ClusterOptions of csrc/cluster_options.cuh (read from there: written once): an
# exchange of h by st.async and mbarriers, an mbarrier a sender, the cell on every thread
OPTIONS = struct_constants(Path(__file__).parent / "csrc" / "cluster_options.cuh", "ClusterOptions")
ASYNC_PUSH, PER_SOURCE, SPREAD_CELLS = OPTIONS["ASYNC_PUSH"], OPTIONS["PER_SOURCE"], OPTIONS["SPREAD_CELLS"]
# the timing probes of csrc/cluster_probes.cu (their own translation unit): structs of fusedrnn::probes
PROBES_SOURCE = Path(__file__).parent / "csrc" / "cluster_probes.cu"
PROBES = ("NoPush", "RelaxedArrive", "NoPushRelaxedArrive", "RegisterTilesOnly", "NoProduct", "NoOutput",
          "BarrierCellInput", "Timeline")
# the spread form's step beside the product (cycles, fitted to the timeline probe at 768x1 and 256x3 on the H100,
# docs/perf-notes.md): gathering R h, the barriers and the loop's top; the cell, per element a thread; the DSMEM
# bytes of h coming into a CTA a step, at about 8 bytes a cycle
SPREAD_STEP_CYCLES = 600
SPREAD_CELL_CYCLES = 250
DSMEM_BYTES_PER_CYCLE = 8
# what the plan runs (planned_options makes the exceptions): the cell on every thread (768x1 forward 2.46 ->
# 1.76 ms, 256x3 1.31 -> 0.70 with fewer sequences a cluster); the st.async exchange, measured 1.16 us a step
# against the cluster barrier's 1.62 at 256x3 on the H100 (docs/perf-notes.md, 2026-11-26); with an mbarrier
# a sender where all of R sits in registers (a short product, mostly waiting for h: 256x3 and 384x2 7% faster),
# not where the product reads R from shared memory (768x1 2.5% slower)
PLANNED_OPTIONS = ASYNC_PUSH | SPREAD_CELLS


def planned_options(dtype: torch.dtype, ROWS: int, k_tiles_per_warp: int, reg_tiles: int, KSPLIT: int) -> int:
    options = PLANNED_OPTIONS
    if KSPLIT == 1:  # every warp owns cells already; spread, each thread would hold all of them (spills)
        options &= ~SPREAD_CELLS
    whole_slices = k_tiles_per_warp % (ROWS // 16) == 0  # a warp's K tiles in whole slices of h
    if dtype != torch.float32 and reg_tiles == k_tiles_per_warp and whole_slices:
        return options | PER_SOURCE
    return options


@dataclass(frozen=True)
class ClusterConfig(SplitShape):  # the CTAs of a head are one cluster; BT sequences a cluster
    reg_tiles: int  # of each warp's K tiles of R, those held in registers
    REGISTER_FIELD = "reg_tiles"  # what fit_to_compiler lowers (a class attribute, not a field)
    # bits of csrc ClusterOptions: ASYNC_PUSH (st.async + mbarriers instead of the cluster barrier)
    # or timing probes (tools/cluster_variants.py); planned_options() in every planned config
    options: int = 0
    # sequences of the batch a cluster runs (0: the whole batch tile); fewer move fewer bytes of h
    # through DSMEM a step, in more clusters
    sequences: int = 0
    # spread cells a thread the kernel is built for (0: room for the whole batch tile); bounds `sequences`
    elements: int = 0
    # a timing probe of csrc/cluster_probes.cu (PROBES; wrong results), or "" for the kernel itself
    probe: str = ""
    # the kernel reads `resets` (csrc/resets.cuh); without, every reset test folds away at compile time
    resets: bool = False

    @property
    def cluster_sequences(self) -> int:
        return self.sequences or self.batch_tile

    @property
    def most_sequences(self) -> int:
        """The most sequences a cluster of this kernel runs."""
        if self.options & SPREAD_CELLS and self.elements:
            return min(self.batch_tile, self.elements * self.threads // self.ROWS)
        return self.batch_tile

    @property
    def shared_tiles(self) -> int:
        return self.DHP // 16 // self.KSPLIT - self.reg_tiles

    @property
    def shared_memory(self) -> int:
        """Dynamic shared memory bytes, as the kernel carves it up."""
        spec, size, BT = get_cell(self.cell), self.dtype.itemsize, self.batch_tile
        pad = 16 // size
        lds = self.KSPLIT * self.shared_tiles * 16 + pad if self.shared_tiles else 0
        total = spec.gates_r * self.ROWS * lds * size  # R not in registers
        total += 2 * BT * (self.DHP + pad) * size  # all of h, double-buffered
        total += ring_bytes(spec.gates_x, self.ROWS, size, BT, self.depth)  # x
        if self.options & SPREAD_CELLS:  # every K slice's products of the cluster's sequences, padded rows
            total += self.KSPLIT * spec.gates_r * BT * (self.ROWS + 4) * 4
        else:  # the other K slices' partial products
            total += (self.KSPLIT - 1) * self.ROWS // 16 * 4 * self.NT * 4 * 32 * 4
        barriers = (self.parts if self.options & PER_SOURCE else 1) if self.options & ASYNC_PUSH else 0
        if self.resets:  # the reset words (the spread cells' clusters start at any sequence)
            total += reset_ring_bytes(BT, self.depth, tile_aligned=not self.options & SPREAD_CELLS)
        return total + 2 * 8 * barriers  # the mbarriers: one or one a sender, a buffer

    kernel = KERNEL  # class attributes, not fields
    backward = False

    def __post_init__(self):
        if self.probe and self.probe not in PROBES:
            raise ValueError(f"probe: expected one of {PROBES} or '', got {self.probe!r}")

    @property
    def source(self):
        """The translation unit (the probes' where a probe is asked), with the cell's struct where it is generated."""
        return cell_unit(PROBES_SOURCE if self.probe else SOURCE, self.cell)

    @property
    def probe_type(self) -> str:
        return f"fusedrnn::probes::{self.probe}" if self.probe else "fusedrnn::NoProbe"

    @property
    def name_expression(self) -> str:
        return KERNEL.name_expression(self)

    def step_cycles(self) -> float:
        """The cost model's estimate of one step."""
        G, size, BT = get_cell(self.cell).gates_r, self.dtype.itemsize, self.batch_tile
        macs = G * self.ROWS * BT * self.DHP
        if self.dtype == torch.float32:  # FMA units, 128 a cycle, with their shared-memory loads
            product = macs / 64
        else:
            shared = (G * self.ROWS * self.KSPLIT * self.shared_tiles * 16 * size  # R
                      + self.ROWS // 16 * BT * self.DHP * size  # h, read by every row block
                      + 2 * (self.KSPLIT - 1) * G * self.ROWS * BT * 4)  # partial sums written, read
            per_partition = math.ceil(self.warps / 4) * macs / 2048 / self.warps
            chain = self.DHP // 16 // self.KSPLIT * MMA_LATENCY  # a gate's mma one after another
            product = max(shared / SHARED_BYTES_PER_CYCLE, per_partition * MMA_CYCLES, chain)
        if not self.options & SPREAD_CELLS:
            return product + BARRIER_CYCLES[self.parts <= 8] + CELL_CYCLES * self.NT
        elements = self.elements or math.ceil(self.ROWS * self.batch_tile / self.threads)  # a thread's (built for)
        inbound = (self.parts - 1) * self.cluster_sequences * self.ROWS * size  # bytes of h into a CTA
        return product + SPREAD_STEP_CYCLES + SPREAD_CELL_CYCLES * elements + inbound / DSMEM_BYTES_PER_CYCLE

    def call_cycles(self, B: int, NH: int, clusters_at_once: int) -> float:
        """The cost model's estimate of a step of the whole call: the clusters run in waves of
        what the GPU holds at once."""
        waves = math.ceil(NH * math.ceil(B / self.cluster_sequences) / max(1, clusters_at_once))
        return waves * self.step_cycles()

    @functools.lru_cache(maxsize=None)  # asked at every launch
    def with_sequences(self, B: int, NH: int, clusters_at_once: int) -> "ClusterConfig":
        """This shape with the sequences a cluster that the cost model finds fastest for the
        whole call: fewer move fewer bytes of h a step but need more clusters, and more
        waves of them once they exceed what the GPU runs at once (only the spread cells
        run fewer than the batch tile)."""
        if not self.options & SPREAD_CELLS:
            return dataclasses.replace(self, sequences=0)
        forms = [dataclasses.replace(self, sequences=0 if s == self.batch_tile else s)
                 for s in range(1, min(B, self.most_sequences) + 1)]
        return min(forms, key=lambda c: (c.call_cycles(B, NH, clusters_at_once), -c.cluster_sequences))


def register_cap(threads: int) -> int:
    """Registers a thread may use at one CTA an SM: a partition hosts ceil(warps / 4) warps."""
    per_partition = math.ceil(threads // 32 / 4)
    return min(255, PARTITION_REGISTERS // (32 * per_partition) // 8 * 8)


def cell_elements(options: int, NT: int) -> int:
    """Elements a thread runs the cell for, as the plans build the kernel: one where cells are
    spread (ClusterConfig.elements = 1), else its 4 of each column tile's mma accumulator."""
    return 1 if options & SPREAD_CELLS else 4 * NT


def register_tiles(cell: str, dtype: torch.dtype, threads: int, NT: int, k_tiles_per_warp: int,
                   options: int = 0) -> int:
    """How many of a warp's K tiles of R its threads can hold as fragments (4 registers
    a gate and tile) beside everything else, without spilling."""
    if dtype == torch.float32:  # no tensor cores: R is read from shared memory by the FMA product
        return 0
    spec = get_cell(cell)
    other = (OTHER_REGISTERS + OTHER_PER_STATE * spec.num_states * cell_elements(options, NT)
             + OTHER_PER_COLUMN_TILE * (NT - 1))
    other += ASYNC_PUSH_REGISTERS * NT if options & ASYNC_PUSH else 0
    return max(0, min(k_tiles_per_warp, (register_cap(threads) - other) // (4 * spec.gates_r)))


def cluster_configs(cell: str, dtype: torch.dtype, DHP: int, vec: int, wide: bool, shared_memory_per_block: int):
    """Every cluster shape that fits one SM a CTA: rows a CTA, K split, column tiles
    (two only for `wide` batches), with the deepest input ring that fits."""
    for parts in range(2, MAX_CLUSTER + 1):
        ROWS = DHP // parts
        if DHP % parts or ROWS % 16:
            continue
        k_tiles = DHP // 16
        for KSPLIT in (d for d in range(1, k_tiles + 1) if k_tiles % d == 0):
            if not 4 <= ROWS // 16 * KSPLIT <= 16:  # a warp a partition at least; 512 threads at most
                continue
            for NT in (1, 2) if wide else (1,):
                config = next(planned_shapes(cell, dtype, DHP, ROWS, KSPLIT, NT, vec, shared_memory_per_block), None)
                if config is not None:
                    yield config


def planned_shapes(cell: str, dtype: torch.dtype, DHP: int, ROWS: int, KSPLIT: int, NT: int, vec: int,
                   shared_memory_per_block: int):
    """The forms of one shape that fit shared memory, best first: the spread cells' where they
    apply, then the owners' (the spread cells' partial sums need more shared memory; up to 2 K
    slices: with more, most warps would wait out the cell, 256x3, 4 slices, 1.9x slower), each
    with as many register tiles as its registers allow and the deepest input ring."""
    threads, k_tiles_per_warp = 32 * ROWS // 16 * KSPLIT, DHP // 16 // KSPLIT
    spread_forms = (True, False) if KSPLIT == 2 else (KSPLIT > 2,)
    for spread in spread_forms:
        wanted = PLANNED_OPTIONS if spread else PLANNED_OPTIONS & ~SPREAD_CELLS
        reg_tiles = register_tiles(cell, dtype, threads, NT, k_tiles_per_warp, wanted)
        options = planned_options(dtype, ROWS, k_tiles_per_warp, reg_tiles, KSPLIT) & (wanted | ~SPREAD_CELLS)
        for depth in (4, 3, 2):
            config = ClusterConfig(cell=cell, dtype=dtype, DHP=DHP, ROWS=ROWS, KSPLIT=KSPLIT, NT=NT, depth=depth,
                                   vec=vec, reg_tiles=reg_tiles, fast_math=dtype == torch.bfloat16, options=options)
            if config.shared_memory <= shared_memory_per_block:
                yield config
                break


@functools.lru_cache(maxsize=None)  # planned once per shape: enumerating the shapes costs ~0.5 ms
def choose_cluster(cell: str, dtype: torch.dtype, DH: int, B: int, NH: int, device: DeviceLimits):
    """The cluster shape with the least estimated time for the whole call (steps times
    waves of clusters), or None when no cluster of at most 16 CTAs holds the head."""
    if DH > MAX_HEAD_DIM:
        return None
    best, best_cost = None, math.inf
    sm_count = device.sm_count
    for config in cluster_configs(cell, dtype, split_head_dim(DH), math.gcd(DH, 8), B > 8,
                                  device.shared_memory_per_block):
        # the spread cells' kernel is built for one cell a thread, whatever the batch (a new B compiles
        # nothing; room for more cost 10 % at 768x1): the launch picks the sequences a cluster within it for
        # its B and GPU (with_sequences); here an estimate of what the GPU runs at once
        if config.options & SPREAD_CELLS:
            config = dataclasses.replace(config, elements=1)
        at_once = estimated_clusters_at_once(config.parts, sm_count)
        config = config.with_sequences(B, NH, at_once)
        cost = config.call_cycles(B, NH, at_once)
        if cost < best_cost:
            best, best_cost = config, cost
    return dataclasses.replace(best, sequences=0) if best is not None else None


# A few spilled scalars cost a step almost nothing; fragments of R in local memory cost it dearly. The
# H100 image's NVRTC 13.0 spills 8 bytes (2 LDL/STL) from the LSTM bf16 768x1 cluster backward that
# NVRTC 13.5 fits in 252 registers; no other form of it fits shared memory, and the grid it fell back
# to took 6.90 ms fwd+bwd at B=16 against the spilling cluster's 4.81 (H100, 2026-12-07,
# docs/perf-notes.md). A fragment spilled moves 4 registers and is reloaded in every step's product.
FEW_SPILLED_BYTES = 16
FEW_LOCAL_INSTRUCTIONS = 4


def spills_fragments(config, arch: str) -> bool:
    """Whether the NVRTC in use compiles the config's kernel with more local memory than a few
    spilled scalars (FEW_SPILLED_BYTES, FEW_LOCAL_INSTRUCTIONS): where it does, fragments of R
    or the product's accumulators live there and are reloaded every step."""
    compiled = compile_kernel(config.name_expression, arch, config.source)
    return (compiled.spill_bytes > FEW_SPILLED_BYTES or compiled.stack_bytes > FEW_SPILLED_BYTES
            or compiled.local_memory_instructions > FEW_LOCAL_INSTRUCTIONS)


def register_forms(shape, shared_memory_per_block: int) -> list:
    """A cluster shape (forward or backward) with each count of R's register tiles (blocks)
    from its own down to 0, each with the deepest input ring, at most the shape's, that fits
    shared memory beside R's other tiles: the forms a compiler fit lowers through, and what
    the tuner times."""
    field, forms = shape.REGISTER_FIELD, []
    for count in range(getattr(shape, field), -1, -1):
        fitting = (dataclasses.replace(shape, **{field: count, "depth": depth}) for depth in range(shape.depth, 1, -1))
        form = next((c for c in fitting if c.shared_memory <= shared_memory_per_block), None)
        if form is None:  # fewer tiles in registers need more shared memory: none of the rest fits either
            break
        forms.append(form)
    return forms


@functools.lru_cache(maxsize=None)
def fit_to_compiler(config, device: DeviceLimits):
    """The plan (a ClusterConfig, or a ClusterBackwardConfig) with as many fragments
    of R in registers as the NVRTC in use compiles without spilling them (spills_fragments;
    shipped kernels compile with no local memory at all, tests/test_cuda_compile.py). The register
    models count what ptxas needs beside the fragments from one compiler's reports;
    another version may need more and keep fragments in local memory, reloaded every
    step (768x1 on the H100 image's NVRTC: 754K local loads in 64 steps, 10.9 us a
    step). Each register tile (forward) or block (backward) fewer moves its fragments
    to shared memory, paid for with a shallower input ring where needed; None when
    no such shape fits."""
    return next((form for form in register_forms(config, device.shared_memory_per_block)
                 if not spills_fragments(form, device.arch)), None)


def estimated_clusters_at_once(parts: int, sm_count: int) -> int:
    """What a GPU of `sm_count` SMs runs at once of clusters of `parts` CTAs, one an SM, by the
    H100's shape: a GPC short of SMs where clusters take more than 8 (7 of 16 CTAs)."""
    return sm_count // parts - (parts > 8)


def clusters_at_once(config: ClusterConfig, device: DeviceLimits) -> int:
    """How many clusters of this kernel run at once a CTA an SM: the occupancy API (on a GPU,
    device.index) also counts clusters sharing SMs (two CTAs of 256x3 an SM), whose steps would
    share one SM's shared-memory bandwidth and tensor cores; a preset (no GPU) estimates it."""
    if device.index is None:
        return estimated_clusters_at_once(config.parts, device.sm_count)
    return min(clusters_resident(config, device.index), device.sm_count // config.parts)


@functools.lru_cache(maxsize=None)
def clusters_resident(config, device_index: int) -> int:
    """How many clusters of this kernel (forward or backward) the GPU runs at once (0: it cannot run one)."""
    from cuda.core import LaunchConfig

    kernel = load_kernel(config.name_expression, config.source, device_index, config.shared_memory, config.parts > 8)
    launch_config = LaunchConfig(grid=(1, 1, 1), cluster=(config.parts, 1, 1), block=config.threads,
                                 shmem_size=config.shared_memory)
    stream = torch_stream(torch.cuda.current_stream(device_index).cuda_stream, device_index)
    return kernel.occupancy.max_active_clusters(launch_config, stream=stream)
