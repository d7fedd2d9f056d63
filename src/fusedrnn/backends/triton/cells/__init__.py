"""Per-cell Triton pointwise functions. Every cell takes and returns four gate
and four state tiles (the unused ones pass through or are zero), so the kernels
call any cell the same way:

  forward(x0..3, r0..3, b0..3, s0..3) -> s0..3 new
  backward(x0..3, r0..3, b0..3, s0..3, d0..3) -> dx0..3, drec0..3, db0..3, ds0..3

with the meaning of fusedrnn.cells.base.Backward. The functions of a cell made by
define_cell are generated in the same convention (cell_codegen.py); pointwise.py
gives the kernels either kind.
"""
from .elman import elman_relu_backward, elman_relu_forward, elman_tanh_backward, elman_tanh_forward
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .slstm import slstm_backward, slstm_forward

POINTWISE = {
    "lstm": (lstm_forward, lstm_backward),
    "gru": (gru_forward, gru_backward),
    "elman": (elman_tanh_forward, elman_tanh_backward),
    "elman_relu": (elman_relu_forward, elman_relu_backward),
    "slstm": (slstm_forward, slstm_backward),
}
