"""What `fusedrnn bench` can time. A provider turns one case into a callable
(or says why it cannot run here)."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import fusedrnn

from ..cells import get_cell
from .planned import PREFIX, planned_function


@dataclass(frozen=True)
class Case:
    cell: str
    dtype: torch.dtype
    B: int
    T: int
    NH: int
    DH: int
    backward: bool  # forward+backward, else forward only
    device: str = "cuda"

    @property
    def hidden(self) -> int:
        return self.NH * self.DH


class Unavailable(Exception):
    """The provider cannot run this case here; the message says why."""


def _inputs(case: Case):
    """x [B, T, Gx, NH, DH], R [Gr, NH, DH, DH] and b [Gb, NH, DH] of the case's
    cell, with the gate counts of fusedrnn's cell spec."""
    spec = get_cell(case.cell)
    kw = dict(device=case.device, dtype=case.dtype)
    x = torch.randn(case.B, case.T, spec.gates_x, case.NH, case.DH, **kw)
    R = torch.randn(spec.gates_r, case.NH, case.DH, case.DH, **kw) / math.sqrt(case.DH)
    b = torch.randn(spec.gates_b, case.NH, case.DH, **kw) * 0.1
    return x, R, b


def _ours(backend):
    """fusedrnn.rnn with `backend`; a name `cuda_fused:FWD/BWD` runs the plans of those kernel
    families (bench/planned.py) through the internal call path."""
    def make(case: Case):
        report = fusedrnn.backends()[backend.split(":")[0]]  # cuda_fused:FWD/BWD is cuda_fused's
        if not report.available:  # before allocating anything
            raise Unavailable(report.reason)
        kw = dict(device=case.device, dtype=case.dtype)
        x, R, b = _inputs(case)
        states = torch.zeros(get_cell(case.cell).num_states, case.B, case.NH, case.DH, **kw)
        if backend.startswith(PREFIX):
            try:
                run = planned_function(backend, case)
            except ValueError as error:  # no plan of that family for the case
                raise Unavailable(str(error)) from None
        else:
            def run(*inputs, cell, lengths=None):
                return fusedrnn.rnn(*inputs, cell=cell, backend=backend, lengths=lengths)
        if not case.backward:
            def fwd():
                with torch.no_grad():
                    return run(x, R, b, states, cell=case.cell)
            return fwd
        leaves = [t.requires_grad_() for t in (x, R, b)]
        dy = torch.randn(case.B, case.T, case.NH, case.DH, **kw)

        def fwd_bwd():
            y, _ = run(*leaves, states, cell=case.cell)
            return torch.autograd.grad(y, leaves, dy)
        return fwd_bwd
    return make


def provider_function(name: str):
    """What makes the run function of provider `name`: one of PROVIDERS, or cuda_fused:FWD/BWD."""
    return _ours(name) if name.startswith(PREFIX) else PROVIDERS[name]


TORCH_MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}


def _cudnn(dtype):
    def make(case: Case):
        if not torch.backends.cudnn.is_available() or case.device != "cuda":
            raise Unavailable("cuDNN needs a CUDA GPU")
        return _torch_module(case, dtype)
    return make


def _torch_nn(case: Case):
    """torch.nn.LSTM / GRU / RNN in the case's dtype on its device: cuDNN on a
    GPU, oneDNN (or torch's own kernels) on a CPU."""
    return _torch_module(case, case.dtype)


def _torch_module(case: Case, dtype):
    if case.cell not in TORCH_MODULES:
        raise Unavailable(f"torch.nn has no {case.cell}")
    # torch.nn runs the dense hidden x hidden recurrence (no heads) and also the
    # input projection: it does more work than a block-diagonal recurrence
    module = TORCH_MODULES[case.cell](case.hidden, case.hidden, batch_first=True, device=case.device, dtype=dtype)
    inp = torch.randn(case.B, case.T, case.hidden, device=case.device, dtype=dtype)
    if not case.backward:
        def fwd():
            with torch.no_grad():
                return module(inp)
        return fwd
    inp.requires_grad_()
    dout = torch.randn_like(inp)

    def fwd_bwd():
        out, _ = module(inp)
        return torch.autograd.grad(out, [inp, *module.parameters()], dout)
    return fwd_bwd


def _sdpa(case: Case):
    kw = dict(device=case.device, dtype=case.dtype)
    q, k, v = (torch.randn(case.B, case.NH, case.T, case.DH, **kw) for _ in range(3))
    if not case.backward:
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    leaves = [t.requires_grad_() for t in (q, k, v)]
    dout = torch.randn_like(q)

    def fwd_bwd():
        out = F.scaled_dot_product_attention(*leaves, is_causal=True)
        return torch.autograd.grad(out, leaves, dout)
    return fwd_bwd


# flashrnn (Pöppel, Beck, Hochreiter 2024, the paper's library), through its public
# API as its README documents it:
#   states, last_states = flashrnn(Wx, R, b, states=states_initial, function="lstm", backend="cuda_fused")
# Wx [B, T, G, N, D], R [G, N, D, D], b [G, N, D], states_initial [S, B, 1, N, D];
# functions lstm, gru, elman, slstm; backends cuda_fused, cuda, triton, vanilla.
# For the LSTM, G = 4 and S = 2 (h, c), h first. The README's LSTM is the only
# example: the other cells get the gate and state counts of fusedrnn's own cell
# spec (the same layout, the same tensors our providers time); a shape flashrnn
# rejects ends as a "failed:" note of that row, not a crash.
FLASHRNN_FUNCTIONS = {"lstm": "lstm", "gru": "gru", "elman": "elman", "slstm": "slstm"}  # fusedrnn cell: flashrnn's
FLASHRNN_BACKEND = "cuda_fused"
FLASHRNN_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def _flashrnn_function():
    """flashrnn's `flashrnn` function, or Unavailable with the reason."""
    try:
        import flashrnn
    except Exception as error:  # any failure to import or build is a reason, not a crash
        raise Unavailable(f"flashrnn not importable: {type(error).__name__}: {error}") from None
    function = getattr(flashrnn, "flashrnn", None)
    if not callable(function):
        raise Unavailable("flashrnn is importable but has no function flashrnn (`from flashrnn import flashrnn`)")
    if not _has_cuda():
        raise Unavailable("flashrnn needs a CUDA GPU")
    return function


def _accepts(function, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): pass only what the README shows
        return False


def _flashrnn(case: Case):
    """flashrnn's cuda_fused backend on the case, forward or forward+backward
    (gradients of h over the sequence with respect to Wx, R and b, as ours)."""
    function = _flashrnn_function()
    if case.cell not in FLASHRNN_FUNCTIONS:
        raise Unavailable(f"flashrnn has no {case.cell} (it has {', '.join(FLASHRNN_FUNCTIONS)})")
    spec = get_cell(case.cell)
    Wx, R, b = _inputs(case)
    initial = torch.zeros(len(spec.state_names), case.B, 1, case.NH, case.DH, device=case.device, dtype=case.dtype)
    options = dict(states=initial, function=FLASHRNN_FUNCTIONS[case.cell], backend=FLASHRNN_BACKEND)
    if _accepts(function, "dtype"):  # some flashrnn versions document dtype="bfloat16"; the README read
        # for this adapter has no such argument, so it is passed only where the function takes it
        options["dtype"] = FLASHRNN_DTYPES.get(case.dtype, str(case.dtype).replace("torch.", ""))

    def hidden(states):
        # states, h first: [S, B, T+1, N, D] with the initial state as step 0 (as some
        # versions document it) or [S, B, T, N, D] (the README's comment read here): the last
        # T steps are the outputs either way
        return states[0][:, -case.T:]

    if not case.backward:
        def fwd():
            with torch.no_grad():
                states, _ = function(Wx, R, b, **options)
                return hidden(states)
        return fwd
    leaves = [t.requires_grad_() for t in (Wx, R, b)]
    dy = torch.randn(case.B, case.T, case.NH, case.DH, device=case.device, dtype=case.dtype)

    def fwd_bwd():
        states, _ = function(*leaves, **options)
        return torch.autograd.grad(hidden(states), leaves, dy)
    return fwd_bwd


def unavailable_reason(provider: str) -> str | None:
    """Why `provider` can run no case at all on this machine, or None if it may
    run some (a case can still be refused: torch.nn has no sLSTM)."""
    if provider.split(":")[0] in fusedrnn.backends():
        report = fusedrnn.backends()[provider.split(":")[0]]
        return None if report.available else report.reason
    if provider.startswith("cudnn"):
        return None if _has_cuda() and torch.backends.cudnn.is_available() else "cuDNN needs a CUDA GPU"
    if provider == "flashrnn":
        try:
            _flashrnn_function()
        except Unavailable as why:
            return str(why)
    return None


PROVIDERS = {
    "triton": _ours("triton"),
    "cuda_fused": _ours("cuda_fused"),
    "cuda_alternating": _ours("cuda_alternating"),
    "torch": _ours("torch"),
    "torch_nn": _torch_nn,
    "cudnn_fp16": _cudnn(torch.float16),
    "cudnn_bf16": _cudnn(torch.bfloat16),
    "sdpa": _sdpa,
    "flashrnn": _flashrnn,
}
