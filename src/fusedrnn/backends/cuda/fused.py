"""Host side of the `cuda_fused` backend: which kernel instantiation serves a
call, the buffers around it, and the dR / db reductions after the backward."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...cells import get_cell
from .. import outputs
from ..weight_gradient import bias_gradient, recurrent_weight_gradient
from .launch import launch

# the C++ type of each cell (csrc/cells/*.cuh)
CELL_TYPES = {
    "lstm": "fusedrnn::Lstm", "gru": "fusedrnn::Gru", "elman": "fusedrnn::ElmanTanh",
    "elman_relu": "fusedrnn::ElmanRelu", "slstm": "fusedrnn::Slstm",
}
STORAGE_TYPES = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}
SHARED_MEMORY_LIMIT = 227 * 1024  # bytes a block may use on Hopper (sm_90); sm_80 allows 163 KiB
MAX_THREADS = 1024


@dataclass(frozen=True)
class FusedConfig:
    """One kernel instantiation: the head dim padded to 16 (DHP), NT column tiles
    of 8 per warp, WN warps along the batch (so BT = 8 * NT * WN sequences per
    CTA), and whether the forward keeps its fragments of R in registers. The
    head dim itself, B and T are kernel arguments."""
    cell: str
    dtype: torch.dtype
    DHP: int
    NT: int = 1
    WN: int = 2
    r_in_registers: bool = False
    fast_math: bool = False

    @property
    def batch_tile(self) -> int:
        return 8 * self.NT * self.WN

    @property
    def threads(self) -> int:
        return 32 * self.DHP // 16 * self.WN

    def shared_memory(self, backward: bool) -> int:
        """Dynamic shared memory bytes: R, the double-buffered h tile, and in the backward the drec tile."""
        size = self.dtype.itemsize
        pad = 16 // size
        gates = get_cell(self.cell).gates_r
        elements = gates * self.DHP * (self.DHP + pad) + 2 * self.batch_tile * (self.DHP + pad)
        if backward:
            elements += 2 * self.batch_tile * (gates * self.DHP + pad)
        return elements * size

    def static_shared_memory(self, backward: bool) -> int:
        return 4 * self.batch_tile + (4 * self.WN * 4 * self.DHP if backward else 0)

    def name_expression(self, backward: bool) -> str:
        cell, storage, fast = CELL_TYPES[self.cell], STORAGE_TYPES[self.dtype], str(self.fast_math).lower()
        if backward:
            return f"fusedrnn::fused_backward_kernel<{cell}, {storage}, {self.DHP}, {self.NT}, {self.WN}, {fast}>"
        regs = str(self.r_in_registers).lower()
        return f"fusedrnn::fused_forward_kernel<{cell}, {storage}, {self.DHP}, {self.NT}, {self.WN}, {regs}, {fast}>"


def padded_head_dim(DH: int) -> int:
    return -(-DH // 16) * 16


def choose_config(cell: str, dtype: torch.dtype, DH: int, B: int) -> FusedConfig:
    """The instantiation for a call. Batch sizes fall into two buckets, so a new
    B (or any T) reuses a compiled kernel."""
    DHP = padded_head_dim(DH)
    gates = get_cell(cell).gates_r
    tensor_cores = dtype != torch.float32
    # R fragments in registers cost 4 * gates * DHP / 16 registers a thread: worth it up to 64
    in_registers = tensor_cores and gates * DHP <= 4 * 64
    return FusedConfig(cell=cell, dtype=dtype, DHP=DHP, NT=1, WN=1 if B <= 8 else 2,
                       r_in_registers=in_registers, fast_math=dtype == torch.bfloat16)


def fit_problem(cell: str, dtype: torch.dtype, DH: int, B: int) -> str:
    """Why no instantiation serves this call ('' when one does)."""
    config = choose_config(cell, dtype, DH, B)
    if config.threads > MAX_THREADS:
        return f"head dim DH={DH} needs {config.threads} threads a block (max {MAX_THREADS})"
    need = config.shared_memory(backward=True) + config.static_shared_memory(backward=True)
    if need > SHARED_MEMORY_LIMIT:
        return (f"R of one head and its tiles need {need // 1024} KiB of shared memory in {dtype} at DH={DH}, "
                f"over the {SHARED_MEMORY_LIMIT // 1024} KiB of one SM; heads split over a cluster are not built yet")
    return ""


def _grid(x, config):
    B, _, _, NH, _ = x.shape
    return (NH, math.ceil(B / config.batch_tile), 1)


def forward(x, R, b, states, lengths, cell, need_saved):
    x, R, b, states = (t.contiguous() for t in (x, R, b, states))
    B, T, _, NH, DH = x.shape
    spec = get_cell(cell)
    config = choose_config(cell, x.dtype, DH, B)
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved = outputs.empty(outputs.saved_states_shape(x, states, need_saved), like=x, dtype=torch.float32)
    lengths = None if lengths is None else lengths.to(device=x.device, dtype=torch.int64).contiguous()
    launch(config.name_expression(backward=False), _grid(x, config), config.threads,
           config.shared_memory(backward=False), x.device,
           x, R, b, states, lengths, y, final, saved if need_saved and spec.num_states > 1 else None, B, T, NH, DH)
    return y, final, saved


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell):
    x, R, b, states, dy, dfinal = (t.contiguous() for t in (x, R, b, states, dy, dfinal))
    B, T, _, NH, DH = x.shape
    spec = get_cell(cell)
    config = choose_config(cell, x.dtype, DH, B)
    grid = _grid(x, config)
    dx = outputs.empty(x.shape, like=x)
    drec = outputs.empty((NH, B * T, spec.gates_r * DH), like=x, dtype=torch.float32)
    db_partial = outputs.empty((grid[1], spec.gates_b, NH, DH), like=x, dtype=torch.float32)
    dstates = outputs.empty(states.shape, like=states)
    lengths = None if lengths is None else lengths.to(device=x.device, dtype=torch.int64).contiguous()
    launch(config.name_expression(backward=True), grid, config.threads, config.shared_memory(backward=True),
           x.device, x, R, b, states, lengths, y, saved, dy.to(x.dtype), dfinal.to(x.dtype),
           dx, drec, db_partial, dstates, B, T, NH, DH)
    dR = recurrent_weight_gradient(drec, states, y, spec.gates_r, R.dtype)
    return dx, dR, bias_gradient(db_partial, b.dtype), dstates

