"""`fusedrnn.rnn`: validation, autocast, backend choice and dispatch."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import backends as _backends
from .cells import Cell, get_cell
from .problem import problem_of

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_tensor(name: str, value, ndim: int, layout: str) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {layout}, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dims {layout}, got shape {tuple(value.shape)}")


def _check_shape(name: str, value: Tensor, expected: tuple, layout: str) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {layout} = {tuple(expected)}, got {tuple(value.shape)}")


def _check_same(name: str, value: Tensor, x: Tensor) -> None:
    if value.dtype != x.dtype:
        raise TypeError(f"{name}: expected dtype {x.dtype} (the dtype of x), got {value.dtype}")
    if value.device != x.device:
        raise ValueError(f"{name}: expected device {x.device} (the device of x), got {value.device}")


def _validate(x, R, b, states, lengths, resets, cell: Cell) -> None:
    _check_tensor("x", x, 5, "[B, T, Gx, NH, DH]")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"x: expected a floating dtype {_FLOAT_DTYPES}, got {x.dtype}")
    B, T, Gx, NH, DH = x.shape
    if min(T, NH, DH) < 1 or B < 0:
        raise ValueError(f"x: expected B >= 0 and T, NH, DH >= 1 in [B, T, Gx, NH, DH], got shape {tuple(x.shape)}")
    if Gx != cell.gates_x:
        raise ValueError(f"x: cell {cell.name!r} expects Gx={cell.gates_x} in [B, T, Gx, NH, DH], got {Gx}")
    _check_tensor("R", R, 4, "[Gr, NH, DH, DH]")
    _check_shape("R", R, (cell.gates_r, NH, DH, DH), "[Gr, NH, DH, DH]")
    _check_tensor("b", b, 3, "[Gb, NH, DH]")
    _check_shape("b", b, (cell.gates_b, NH, DH), "[Gb, NH, DH]")
    for name, value in (("R", R), ("b", b)):
        _check_same(name, value, x)
    if states is not None:
        _check_tensor("states", states, 4, "[S, B, NH, DH]")
        _check_shape("states", states, (cell.num_states, B, NH, DH), "[S, B, NH, DH]")
        _check_same("states", states, x)
    if lengths is not None:
        _check_tensor("lengths", lengths, 1, "[B]")
        _check_shape("lengths", lengths, (B,), "[B]")
        if lengths.dtype != torch.int64:
            raise TypeError(f"lengths: expected dtype torch.int64, got {lengths.dtype}")
        if lengths.device.type != "cpu" and lengths.device != x.device:
            raise ValueError(f"lengths: expected device cpu or {x.device}, got {lengths.device}")
        # the range of the values is checked inside the backends' ops (check_lengths_range)
    if resets is not None:
        _check_tensor("resets", resets, 2, "[B, T]")
        _check_shape("resets", resets, (B, T), "[B, T]")
        if resets.dtype != torch.bool:
            raise TypeError(f"resets: expected dtype torch.bool, got {resets.dtype}")
        if resets.device != x.device:
            raise ValueError(f"resets: expected device {x.device} (the device of x), got {resets.device}")


def _autocast(tensors: list, device_type: str) -> list:
    if not torch.is_autocast_enabled(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return [t if t is None or t.dtype == torch.float64 else t.to(dtype) for t in tensors]


def rnn(
    x: Tensor,
    R: Tensor,
    b: Tensor,
    states: Optional[Tensor] = None,
    *,
    cell: str = "lstm",
    backend: str = "auto",
    lengths: Optional[Tensor] = None,
    resets: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Run a multi-head recurrence over all time steps.

    x: [B, T, Gx, NH, DH] gate pre-activations from the input projection.
    R: [Gr, NH, DH, DH] recurrent weights, pre[g, n] += h_prev[n] @ R[g, n].T.
    b: [Gb, NH, DH] biases.
    states: [S, B, NH, DH] initial states (state 0 is h) or None for zeros.
    lengths: [B] int64 valid length of each sequence, or None.
    resets: [B, T] bool, or None: where True, that step starts from the initial
        states instead of the previous step's (no gradient crosses it; past a
        sequence's length it changes nothing).

    Returns y [B, T, NH, DH] (h at every step, 0 past a sequence's length) and
    final [S, B, NH, DH] (the states after each sequence's last valid step).
    """
    spec = get_cell(cell)
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a str, got {type(backend).__name__}")
    _validate(x, R, b, states, lengths, resets, spec)
    if x.dtype != torch.float64 and x.device.type != "meta":  # meta: shape inference, no autocast
        x, R, b, states = _autocast([x, R, b, states], x.device.type)
    B, T, _, NH, DH = x.shape
    if states is None:
        states = x.new_zeros(spec.num_states, B, NH, DH)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, R, b, states))
    problem = problem_of(x, spec.name, lengths, needs_grad, resets)
    chosen = _backends.choose(backend, problem)
    if B == 0:  # an empty batch has nothing to run; every backend's answer is the same empty outputs
        chosen = _backends.choose("torch", problem)
    return chosen.run(x, R, b, states, lengths, spec.name, needs_grad, resets=resets)


def backends() -> dict:
    """Per backend: BackendInfo(name, available, reason), best first."""
    return _backends.report()
