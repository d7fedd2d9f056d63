"""What a cell is: its gate and state counts, its pointwise step and that step's
gradient as torch functions (what the `torch` backend runs), and the step traced
to sympy, from which those functions and every kernel backend's pointwise code
are generated (define.py; no backend file names a cell).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from torch import Tensor

if TYPE_CHECKING:
    from .symbolic import SymbolicCell

# forward(x, rec, b, states) -> new states
#   x:      [B, Gx, NH, DH]  input pre-activations of this time step
#   rec:    [B, Gr, NH, DH]  recurrent contribution R[g, n] @ h_prev[n]
#   b:      [Gb, NH, DH]     biases
#   states: S tensors [B, NH, DH]; states[0] is h
Forward = Callable[[Tensor, Tensor, Tensor, Sequence[Tensor]], tuple[Tensor, ...]]

# backward(x, rec, b, states, d_new) -> (dx, drec, db, d_states)
#   d_new:    S tensors, the gradient of the loss w.r.t. the new states
#   dx, drec: [B, Gx|Gr, NH, DH] gradients of the pre-activations
#   db:       [B, Gb, NH, DH] per sample (the caller sums over B)
#   d_states: S tensors, the gradient w.r.t. the states entering the step, apart
#             from what flows through rec (the caller adds R^T drec to h)
Backward = Callable[[Tensor, Tensor, Tensor, Sequence[Tensor], Sequence[Tensor]], tuple]


@dataclass(frozen=True)
class Cell:
    name: str
    gates_x: int  # Gx
    gates_r: int  # Gr
    gates_b: int  # Gb
    state_names: tuple[str, ...]  # S names; the first is always "h"
    forward: Forward
    backward: Backward
    # whether every gate enters the step only as the sum x_g + rec_g + b_g, so that
    # dx, drec and the per-sample db are one tensor (not GRU: r scales R_n h + b_nhid)
    gates_are_sums: bool = True
    # the step traced to sympy (the code printers' input), for every cell define.py builds;
    # None only for a Cell constructed from torch functions alone, which the kernel backends
    # refuse. Left out of == and hash: the name and functions already tell cells apart, and
    # a Problem holding the cell may be hashed every call
    symbolic: SymbolicCell | None = field(default=None, compare=False)

    @property
    def num_states(self) -> int:
        return len(self.state_names)
