"""What `fusedrnn bench` can time. A provider turns one case into a callable
(or says why it cannot run here)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import fusedrnn

from ..cells import get_cell


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


def _ours(backend):
    def make(case: Case):
        spec = get_cell(case.cell)
        kw = dict(device=case.device, dtype=case.dtype)
        x = torch.randn(case.B, case.T, spec.gates_x, case.NH, case.DH, **kw)
        R = torch.randn(spec.gates_r, case.NH, case.DH, case.DH, **kw) / math.sqrt(case.DH)
        b = torch.randn(spec.gates_b, case.NH, case.DH, **kw) * 0.1
        report = fusedrnn.backends()[backend]
        if not report.available:
            raise Unavailable(report.reason)
        if not case.backward:
            def fwd():
                with torch.no_grad():
                    return fusedrnn.rnn(x, R, b, cell=case.cell, backend=backend)
            return fwd
        leaves = [t.requires_grad_() for t in (x, R, b)]
        dy = torch.randn(case.B, case.T, case.NH, case.DH, **kw)

        def fwd_bwd():
            y, _ = fusedrnn.rnn(*leaves, cell=case.cell, backend=backend)
            return torch.autograd.grad(y, leaves, dy)
        return fwd_bwd
    return make


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


def _flashrnn(case: Case):
    try:
        import flashrnn  # noqa: F401
    except Exception as error:  # any failure to import or build is a reason, not a crash
        raise Unavailable(f"flashrnn not importable: {type(error).__name__}: {error}")
    raise Unavailable("flashrnn is importable but its adapter is not written yet")


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
