"""torch's own recurrent kernels (the ones torch.nn.LSTM/GRU/RNN run: fused CPU
loops, cuDNN) for a whole stack of layers. Where they compute exactly what a
fusedrnn module computes (one head, a cell torch.nn has) they are a legitimate
path: on a CPU they are the fastest there is, and they run LSTM projections,
which fusedrnn's kernels do not."""
from __future__ import annotations

from typing import NamedTuple, Optional

from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence

# fusedrnn cell -> torch.nn's mode and its kernel
MODES = {"lstm": "LSTM", "gru": "GRU", "elman": "RNN_TANH", "elman_relu": "RNN_RELU"}
_KERNELS = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}


class StackConfig(NamedTuple):
    mode: str  # a key of _KERNELS
    has_bias: bool
    num_layers: int
    dropout: float
    training: bool
    bidirectional: bool


def run_stack(config: StackConfig, flat_weights: list[Tensor], x, hidden: list[Tensor]):
    """x: [B, T, F] (batch first) or a PackedSequence (in its own sorted order);
    hidden: one [L*D, B, H_s] tensor per state, in x's batch order.
    Returns the output ([B, T, D*H_out], or the packed data) and the final states."""
    kernel = _KERNELS[config.mode]
    hx = tuple(hidden) if config.mode == "LSTM" else hidden[0]
    common = (flat_weights, config.has_bias, config.num_layers, config.dropout, config.training,
              config.bidirectional)
    if isinstance(x, PackedSequence):
        result = kernel(x.data, x.batch_sizes, hx, *common)
    else:
        result = kernel(x, hx, *common, True)
    return result[0], list(result[1:])


def mode_of(cell_name: str) -> Optional[str]:
    """torch.nn's mode for a fusedrnn cell, or None where torch.nn has no such cell."""
    return MODES.get(cell_name)
