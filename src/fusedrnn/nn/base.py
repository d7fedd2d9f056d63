"""The shared body of fusedrnn.nn.LSTM, GRU, RNN and SLSTM: torch.nn.LSTM's
constructor, parameters and forward. Each layer and direction runs through
fusedrnn.rnn, or the whole stack through torch's own kernels where those
compute the same thing and are the better path (see `runs_natively`)."""
from __future__ import annotations

import math
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..api import rnn
from ..cells import get_cell
from .native import StackConfig, mode_of, run_stack
from .projection import projected_lstm
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
        proj_size: int = 0,
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
        if not isinstance(backend, str):
            raise TypeError(f"backend: expected a str, got {type(backend).__name__}")
        self._check_projection(proj_size, hidden_size, num_heads, backend)
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}"
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.num_heads, self.backend = num_heads, backend
        self.head_size = hidden_size // num_heads
        gates = self.cell.gates_x
        factory = {"device": device, "dtype": dtype}
        output_size = proj_size or hidden_size  # the h each layer hands on
        recurrent_input = proj_size or self.head_size
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else output_size * self.num_directions
            for suffix in ("", "_reverse")[:self.num_directions]:
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                shapes = [(gates * hidden_size, layer_input), (gates * hidden_size, recurrent_input)]
                if bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    shapes += [(gates * hidden_size,), (gates * hidden_size,)]
                if proj_size:
                    names.append(f"weight_hr_l{layer}{suffix}")
                    shapes.append((proj_size, hidden_size))
                for name, shape in zip(names, shapes):
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                self._all_weights.append(names)
        self.reset_parameters()

    def _check_projection(self, proj_size, hidden_size: int, num_heads: int, backend: str) -> None:
        if not isinstance(proj_size, numbers.Integral) or isinstance(proj_size, bool) or proj_size < 0:
            raise ValueError(f"proj_size: expected an integer >= 0, got {proj_size!r}")
        if proj_size == 0:
            return
        if self.cell.name != "lstm":
            raise ValueError(f"proj_size: supported for LSTM only, not cell {self.cell.name!r}; got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected a value smaller than hidden_size={hidden_size}, got {proj_size}")
        if num_heads != 1:
            raise ValueError(f"num_heads: proj_size > 0 expects num_heads=1, got {num_heads}")
        if backend not in ("auto", "torch"):
            raise ValueError(
                f"backend: proj_size > 0 runs on 'auto' (torch's own kernels) or 'torch' (a plain loop), "
                f"got {backend!r}"
            )

    def reset_parameters(self) -> None:
        """torch.nn.LSTM's init: every parameter uniform in +-1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """Kept for drop-in compatibility with torch.nn.LSTM; nothing to do."""

    def __prepare_scriptable__(self):
        # torch.jit.script calls this first: refuse here, clearly, rather than fail
        # deep inside TorchScript's compiler on the custom ops and Python dispatch
        raise RuntimeError(
            f"torch.jit.script: fusedrnn.nn.{type(self).__name__} cannot be scripted (its backends are "
            "torch.library custom ops chosen in Python); use torch.compile, or torch.jit.trace"
        )

    # -- torch.nn.RNNBase's attributes -----------------------------------------
    @property
    def mode(self) -> str:
        """torch.nn's name of the cell ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'), or 'SLSTM'."""
        return mode_of(self.cell.name) or self.cell.name.upper()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _flat_weights_names(self) -> list[str]:
        return [name for names in self._all_weights for name in names]

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0), ("num_heads", 1),
                              ("backend", "auto")):
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

    def _state_sizes(self) -> list[int]:
        """The feature size of each state: h is projected when proj_size > 0."""
        return [self.proj_size or self.hidden_size] + [self.hidden_size] * (self.cell.num_states - 1)

    # -- forward --------------------------------------------------------------
    def runs_natively(self, device: torch.device, resets=None) -> bool:
        """Whether forward runs torch's own kernels (nn/native.py) rather than
        fusedrnn.rnn. Only under backend="auto", only where they compute exactly
        this module (one head, a cell torch.nn has), and only where they are the
        better path: on a CPU (a fused C++ loop against a Python one) and for a
        projection (which fusedrnn's kernels do not run) or shape inference on meta.
        Never under torch.compile, which cannot trace torch's recurrent kernels:
        there the custom ops (or, for a projection, its torch loop) run.
        Never with resets, which torch's kernels do not have."""
        if resets is not None:
            return False
        if self.backend != "auto" or self.num_heads != 1 or mode_of(self.cell.name) is None:
            return False
        if torch.compiler.is_compiling():
            return False
        return device.type in ("cpu", "meta") or self.proj_size > 0

    def forward(self, input, hx=None, *, resets=None):
        if isinstance(input, PackedSequence):
            if resets is not None:
                raise ValueError("resets: expected a padded Tensor input, got a PackedSequence "
                                 "(resets are laid out like a padded input's batch and time dims)")
            # torch's kernels take the packed data as it is; only fusedrnn.rnn pads it
            x, batch, batched = input.data, int(input.batch_sizes[0]), True
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"input: expected 2D (unbatched) or 3D input, got {input.dim()}D")
            batched = input.dim() == 3
            x = input if not batched else (input if self.batch_first else input.transpose(0, 1))
            x = x if batched else x.unsqueeze(0)
            batch = x.shape[0]
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input: expected input_size={self.input_size} features, got {x.shape[-1]}")
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"input: expected dtype {weight.dtype} (the parameters' dtype), got {x.dtype}")
        hidden = self._hidden(hx, x, batch, batched)
        resets = self._resets(resets, x, batched)
        if self.runs_natively(x.device, resets):
            return self._native(input if isinstance(input, PackedSequence) else x, hidden, batched)
        if isinstance(input, PackedSequence):
            x, lengths = pad_packed_sequence(input, batch_first=True)  # in the caller's batch order
            output, hidden = self._layers(x, hidden, lengths)
            return repack(output, lengths, input), self._pack_hidden(hidden)
        output, hidden = self._layers(x, hidden, None, resets)
        return self._unbatched_or_time_first(output, hidden, batched)

    def _resets(self, resets, x: Tensor, batched: bool):
        """resets in the caller's layout ([B, T] batch first, [T, B], or [T] unbatched)
        as [B, T] like x [B, T, F]; None stays None."""
        if resets is None:
            return None
        layout = "[T]" if not batched else ("[B, T]" if self.batch_first else "[T, B]")
        B, T = x.shape[:2]
        expected = (T,) if not batched else ((B, T) if self.batch_first else (T, B))
        if not isinstance(resets, Tensor):
            raise TypeError(f"resets: expected a bool Tensor of shape {layout}, got {type(resets).__name__}")
        if tuple(resets.shape) != expected:
            raise ValueError(f"resets: expected shape {layout} = {expected}, got {tuple(resets.shape)}")
        if resets.dtype != torch.bool:
            raise TypeError(f"resets: expected dtype torch.bool, got {resets.dtype}")
        if resets.device != x.device:
            raise ValueError(f"resets: expected device {x.device} (the device of input), got {resets.device}")
        if not batched:
            return resets.unsqueeze(0)
        return resets if self.batch_first else resets.t()

    def _unbatched_or_time_first(self, output: Tensor, hidden: list[Tensor], batched: bool):
        """[B, T, F] output and [L*D, B, H] states in the layout the caller gave."""
        if not batched:
            output, hidden = output.squeeze(0), [h.squeeze(1) for h in hidden]
        elif not self.batch_first:
            output = output.transpose(0, 1)
        return output, self._pack_hidden(hidden)

    def _hidden(self, hx, like: Tensor, batch: int, batched: bool) -> list[Tensor]:
        """hx as one [L*D, B, size] tensor per state (zeros like `like` when hx is None)."""
        layers = self.num_layers * self.num_directions
        if hx is None:
            return [like.new_zeros(layers, batch, size) for size in self._state_sizes()]
        tensors = self._unpack_hidden(hx)
        for name, t, size in zip(self.cell.state_names, tensors, self._state_sizes()):
            expected = (layers, batch, size) if batched else (layers, size)
            if not isinstance(t, Tensor) or tuple(t.shape) != expected:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"hx: expected state {name!r} of shape {expected}, got {got}")
        return [t if batched else t.unsqueeze(1) for t in tensors]

    def _native(self, x, hidden: list[Tensor], batched: bool):
        """The whole stack through torch's kernels; x is [B, T, F] or the caller's PackedSequence."""
        config = StackConfig(self.mode, self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if not isinstance(x, PackedSequence):
            return self._unbatched_or_time_first(*run_stack(config, self._flat_weights, x, hidden), batched)
        if x.sorted_indices is not None:  # the kernel walks the packed (sorted) order; hx and h_n the caller's
            hidden = [h.index_select(1, x.sorted_indices) for h in hidden]
        output, hidden = run_stack(config, self._flat_weights, x, hidden)
        if x.unsorted_indices is not None:
            hidden = [h.index_select(1, x.unsorted_indices) for h in hidden]
        packed = PackedSequence(output, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        return packed, self._pack_hidden(hidden)

    def _layers(self, x: Tensor, hidden: list[Tensor], lengths, resets=None):
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                y, final = self._direction(x, layer, direction == 1, [h[index] for h in hidden], lengths, resets)
                outputs.append(y)
                finals.append(final)
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, [torch.stack(f) for f in zip(*finals)]  # per state: [L*D, B, size]

    def _direction(self, x: Tensor, layer: int, reverse: bool, h0: list[Tensor], lengths, resets=None):
        """One layer in one direction: y [B, T, size] and the final states, S x [B, size].
        The reverse direction flips each sequence (each segment, with resets) in place,
        so the same resets mark the flipped segments' starts."""
        suffix = f"l{layer}" + ("_reverse" if reverse else "")
        w_ih, w_hh = getattr(self, f"weight_ih_{suffix}"), getattr(self, f"weight_hh_{suffix}")
        G, NH, DH = self.cell.gates_x, self.num_heads, self.head_size
        if reverse:
            x = reverse_within(x, lengths, resets)
        if self.bias:
            gates = F.linear(x, w_ih, getattr(self, f"bias_ih_{suffix}"))
            b = self._recurrent_bias(getattr(self, f"bias_hh_{suffix}"))
        else:
            gates = F.linear(x, w_ih)
            b = gates.new_zeros(self.cell.gates_b, NH, DH)
        B, T = x.shape[:2]
        if gates.dtype != w_hh.dtype:  # under autocast the projection ran in the low dtype
            w_hh, b = w_hh.to(gates.dtype), b.to(gates.dtype)
            h0 = [h.to(gates.dtype) for h in h0]
        if self.proj_size:
            w_hr = getattr(self, f"weight_hr_{suffix}").to(gates.dtype)
            y, final = projected_lstm(gates, w_hh, w_hr, b, h0[0], h0[1], lengths, resets)
        else:
            states = torch.stack(h0).view(len(h0), B, NH, DH)
            y, final = rnn(gates.view(B, T, G, NH, DH), w_hh.view(G, NH, DH, DH), b, states,
                           cell=self.cell.name, backend=self.backend, lengths=lengths, resets=resets)
            y, final = y.reshape(B, T, self.hidden_size), [s.reshape(B, self.hidden_size) for s in final]
        return (reverse_within(y, lengths, resets) if reverse else y), list(final)
