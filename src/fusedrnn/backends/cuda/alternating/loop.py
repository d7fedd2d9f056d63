"""Host side of the `cuda_alternating` backend: per time step one batched GEMM
over all heads (cuBLAS through torch) and one fused pointwise kernel (NVRTC),
forward and backward, the step loop replayed from CUDA graphs.

Forward, step t:   rec = h_{t-1} W (GEMM, W[n] = R[:, n] stacked [DH, GR*DH]),
                   then the cell's forward on every (b, n, i): states, h_t, y_t.
Backward, step t:  the cell's backward: dx_t, drec_t (kept for dR), db; then
                   dh = drec_t W^T (GEMM), added to dh_{t-1} by the next step.
                   The products R h_{t-1} are recomputed a chunk at a time, as
                   one GEMM of 64 steps' h with W (nothing extra kept from the forward).
After the loop: dR = one GEMM over all steps (weight_gradient.py), db = one sum.
With `resets` the step before a reset hands on the initial states (forward) and
the gradient of the states entering the reset's step to the initial states'
(backward, summed in d_initial): csrc/alternating_steps.cuh.

Floor (H100, LSTM bf16, B=16, T=1024, hidden 768): two dependent kernels a
step, each paying a graph node's launch latency (~1 us) plus its run time: a
GEMM (64x12: ~2-3 us; 768x1 reads 4.7 MB of R from L2 a step: ~3-4 us) and
the pointwise (~1.5 us: one memory round trip). About 4.5-6 ms forward at
64x12 and 5.5-7 ms at 768x1; forward+backward about 2.2x that.

What runs is plan.py's AlternatingPlan: GEMM result type, graphs or launches.
"""
from __future__ import annotations

import contextlib

import torch

from ....cells import get_cell
from ....ops import outputs
from ....problem import checked_resets
from ... import step_graphs
from ...weight_gradient import bias_gradient, drec_steps, dx_steps, entering_states, products
from .plan import AlternatingPlan
from .plan import plan as planned
from .pointwise import Call, NvrtcPointwise
from .workspace import Shape, workspace


def _pointwise(pointwise):
    return NvrtcPointwise() if pointwise is None else pointwise


@contextlib.contextmanager
def _exact_fp32():
    """fp32 products in fp32, as the torch backend: no TF32, also inside captured graphs."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _forward_chunk(ws, pointwise, chunk: int) -> None:
    pointwise.stage(ws, chunk)
    for k in range(chunk):
        products(ws.h_operand, ws.W, ws.rec)
        pointwise.step(ws, k, chunk)
    step_graphs.advance(ws.call, chunk)


def _backward_chunk(ws, pointwise, chunk: int) -> None:
    pointwise.stage(ws, chunk)
    _warm_products(ws, chunk)  # R h_{t-1} of the chunk's steps, one GEMM
    W_transposed = ws.W.transpose(1, 2)
    for k in range(chunk):
        pointwise.step(ws, k, chunk)
        products(ws.drec_step, W_transposed, ws.dh)
    step_graphs.advance(ws.call, chunk)


def run_steps(ws, T: int, pointwise, run_chunk, graphs: bool = True) -> None:
    """All T steps as chunks, replayed from graphs where `graphs` (step_graphs.run_steps)."""
    step_graphs.run_steps(ws.steps, ws.shape.device, T, lambda chunk: run_chunk(ws, pointwise, chunk), graphs,
                          lambda chunk: _warm_products(ws, chunk))


def _warm_products(ws, chunk: int) -> None:
    """The GEMMs whose shape depends on the chunk size: the backward's recomputed products."""
    if ws.shape.backward:
        s = ws.shape
        products(ws.chunk_view("h_chunk", (s.NH, chunk * s.B, s.DH)), ws.W,
                 ws.chunk_view("rec_chunk", (s.NH, chunk * s.B, ws.W.shape[2])))


def _shape(x: torch.Tensor, cell: str, backward: bool, product_dtype: torch.dtype) -> Shape:
    B, _, _, NH, DH = x.shape
    stream = torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0
    return Shape(x.device, stream, backward, cell, x.dtype, product_dtype, B, NH, DH)


def _load_weights(ws, R, b, lengths, T: int) -> None:
    """R into the GEMM layout W[n, j, g*DH + i] = R[g, n, i, j]; the biases; the lengths (T where none)."""
    GR, NH, DH, _ = R.shape
    ws.W.view(NH, DH, GR, DH).copy_(R.permute(1, 3, 0, 2))
    ws.bias.copy_(b)
    if lengths is None:
        ws.lengths.fill_(T)
    else:
        ws.lengths.copy_(lengths)


@step_graphs.serialized  # the workspace's buffers, from set_call to the last read
def forward(x, R, b, states, lengths, cell, need_saved, pointwise=None, plan: AlternatingPlan | None = None,
            resets=None):
    x, R, b, states = (t.contiguous() for t in (x, R, b, states))
    plan = plan or planned(x.dtype, x.device)
    B, T, _, NH, DH = x.shape
    flags = checked_resets(resets, B, T, x.device)
    S = get_cell(cell).num_states
    pointwise = _pointwise(pointwise)
    ws = workspace(_shape(x, cell, False, plan.product_dtype))
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved = outputs.empty(outputs.saved_states_shape(x, states, need_saved), like=x, dtype=torch.float32)
    keep = need_saved and S > 1
    _load_weights(ws, R, b, lengths, T)
    ws.state.copy_(states)
    ws.h_operand.copy_(states[0].transpose(0, 1))
    if keep:  # slot t: states 1..S-1 entering step t (the initial ones at a reset)
        saved[0].copy_(states[1:])  # slot 0: the initial states 1..S-1; the steps write slots 1..T
    pointwise.set_call(ws, Call(steps=T, x=x, initial=states, resets=flags, y=y, saved=saved if keep else None))
    with _exact_fp32():
        run_steps(ws, T, pointwise, _forward_chunk, plan.graphs)
    final.copy_(ws.state)
    return y, final, saved


@step_graphs.serialized  # the workspace's buffers, from set_call to the last read
def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, pointwise=None,
             plan: AlternatingPlan | None = None, resets=None):
    x, R, b, states, y, saved = (t.contiguous() for t in (x, R, b, states, y, saved))
    plan = plan or planned(x.dtype, x.device)
    dy, dfinal = dy.to(x.dtype).contiguous(), dfinal.to(x.dtype).contiguous()
    B, T, _, NH, DH = x.shape
    flags = checked_resets(resets, B, T, x.device)
    spec = get_cell(cell)
    pointwise = _pointwise(pointwise)
    ws = workspace(_shape(x, cell, True, plan.product_dtype))
    dx = outputs.empty(x.shape, like=x)
    # drec kept for dR only where the cell's gates are not sums; where they are, drec is dx
    drec = None if spec.gates_are_sums else outputs.empty((NH, B * T, spec.gates_r * DH), like=x)
    dstates = outputs.empty(states.shape, like=states)
    _load_weights(ws, R, b, lengths, T)
    ws.d_state.copy_(dfinal)
    ws.d_initial.zero_()
    ws.db_acc.zero_()
    call = Call(steps=T, x=x, initial=states, resets=flags, y_in=y, dy=dy,
                saved_in=saved if spec.num_states > 1 else None, dx=dx, drec=drec)
    pointwise.set_call(ws, call)
    with _exact_fp32():
        run_steps(ws, T, pointwise, _backward_chunk, plan.graphs)
    # the initial states start step 0 and every reset: their gradient sums what reached each start;
    # R^T drec of step 0 flows into the initial h, where step 0 was valid
    started = (ws.lengths > 0).view(B, 1, 1)
    dstates[0].copy_(ws.d_state[0] + ws.d_initial[0] + torch.where(started, ws.dh.transpose(0, 1).float(), 0.0))
    dstates[1:].copy_(ws.d_state[1:] + ws.d_initial[1:])
    dR = entering_states(states, y, resets).weight_gradient(dx_steps(dx) if drec is None else drec_steps(drec, DH),
                                                            R.dtype)
    return dx, dR, bias_gradient(ws.db_acc, b.dtype), dstates
