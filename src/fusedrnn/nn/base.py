"""The shared body of fusedrnn.nn.LSTM, GRU, RNN and SLSTM: torch.nn.LSTM's
constructor, parameters and forward, running each layer and direction through
fusedrnn.rnn."""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..api import rnn
from ..cells import get_cell
from .sequences import repack, reverse_within


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


class RecurrentBase(nn.Module):
    """Multi-layer, optionally bidirectional, multi-head recurrence."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        num_heads: int = 1,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.cell = get_cell(cell)
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers), ("num_heads", num_heads)):
            _check_positive_int(name, value)
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"dropout: expected a number in [0, 1], got {dropout!r}")
        if hidden_size % num_heads:
            raise ValueError(
                f"num_heads: expected a divisor of hidden_size={hidden_size}, got {num_heads}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}"
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.num_heads, self.backend = bidirectional, num_heads, backend
        self.head_size = hidden_size // num_heads
        gates = self.cell.gates_x
        factory = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                shapes = [(gates * hidden_size, layer_input), (gates * hidden_size, self.head_size)]
                if bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    shapes += [(gates * hidden_size,), (gates * hidden_size,)]
                for name, shape in zip(names, shapes):
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.LSTM's init: every parameter uniform in +-1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """Kept for drop-in compatibility with torch.nn.LSTM; nothing to do."""

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("num_heads", 1), ("backend", "auto")):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # -- the per-cell parts ---------------------------------------------------
    def _recurrent_bias(self, bias_hh: Tensor) -> Tensor:
        """torch's bias_hh as the recurrence's b [Gb, NH, DH]; bias_ih joins x."""
        return bias_hh.view(self.cell.gates_b, self.num_heads, self.head_size)

    def _pack_hidden(self, states: list[Tensor]):
        """The final states in torch's return format (a tuple for LSTM)."""
        return tuple(states) if len(states) > 1 else states[0]

    def _unpack_hidden(self, hx) -> list[Tensor]:
        if isinstance(hx, Tensor):
            hx = (hx,)
        expected = self.cell.num_states
        if not isinstance(hx, (tuple, list)) or len(hx) != expected:
            form = "a Tensor" if expected == 1 else f"a tuple of {expected} Tensors {self.cell.state_names}"
            raise TypeError(f"hx: expected {form}, got {type(hx).__name__}")
        return list(hx)

    # -- forward --------------------------------------------------------------
    def forward(self, input, hx=None):
        lengths = None
        if isinstance(input, PackedSequence):
            packed_input = input
            x, lengths = pad_packed_sequence(input, batch_first=True)  # in the caller's batch order
            batched = True
        else:
            packed_input = None
            if not isinstance(input, Tensor):
                raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"input: expected 2D (unbatched) or 3D input, got {input.dim()}D")
            batched = input.dim() == 3
            x = input if not batched else (input if self.batch_first else input.transpose(0, 1))
            x = x if batched else x.unsqueeze(0)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected input_size={self.input_size} features, got {x.shape[-1]}")
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"input: expected dtype {weight.dtype} (the parameters' dtype), got {x.dtype}")
        states = self._initial_states(hx, x.shape[0], batched)
        output, finals = self._layers(x, states, lengths)
        hidden = [torch.stack(f) for f in zip(*finals)]  # per state: [L*D, B, H]
        if packed_input is not None:
            output = repack(output, lengths, packed_input)
        elif not batched:
            output, hidden = output.squeeze(0), [h.squeeze(1) for h in hidden]
        elif not self.batch_first:
            output = output.transpose(0, 1)
        return output, self._pack_hidden(hidden)

    def _initial_states(self, hx, batch: int, batched: bool) -> Optional[list[Tensor]]:
        """hx as one [S, B, NH, DH] tensor per layer and direction, or None."""
        if hx is None:
            return None
        tensors = self._unpack_hidden(hx)
        layers = self.num_layers * self.num_directions
        expected = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        for name, t in zip(self.cell.state_names, tensors):
            if not isinstance(t, Tensor) or tuple(t.shape) != expected:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"hx: expected state {name!r} of shape {expected}, got {got}")
        stacked = torch.stack([t if batched else t.unsqueeze(1) for t in tensors], dim=1)  # [L*D, S, B, H]
        stacked = stacked.view(layers, len(tensors), batch, self.num_heads, self.head_size)
        return list(stacked.unbind(0))

    def _layers(self, x: Tensor, states, lengths):
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                h0 = None if states is None else states[index]
                y, final = self._direction(x, layer, direction == 1, h0, lengths)
                outputs.append(y)
                finals.append([s.reshape(s.shape[0], self.hidden_size) for s in final.unbind(0)])
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, finals

    def _direction(self, x: Tensor, layer: int, reverse: bool, h0, lengths):
        suffix = f"l{layer}" + ("_reverse" if reverse else "")
        w_ih, w_hh = getattr(self, f"weight_ih_{suffix}"), getattr(self, f"weight_hh_{suffix}")
        G, NH, DH = self.cell.gates_x, self.num_heads, self.head_size
        if reverse:
            x = reverse_within(x, lengths)
        if self.bias:
            gates = F.linear(x, w_ih, getattr(self, f"bias_ih_{suffix}"))
            b = self._recurrent_bias(getattr(self, f"bias_hh_{suffix}"))
        else:
            gates = F.linear(x, w_ih)
            b = gates.new_zeros(self.cell.gates_b, NH, DH)
        B, T = x.shape[:2]
        R = w_hh.view(G, NH, DH, DH)
        if gates.dtype != R.dtype:  # under autocast the projection ran in the low dtype
            R, b = R.to(gates.dtype), b.to(gates.dtype)
            h0 = None if h0 is None else h0.to(gates.dtype)
        y, final = rnn(gates.view(B, T, G, NH, DH), R, b, h0, cell=self.cell.name,
                       backend=self.backend, lengths=lengths)
        y = y.reshape(B, T, self.hidden_size)
        return (reverse_within(y, lengths) if reverse else y), final
