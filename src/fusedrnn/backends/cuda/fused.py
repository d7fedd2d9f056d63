"""Host side of the `cuda_fused` backend: which kernel instantiation serves a
call, the buffers around it, and the dR / db reductions after the backward."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...cells import get_cell
from .. import outputs
from ..weight_gradient import bias_gradient, previous_states, recurrent_weight_gradient
from .launch import gpu_name, launch

# the C++ type of each cell (csrc/cells/*.cuh)
CELL_TYPES = {
    "lstm": "fusedrnn::Lstm", "gru": "fusedrnn::Gru", "elman": "fusedrnn::ElmanTanh",
    "elman_relu": "fusedrnn::ElmanRelu", "slstm": "fusedrnn::Slstm",
}
STORAGE_TYPES = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}
SHARED_MEMORY_LIMIT = 227 * 1024  # bytes a block may use on Hopper (sm_90); sm_80 allows 163 KiB
MAX_THREADS = 1024


def _ring_bytes(rows: int, DHP: int, itemsize: int, BT: int, depth: int) -> int:
    """Shared memory of a StepRing (csrc/ring.cuh) of `rows` rows a sequence."""
    pad = 16 // itemsize
    row_stride = rows * (DHP + pad) + (pad if rows > 1 else 0)
    return depth * BT * row_stride * itemsize


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
        total += _ring_bytes(spec.gates_x, DHP, size, BT, self.depth)  # x
        if not self.backward:
            return total + 2 * BT * (DHP + pad) * size  # h, double-buffered
        total += 2 * BT * (spec.gates_r * DHP + pad) * size  # drec, double-buffered
        total += 2 * _ring_bytes(1, DHP, size, BT, self.depth)  # h_{t-1} and dy
        return total + _ring_bytes(max(spec.num_states - 1, 1), DHP, 4, BT, self.depth)  # saved states, fp32

    @property
    def static_shared_memory(self) -> int:
        return 4 * self.WN * 4 * self.DHP if self.backward else 0

    @property
    def name_expression(self) -> str:
        cell, storage, fast = CELL_TYPES[self.cell], STORAGE_TYPES[self.dtype], str(self.fast_math).lower()
        shape = f"{self.DHP}, {self.NT}, {self.WN}, {self.depth}, {self.vec}"
        if self.backward:
            return f"fusedrnn::fused_backward_kernel<{cell}, {storage}, {shape}, {fast}>"
        regs = str(self.r_in_registers).lower()
        return f"fusedrnn::fused_forward_kernel<{cell}, {storage}, {shape}, {regs}, {fast}>"

    def fits(self) -> bool:
        return (self.threads <= MAX_THREADS
                and self.shared_memory + self.static_shared_memory <= SHARED_MEMORY_LIMIT)


def padded_head_dim(DH: int) -> int:
    return -(-DH // 16) * 16


def choose_config(cell: str, dtype: torch.dtype, DH: int, B: int, backward: bool, NH: int = 1,
                  sm_count: int = 132, *, tuned_for: str | None = None) -> FusedConfig:
    """The instantiation for a call. With `tuned_for` (a GPU's name), the winner
    `fusedrnn.tune` measured for the call on that GPU, when its cache holds one
    that still fits. Otherwise batch tiles of 8 (one warp along the batch)
    while the CTAs fit the GPU in one wave, else 16; then the deepest input ring
    that fits. A new B (or any T) reuses a compiled kernel."""
    DHP = padded_head_dim(DH)
    if tuned_for is not None:
        from ...tune.cache import tuned_winner  # not at the top: the tuner imports this module

        tuned = tuned_winner(FusedConfig, tuned_for, cell, dtype, DH, NH, B, backward, DHP)
        if tuned is not None and tuned.fits():
            return tuned
    gates = get_cell(cell).gates_r
    tensor_cores = dtype != torch.float32
    # Measured on the H100 (docs/perf-notes.md, scripts/cuda_variants.py): at B=16 tiles of
    # 8 beat 16 everywhere (64x12: 0.57 vs 0.74 ms forward, 2.35 vs 3.57 fwd+bwd): the
    # step is latency-bound, so fewer warps a CTA and twice the CTAs win. Past one wave
    # the wider tile halves the waves. Heads over 128 (over 512 threads a CTA, whose
    # register budget would spill) always take the narrow tile.
    narrow = B <= 8 or NH * math.ceil(B / 8) <= sm_count or DHP > 128 or (backward and DHP > 96)
    shapes = [(1, 4), (1, 3), (1, 2)] if narrow else [(2, 4), (2, 3), (1, 4), (1, 3), (2, 2), (1, 2)]
    # R fragments in registers cost 4 * gates * DHP / 16 registers a thread: when they fit the
    # register budget beside ~96 others (DH=128 holding them beat reading R from shared memory
    # every step: 0.87 vs 2.18 ms forward at 128x6)
    r_registers = 4 * gates * DHP // 16
    config = None
    for WN, depth in shapes:
        threads = 32 * DHP // 16 * WN
        # the rest of the forward takes ~96 registers, ~128 with two warps along the batch
        in_registers = (tensor_cores and not backward and DHP <= 128
                        and r_registers + 96 + 32 * (WN - 1) <= min(255, 65536 // threads))
        config = FusedConfig(cell=cell, dtype=dtype, DHP=DHP, backward=backward, WN=WN, depth=depth,
                             vec=math.gcd(DH, 8), r_in_registers=in_registers, fast_math=dtype == torch.bfloat16)
        if config.fits():
            break
    return config


def shipped_configs() -> list[FusedConfig]:
    """Every instantiation a call can select: each cell, dtype and padded head dim,
    both directions, small and large batches, and each row-copy width (those
    only differ in how rows are staged, so they are sampled at one head dim)."""
    configs = set()
    for cell in CELL_TYPES:
        for dtype in STORAGE_TYPES:
            for DHP in range(16, 257, 16):
                for DH in [DHP] + ([DHP - 2, DHP - 4, DHP - 7] if DHP == 48 else []):
                    for B, NH in ((8, 1), (16, 1), (256, 12)):  # narrow tiles, and wide ones past a wave
                        if fit_problem(cell, dtype, DH, B):
                            continue
                        for backward in (False, True):
                            configs.add(choose_config(cell, dtype, DH, B, backward, NH))
    return sorted(configs, key=lambda c: c.name_expression)


def fits_one_sm(cell: str, dtype: torch.dtype, DH: int, B: int) -> bool:
    return choose_config(cell, dtype, DH, B, backward=True).fits()


def fit_problem(cell: str, dtype: torch.dtype, DH: int, B: int) -> str:
    """Why no single-SM instantiation serves this call ('' when one does)."""
    config = choose_config(cell, dtype, DH, B, backward=True)
    if config.threads > MAX_THREADS:
        return f"head dim DH={DH} needs {config.threads} threads a block (max {MAX_THREADS})"
    need = config.shared_memory + config.static_shared_memory
    if need > SHARED_MEMORY_LIMIT:
        return (f"R of one head and its tiles need {need // 1024} KiB of shared memory in {dtype} at DH={DH}, "
                f"over the {SHARED_MEMORY_LIMIT // 1024} KiB of one SM")
    return ""


def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _grid(x, config):
    B, _, _, NH, _ = x.shape
    return (NH, math.ceil(B / config.batch_tile), 1)


def forward(x, R, b, states, lengths, cell, need_saved):
    x, R, b, states = (t.contiguous() for t in (x, R, b, states))
    B, T, _, NH, DH = x.shape
    spec = get_cell(cell)
    lengths = None if lengths is None else lengths.to(device=x.device, dtype=torch.int64).contiguous()
    if not fits_one_sm(cell, x.dtype, DH, B):
        from .split import split_forward

        return split_forward(x, R, b, states, lengths, cell, need_saved, _sm_count(x.device))
    config = choose_config(cell, x.dtype, DH, B, False, NH, _sm_count(x.device), tuned_for=gpu_name(x.device))
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved = outputs.empty(outputs.saved_states_shape(x, states, need_saved), like=x, dtype=torch.float32)
    launch(config.name_expression, _grid(x, config), config.threads, config.shared_memory, x.device,
           x, R, b, states, lengths, y, final, saved if need_saved and spec.num_states > 1 else None, B, T, NH, DH)
    return y, final, saved


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell):
    x, R, b, states, dy, dfinal = (t.contiguous() for t in (x, R, b, states, dy, dfinal))
    B, T, _, NH, DH = x.shape
    spec = get_cell(cell)
    lengths = None if lengths is None else lengths.to(device=x.device, dtype=torch.int64).contiguous()
    dy, dfinal = dy.to(x.dtype), dfinal.to(x.dtype)
    from .split import cluster_backward_plan, split_backward

    # a cluster where one is planned (heads over one SM, and LSTM-sized heads of 64 and more that
    # fit one: cluster_backward.py), else the grid for heads over one SM, else the one-SM kernel
    sm_count = _sm_count(x.device)
    cluster = cluster_backward_plan(cell, x, sm_count)
    if cluster is not None or not fits_one_sm(cell, x.dtype, DH, B):
        h_prev = previous_states(states, y)  # the cluster's recompute of R h and dR both read it
        dx, drec, db_partial, dstates = split_backward(dy, dfinal, x, R, b, states, lengths, y, saved, cell,
                                                       sm_count, h_prev, cluster)
        dR = recurrent_weight_gradient(drec, states, y, spec.gates_r, R.dtype, h_prev)
        return dx, dR, bias_gradient(db_partial, b.dtype), dstates
    config = choose_config(cell, x.dtype, DH, B, True, NH, _sm_count(x.device), tuned_for=gpu_name(x.device))
    grid = _grid(x, config)
    dx = outputs.empty(x.shape, like=x)
    drec = outputs.empty((NH, B * T, spec.gates_r * DH), like=x, dtype=torch.float32)
    db_partial = outputs.empty((grid[1], spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    dstates = outputs.empty(states.shape, like=states)
    launch(config.name_expression, grid, config.threads, config.shared_memory, x.device,
           x, R, b, states, lengths, y, saved, dy, dfinal, dx, drec, db_partial, dstates, B, T, NH, DH)
    dR = recurrent_weight_gradient(drec, states, y, spec.gates_r, R.dtype)
    return dx, dR, bias_gradient(db_partial, b.dtype), dstates

