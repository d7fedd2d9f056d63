"""The project's correctness rule for a fast backend (docs/design.md, the
FlashAttention rule), used by the test suite and by the tuner's correctness
gate (tune/correctness.py) alike.

The fast backend and the torch backend run on the same low-precision inputs;
each is compared with the float64 reference computed from those inputs. The
fast backend passes when, for the outputs, the final states and every
gradient, its error is at most 2x the torch backend's, plus a small slack, and
under a loose sanity bound. Errors are relative Frobenius norms,
|got - ref| / |ref|: a max-abs error is dominated by the few elements where
a relu or a max flips sign under rounding, which either backend may hit.

Outputs are checked for non-finite values: run under
`fusedrnn.ops.outputs.poisoned()` so that an element a kernel forgets to
write is NaN instead of a stale value.
"""
from __future__ import annotations

import math

import torch

from .api import rnn
from .cells import get_cell

SLACK = {torch.float32: 1e-6, torch.float16: 1e-4, torch.bfloat16: 1e-3}
SANITY = {torch.float32: 1e-4, torch.float16: 5e-2, torch.bfloat16: 1e-1}
NAMES = ("y", "final", "dx", "dR", "db", "dstates")
# relu's derivative jumps at 0: wherever a pre-activation is within rounding of 0
# the two half-precision runs may take different branches, and the difference
# flows back through R^T. Measured on the H100: fast 9e-4 vs torch 2.9e-4 in fp16.
JUMP_SLACK = {"elman_relu": {torch.float16: 2e-3, torch.bfloat16: 1e-2}}


class MismatchError(AssertionError):
    """A fast backend's result breaks the rule (wrong dtype or shape, non-finite
    values, or an error over the allowed one)."""


def random_problem(cell, B, T, NH, DH, dtype=torch.float64, device="cpu", with_states=True, generator=None):
    """Fresh inputs of a realistic scale: R ~ 1/sqrt(DH), x and b ~ 1."""
    spec = get_cell(cell)
    kw = dict(dtype=torch.float64, device=device, generator=generator)
    x = torch.randn(B, T, spec.gates_x, NH, DH, **kw)
    # a relu recurrence at spectral radius ~1 is chaotic: its gradient flips with
    # any rounding; trained relu RNNs are contractive, so test one
    R = torch.randn(spec.gates_r, NH, DH, DH, **kw) / math.sqrt(DH) * (0.5 if cell == "elman_relu" else 1.0)
    b = torch.randn(spec.gates_b, NH, DH, **kw) * 0.5
    states = None
    if with_states:
        states = torch.randn(spec.num_states, B, NH, DH, **kw)
        if cell == "slstm":  # n > 0, m a plausible log-scale
            states[2] = states[2].abs() + 0.5
            states[3] = states[3] * 0.5
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    return cast(x), cast(R), cast(b), cast(states)


def torch_reference(cell, x, R, b, states=None, lengths=None):
    """y and final of the torch backend (the cells of cells/), run in float64."""
    return rnn(x.double(), R.double(), b.double(), None if states is None else states.double(),
                        cell=cell, backend="torch", lengths=lengths)


def _run(backend, cell, inputs, lengths, seeds, with_grads=True):
    # a backend's name, or a function of rnn's call form (the cuda_fused planned path)
    run = backend if callable(backend) else lambda *a, **k: rnn(*a, backend=backend, **k)
    if not with_grads:
        with torch.no_grad():
            return list(run(*inputs, cell=cell, lengths=lengths))
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    y, final = run(*leaves, cell=cell, lengths=lengths)
    loss = (y.double() * seeds[0]).sum() + (final.double() * seeds[1]).sum()
    grads = torch.autograd.grad(loss, leaves)
    return [y, final, *grads]


def check_backend(backend, cell, dtype, B, T, NH, DH, device, with_lengths=True, with_states=True,
                  with_grads=True, reference=torch_reference) -> dict:
    """Run `backend` (a name, or a function of rnn's call form) on fresh random inputs and compare it with `reference` (a
    float64 `reference(cell, x, R, b, states, lengths) -> (y, final)`) by the rule;
    raise MismatchError where it fails, else return {name: (error, torch's error)}.
    with_grads=False checks a forward-only call (under no_grad): y and final."""
    x, R, b, s = random_problem(cell, B, T, NH, DH, dtype=dtype, device=device, with_states=with_states)
    if s is None:
        s = torch.zeros(get_cell(cell).num_states, B, NH, DH, dtype=dtype, device=device)
    inputs = (x, R, b, s)
    lengths = None
    if with_lengths:
        lengths = torch.randint(1, T + 1, (B,), device=device)
        lengths[0] = T
    # the reference, with its gradients, in float64 from the very same rounded inputs
    ref_leaves = [t.detach().double().requires_grad_() for t in inputs]
    y_ref, final_ref = reference(cell, *ref_leaves, lengths=lengths)
    seeds = [torch.randn_like(y_ref), torch.randn_like(final_ref)]
    if cell == "slstm" and dtype != torch.float32:
        # sLSTM's stabiliser m' = max(log f + m, i) sends the gradient of m' to one
        # argument or the other: where the two are within rounding of each other,
        # any two half-precision runs (torch's included, as measured with
        # tools/triton_probe.py) may route it differently. h does not depend on m
        # (c and n scale together), so a loss on y and final h has no such jumps;
        # the raw final c, n, m get their loss weights in the fp32 tests.
        seeds[1][1:] = 0
    ref_grads = torch.autograd.grad((y_ref * seeds[0]).sum() + (final_ref * seeds[1]).sum(), ref_leaves)
    reference_values = [y_ref, final_ref, *ref_grads]
    fast = _run(backend, cell, inputs, lengths, seeds, with_grads)
    baseline = _run("torch", cell, inputs, lengths, seeds, with_grads)
    report = {}
    for name, got, base, ref in zip(NAMES, fast, baseline, reference_values):
        if got.dtype != dtype or got.shape != ref.shape:
            raise MismatchError(f"{name}: expected {dtype} of shape {tuple(ref.shape)}, "
                                f"got {got.dtype} of shape {tuple(got.shape)}")
        if not torch.isfinite(got).all():
            raise MismatchError(f"{name}: non-finite values (unwritten output?)")
        norm = ref.norm().item() or 1.0
        err = (got.double() - ref).norm().item() / norm
        err_torch = (base.double() - ref).norm().item() / norm
        report[name] = (err, err_torch)
        slack = SLACK[dtype] + JUMP_SLACK.get(cell, {}).get(dtype, 0.0)
        if err > 2 * err_torch + slack:
            raise MismatchError(f"{name}: error {err:.3g} > 2 x torch's {err_torch:.3g} (+ slack {slack:.3g})")
        if err > SANITY[dtype]:
            raise MismatchError(f"{name}: relative error {err:.3g} over the sanity bound {SANITY[dtype]:.3g}")
    return report
