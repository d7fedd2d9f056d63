"""The kernels of the cuda_alternating step loop, launched through NVRTC:
what loop.py's step loop calls between its GEMMs. Each method's argument
list is its kernel's signature in csrc/alternating_*.cuh, in order.

The loop only needs an object with these three methods; the CPU tests give it
one written in torch, with the cells' reference math.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from ....cells import get_cell
from .kernels import SET_CALL, launch, stage_kernel, step_kernel, step_source

STAGE_BLOCKS = 1024  # grid-stride: a chunk's copy is a few MB


class Call(NamedTuple):
    """The caller's tensors for one call (csrc/alternating_call.cuh); None where unused."""
    steps: int
    x: torch.Tensor
    initial: Optional[torch.Tensor] = None  # the call's states [S, B, NH, DH]: step 0's and each reset's
    resets: Optional[torch.Tensor] = None  # [B, T] uint8, or None: no resets
    y: Optional[torch.Tensor] = None  # forward writes
    saved: Optional[torch.Tensor] = None
    y_in: Optional[torch.Tensor] = None  # backward reads
    dy: Optional[torch.Tensor] = None
    saved_in: Optional[torch.Tensor] = None
    dx: Optional[torch.Tensor] = None  # backward writes
    drec: Optional[torch.Tensor] = None


class NvrtcPointwise:
    def set_call(self, ws, call: Call) -> None:
        """Point the call block at this call's tensors and zero its step counter."""
        launch(SET_CALL, 1, ws.shape.device, ws.call, call.x, call.initial, call.resets, call.y_in, call.dy,
               call.saved_in, call.y, call.saved, call.dx, call.drec, call.steps, block=1)

    def stage(self, ws, chunk: int) -> None:
        """Copy what the chunk's steps read from the caller's tensors into ws."""
        s = ws.shape
        spec = get_cell(s.cell)
        rows = chunk * s.elements * spec.gates_x  # the largest of the copies
        if not s.backward:
            launch(stage_kernel(s.dtype, False), rows, s.device, ws.call, ws.x_chunk, ws.reset_chunk, chunk, s.B,
                   spec.gates_x, s.NH, s.DH, max_blocks=STAGE_BLOCKS)
        else:
            launch(stage_kernel(s.dtype, True), rows, s.device, ws.call, ws.x_chunk, ws.dy_chunk, ws.saved_chunk,
                   ws.h_chunk, ws.reset_chunk, chunk, s.B, spec.gates_x, spec.num_states, s.NH, s.DH,
                   max_blocks=STAGE_BLOCKS)

    def step(self, ws, k: int, chunk: int) -> None:
        """The pointwise of position k of the chunk, forward or backward."""
        s = ws.shape
        name, source = step_kernel(s.cell, s.dtype, s.product_dtype, s.backward), step_source(s.cell)
        if not s.backward:
            launch(name, s.elements, s.device, ws.call, ws.x_chunk, ws.rec, ws.bias, ws.lengths, ws.reset_chunk,
                   ws.state, ws.h_operand, k, s.B, s.NH, s.DH, source=source)
        else:
            launch(name, s.elements, s.device, ws.call, ws.x_chunk, ws.dy_chunk, ws.saved_chunk, ws.h_chunk,
                   ws.rec_chunk, ws.bias, ws.lengths, ws.reset_chunk, ws.dh, ws.d_state, ws.d_initial, ws.db_acc,
                   ws.drec_step, k, chunk, s.B, s.NH, s.DH, source=source)
