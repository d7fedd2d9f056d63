"""The `torch` backend: a plain PyTorch time loop. Exact reference, runs anywhere.

Half types are stored in their own dtype but computed in float32, the way the
kernels do it: states stay in float32, `h` is rounded to the storage dtype
before it meets R (the tensor-core operand), products accumulate in float32.

Forward keeps the states of every step for backward. Backward walks time in
reverse: the recurrent products of every step are recomputed in one batched
matmul up front, each step runs the cell's pointwise backward, and dR is one
matmul over all steps at the end.

Resets: a step marked in `resets` (and within its sequence's length) starts
from the initial states. Backward reads the states entering each step the same
way, and at such a step hands the gradient of its entering states to the
initial states' gradient instead of to the step before.
"""
from __future__ import annotations

import torch

from ..cells import get_cell
from ..ops import outputs
from ..ops.custom_op import define_recurrence_ops
from ..ops.registry import Backend, register


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _operand(h: torch.Tensor, storage: torch.dtype) -> torch.Tensor:
    """h as the matmul sees it: rounded to the storage dtype, exact in float32."""
    return h if storage == h.dtype else h.to(storage).to(h.dtype)


def _stacked_recurrent(R: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[Gr, NH, DH_out, DH_in] -> [NH, DH_in, Gr*DH_out] so one bmm serves all gates."""
    Gr, NH, DH, _ = R.shape
    return R.to(dtype).permute(1, 3, 0, 2).reshape(NH, DH, Gr * DH)


def _recurrence(h: torch.Tensor, Rs: torch.Tensor) -> torch.Tensor:
    """R h for every head and gate: h [B, NH, DH] -> [B, Gr, NH, DH]."""
    B, NH, DH = h.shape
    return torch.bmm(h.transpose(0, 1), Rs).view(NH, B, Rs.shape[2] // DH, DH).permute(1, 2, 0, 3)


def _recurrence_grad(drec: torch.Tensor, Rs: torch.Tensor) -> torch.Tensor:
    """The gradient R^T drec flowing back into h: drec [B, Gr, NH, DH] -> [B, NH, DH]."""
    B, Gr, NH, DH = drec.shape
    return torch.bmm(drec.permute(2, 0, 1, 3).reshape(NH, B, Gr * DH), Rs.transpose(1, 2)).transpose(0, 1)


def _keep_where_done(new, prev, valid):
    """Past a sequence's length its states stop changing."""
    if valid is None:
        return new
    return tuple(torch.where(valid, n, p) for n, p in zip(new, prev))


def _valid_steps(lengths, T, device):
    """[T, B, 1, 1] bool, or None when every step of every sequence is valid."""
    if lengths is None:
        return None
    lengths = lengths.to(device)
    return (torch.arange(T, device=device)[:, None] < lengths[None, :])[:, :, None, None]


def _reset_steps(resets, valid_steps, T):
    """[T, B, 1, 1] bool: the steps that start from the initial states, or None
    without resets. Past a length a reset changes nothing, so it is dropped there."""
    if resets is None:
        return None
    steps = resets.t()[:, :, None, None]
    return steps if valid_steps is None else steps & valid_steps


def _entering(state, initial, reset):
    """The states a step starts from: the initial ones where it resets."""
    if reset is None:
        return state
    return tuple(torch.where(reset, s0, s) for s0, s in zip(initial, state))


def _run(x, R, b, states, lengths, cell_name, keep_history, resets=None):
    """The recurrence in plain, functional torch ops, so that autograd in both
    modes can differentiate through it (forward-mode AD, double backward).
    Returns y [B, T, NH, DH] and final [S, B, NH, DH] in the compute dtype, and
    the states after every step ([T, S, B, NH, DH]) when keep_history."""
    cell = get_cell(cell_name)
    T = x.shape[1]
    cd = _compute_dtype(x.dtype)
    Rs = _stacked_recurrent(R, cd)
    xc, bc = x.to(cd), b.to(cd)
    valid_steps = _valid_steps(lengths, T, x.device)
    if valid_steps is not None:
        # select, never multiply: x past a length may hold NaN or Inf, and autograd
        # through a step on NaN inputs gives 0 * NaN = NaN however the step is masked
        xc = torch.where(valid_steps.transpose(0, 1)[..., None], xc, 0)
    reset_steps = _reset_steps(resets, valid_steps, T)
    state = initial = tuple(s.to(cd) for s in states.unbind(0))
    ys, history = [], []
    for t in range(T):
        valid = None if valid_steps is None else valid_steps[t]
        state = _entering(state, initial, None if reset_steps is None else reset_steps[t])
        rec = _recurrence(_operand(state[0], x.dtype), Rs)
        state = _keep_where_done(cell.forward(xc[:, t], rec, bc, state), state, valid)
        ys.append(state[0] if valid is None else torch.where(valid, state[0], 0))
        if keep_history:
            history.append(torch.stack(state))
    return torch.stack(ys, 1), torch.stack(state), history


def forward(x, R, b, states, lengths, cell_name, need_saved, resets=None):
    y, final, history = _run(x, R, b, states, lengths, cell_name, need_saved, resets)
    saved = torch.stack(history) if need_saved else x.new_empty(0, dtype=_compute_dtype(x.dtype))
    return y.to(x.dtype), final.to(states.dtype), saved


def differentiable(x, R, b, states, lengths, cell_name, resets=None):
    """(y, final) as a function autograd can differentiate, in either mode and
    to any order: what forward-mode AD and double backward run."""
    y, final, _ = _run(x, R, b, states, lengths, cell_name, False, resets)
    return y.to(x.dtype), final.to(states.dtype)


def saved_like(x, states, cell_name, need_saved):
    B, T, _, NH, DH = x.shape
    shape = (T, states.shape[0], B, NH, DH) if need_saved else (0,)
    return x.new_empty(shape, dtype=_compute_dtype(x.dtype))


def backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell_name, resets=None):
    cell = get_cell(cell_name)
    B, T, _, NH, DH = x.shape
    cd = _compute_dtype(x.dtype)
    Rs = _stacked_recurrent(R, cd)
    valid_steps = _valid_steps(lengths, T, x.device)
    reset_steps = _reset_steps(resets, valid_steps, T)
    before = torch.cat([states.to(cd)[None], saved[:-1]])  # states entering each step
    if reset_steps is not None:
        before = torch.where(reset_steps[:, None], states.to(cd)[None], before)
    dinitial = None  # the gradient reaching the initial states through resets
    h_operand = _operand(before[:, 0], x.dtype)  # [T, B, NH, DH]
    rec_all = torch.einsum("tbnj,gnij->tbgni", h_operand, R.to(cd))
    bc = b.to(cd)
    # cells whose gates are plain sums have dx = drec = db per sample: one buffer, summed once
    sums = cell.gates_are_sums
    drec_all = outputs.empty(rec_all.shape, like=rec_all)
    dx = None if sums else outputs.empty(x.shape, like=x, dtype=cd)
    db_all = None if sums else outputs.empty((T, B, *b.shape), like=rec_all)
    dstate = list(dfinal.to(cd).unbind(0))
    dyc = dy.to(cd)
    for t in reversed(range(T)):
        valid = None if valid_steps is None else valid_steps[t]
        dstate[0] = dstate[0] + (dyc[:, t] if valid is None else torch.where(valid, dyc[:, t], 0))
        # past its length a sequence's states pass through the step untouched
        d_new = dstate if valid is None else [torch.where(valid, d, 0) for d in dstate]
        gx, grec, gb, gprev = cell.backward(x[:, t].to(cd), rec_all[t], bc, before[t].unbind(0), d_new)
        if valid is not None:
            # select, never multiply: x past a length may hold NaN, and 0 * NaN is NaN
            grec = torch.where(valid[:, None], grec, 0)
            if not sums:
                gx, gb = torch.where(valid[:, None], gx, 0), torch.where(valid[:, None], gb, 0)
        drec_all[t] = grec
        if not sums:
            dx[:, t], db_all[t] = gx, gb
        gprev = list(gprev)
        gprev[0] = gprev[0] + _recurrence_grad(grec, Rs)
        dstate = gprev if valid is None else [torch.where(valid, g, d) for g, d in zip(gprev, dstate)]
        if reset_steps is not None:
            # a reset step entered the initial states, not the states after t-1:
            # its gradient goes there, and nothing flows on to t-1
            reset = reset_steps[t]
            crossing = torch.stack([torch.where(reset, d, 0) for d in dstate])
            dinitial = crossing if dinitial is None else dinitial + crossing
            dstate = [torch.where(reset, 0, d) for d in dstate]
    dx = drec_all.transpose(0, 1) if sums else dx
    db = (drec_all if sums else db_all).sum((0, 1))
    dR = torch.einsum("tbgni,tbnj->gnij", drec_all, h_operand)
    dstates = torch.stack(dstate) if dinitial is None else torch.stack(dstate) + dinitial
    return dx.to(x.dtype), dR.to(R.dtype), db.to(b.dtype), dstates.to(states.dtype)


TORCH = register(
    Backend(
        name="torch",
        priority=0,
        available=lambda: (True, "plain PyTorch, runs on every device"),
        supports=lambda problem: (True, ""),
        run=define_recurrence_ops("torch", forward, backward, saved_like, differentiable=differentiable),
    )
)
