"""Wraps a backend's forward and backward as `torch.library` custom ops.

Every backend runs behind two opaque ops, `fusedrnn::<name>_fwd` and
`fusedrnn::<name>_bwd`, so `torch.compile(fullgraph=True)` sees one node per
call (no graph break, no tracing into the time loop) and autograd calls the
backend's own backward. A backend supplies three plain functions:

  forward(x, R, b, states, lengths, cell, need_saved, resets=None) -> (y, final, saved)
  backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets=None)
      -> (dx, dR, db, dstates)
  saved_like(x, states, cell, need_saved) -> an empty tensor shaped like `saved`

`resets` ([B, T] bool or None) comes last and defaulted, by keyword, so that
a plan-bound launcher of the explicit path is called without it where a call
has none; the ops themselves take it right after `lengths`.

`saved` is whatever the backend keeps for its backward (an empty tensor when no
gradient is needed). Outputs are made contiguous here, once for all backends.
The returned `run(x, R, b, states, lengths, cell, need_grad, resets=None) -> (y, final)`
is what the backend registers.

A backend may also supply `differentiable(x, R, b, states, lengths, cell,
resets=None) -> (y, final)` in torch ops autograd can differentiate in both modes: with it,
forward-mode AD and double backward work; without it they raise
NotImplementedError naming the backend.

`explicit_recurrence` runs a forward and backward of the same form eagerly,
with the same autograd Function but no custom op: the internal call path with
explicit plans (an op has one fixed signature a backend, and a plan is no op
argument).
"""
from __future__ import annotations

import inspect
from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from ..problem import check_lengths_range


# The ops are defined on a torch.library.Library with a CompositeExplicitAutograd kernel, not by
# torch.library.custom_op: its wrapper checks every call's outputs for aliasing and binds its
# arguments in Python, ~33 us a call of this CPU's ~50 (2026-12-07), twice a training step, which
# a call at B=16 pays in full where the host's time reaches the GPU's (docs/perf-notes.md).
_LIBRARY = torch.library.Library("fusedrnn", "FRAGMENT")
_INPUTS = "Tensor x, Tensor R, Tensor b, Tensor states, Tensor? lengths, Tensor? resets"


def _define(name: str, schema_rest: str, kernel: Callable, fake: Callable) -> None:
    """The op fusedrnn::<name>(schema) running `kernel` on every device, `fake` under torch.compile;
    tagged pt2-compliant, as custom_op tags its ops (Dynamo under only_allow_pt2_compliant_ops)."""
    _LIBRARY.define(f"{name}({schema_rest}", tags=(torch.Tag.pt2_compliant_tag,))
    _LIBRARY.impl(name, kernel, "CompositeExplicitAutograd")
    torch.library.register_fake(f"fusedrnn::{name}", fake, lib=_LIBRARY)


def _refuse_backward_of_backward(backend: str) -> Callable:
    def backward(ctx, *grads):
        raise NotImplementedError(f"differentiating the op fusedrnn::{backend}_bwd (a double backward through "
                                  "torch.ops) is not implemented; fusedrnn.rnn(..., backend='torch') supports it")
    return backward


def _contiguous(tensors):
    # the fake kernels promise contiguous outputs; torch.compile checks strides
    return tuple(t.contiguous() for t in tensors)


def define_recurrence_ops(
    backend: str, forward: Callable, backward: Callable, saved_like: Callable,
    differentiable: Optional[Callable] = None,
):
    def fwd(x, R, b, states, lengths, resets, cell, need_saved):
        # checked here, in the op, so that compiled code raises as eager code does
        check_lengths_range(lengths, x.shape[1])
        return _contiguous(forward(x, R, b, states, lengths, cell, need_saved, resets=resets))

    def fwd_fake(x, R, b, states, lengths, resets, cell, need_saved):
        B, T, _, NH, DH = x.shape
        return x.new_empty(B, T, NH, DH), states.new_empty(states.shape), saved_like(x, states, cell, need_saved)

    def bwd(dy, dfinal, x, R, b, states, lengths, resets, y, final, saved, cell):
        return _contiguous(backward(dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, resets=resets))

    def bwd_fake(dy, dfinal, x, R, b, states, lengths, resets, y, final, saved, cell):
        return tuple(t.new_empty(t.shape) for t in (x, R, b, states))

    _define(f"{backend}_fwd", f"{_INPUTS}, str cell, bool need_saved) -> (Tensor, Tensor, Tensor)", fwd, fwd_fake)
    _define(f"{backend}_bwd", f"Tensor dy, Tensor dfinal, {_INPUTS}, Tensor y, Tensor final, Tensor saved, str cell) "
            "-> (Tensor, Tensor, Tensor, Tensor)", bwd, bwd_fake)

    # the ops as torch.ops sees them: what Dynamo can trace when the Function calls them
    ops = getattr(torch.ops.fusedrnn, f"{backend}_fwd").default, getattr(torch.ops.fusedrnn, f"{backend}_bwd").default
    # the op's own first-order autograd, for callers of torch.ops.fusedrnn.* (opcheck, export)
    torch.library.register_autograd(f"fusedrnn::{backend}_fwd", lambda ctx, *grads: _first_order(ops[1], ctx, *grads),
                                    setup_context=_save)
    # and the backward op's: none, refused by name (without an autograd kernel, a second
    # backward through torch.ops.fusedrnn.<backend>_bwd would silently skip it)
    torch.library.register_autograd(f"fusedrnn::{backend}_bwd", _refuse_backward_of_backward(backend))
    recurrence = _autograd_functions(backend, *ops, differentiable)

    def run(x, R, b, states, lengths, cell, need_grad, resets=None):
        if torch.jit.is_tracing():
            # torch.jit.trace records the op itself (a Python Function would not
            # replay), its first-order autograd the op's own; whether to keep what
            # backward needs is baked into the trace, so it must not depend on grad mode
            need_saved = any(t.requires_grad for t in (x, R, b, states))
            y, final, _ = ops[0](x, R, b, states, lengths, resets, cell, need_saved)
            return y, final
        # Dynamo cannot trace a Function that defines jvp (it graph-breaks), and
        # forward-mode AD under torch.compile is not a thing: compiled code gets
        # the Function without jvp, eager code the one with it.
        function = recurrence.compiled if torch.compiler.is_compiling() else recurrence.eager
        y, final, _ = function.apply(x, R, b, states, lengths, resets, cell, need_grad)
        return y, final

    return run


def explicit_recurrence(backend: str, forward: Callable, backward: Callable) -> Callable:
    """`forward` and `backward` (the forms above, a plan bound in) as a function of
    `fusedrnn.rnn`'s call form, `(x, R, b, states, *, cell, lengths=None, resets=None)
    -> (y, final)` (states required), differentiable once as the backend's ops are.
    `forward` and `backward` get `resets` by keyword where a call has them."""
    function = _autograd_functions(backend, _op_order_forward(forward), _op_order_backward(backward), None).compiled

    def run(x, R, b, states, *, cell: str, lengths=None, resets=None):
        check_lengths_range(lengths, x.shape[1])  # as the ops check it
        need_saved = torch.is_grad_enabled() and any(t.requires_grad for t in (x, R, b, states))
        y, final, _ = function.apply(x, R, b, states, lengths, resets, cell, need_saved)
        return y, final

    return run


def _given_resets(resets) -> dict:
    return {} if resets is None else {"resets": resets}


def _op_order_forward(forward):
    """A forward of the backend form as the ops' argument order calls it (resets by keyword, where given)."""
    return lambda x, R, b, states, lengths, resets, cell, need_saved: forward(
        x, R, b, states, lengths, cell, need_saved, **_given_resets(resets))


def _op_order_backward(backward):
    """A backward of the backend form as the ops' argument order calls it (resets by keyword, where given)."""
    return lambda dy, dfinal, x, R, b, states, lengths, resets, y, final, saved, cell: backward(
        dy, dfinal, x, R, b, states, lengths, y, final, saved, cell, **_given_resets(resets))


def _save(ctx, inputs, output):
    x, R, b, states, lengths, resets, cell, _ = inputs
    y, final, saved = output
    ctx.save_for_backward(x, R, b, states, lengths, resets, y, final, saved)
    ctx.mark_non_differentiable(saved)
    ctx.cell = cell


def _upstream(y, final, dy, dfinal):
    """The gradients flowing into y and final, zeros where autograd passes None."""
    return (torch.zeros_like(y) if dy is None else dy), (torch.zeros_like(final) if dfinal is None else dfinal)


def _first_order(bwd, ctx, dy, dfinal, _dsaved):
    """The gradients of (x, R, b, states, lengths, resets, cell, need_saved) by the backend's backward op."""
    x, R, b, states, lengths, resets, y, final, saved = ctx.saved_tensors
    dy, dfinal = _upstream(y, final, dy, dfinal)
    return (*bwd(dy, dfinal, x, R, b, states, lengths, resets, y, final, saved, ctx.cell), None, None, None, None)


class _Functions(NamedTuple):
    compiled: type
    eager: type


def _autograd_functions(backend: str, fwd, bwd, differentiable: Optional[Callable]) -> _Functions:
    """The autograd.Function around a backend's two ops, in the form torch.func
    needs (setup_context apart from forward, a generated vmap rule)."""
    refuse_twice = f"double backward (create_graph=True) through backend={backend!r}"
    refuse_tangents = (
        f"forward-mode AD (torch.func.jvp, jacfwd, torch.autograd.forward_ad) through backend={backend!r}"
    )

    class Recurrence(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x, R, b, states, lengths, resets, cell, need_saved):
            return fwd(x, R, b, states, lengths, resets, cell, need_saved)

        setup_context = staticmethod(_save)

        @staticmethod
        def backward(ctx, dy, dfinal, dsaved):
            # grad mode is on here under create_graph=True and under torch.func.grad
            if not torch.is_grad_enabled():
                return _first_order(bwd, ctx, dy, dfinal, dsaved)
            x, R, b, states, lengths, resets, y, final, _ = ctx.saved_tensors
            inputs = (x, R, b, states)
            dy, dfinal = _upstream(y, final, dy, dfinal)
            if differentiable is not None:
                grads = _differentiable_grads(differentiable, inputs, lengths, resets, ctx.cell, dy, dfinal)
                return (*grads, None, None, None, None)
            with torch.no_grad():
                grads = _first_order(bwd, ctx, dy, dfinal, dsaved)[:4]
            message = refuse_twice + " is not implemented; backend='torch' supports it"
            return (*_Unsupported.apply(message, *grads, *inputs, dy, dfinal), None, None, None, None)

    # Function.apply binds every call's arguments to forward's signature (setup_context's form);
    # held on the function, inspect.signature returns it without rebuilding it from the code
    # object: half of that binding's host time (~30 of ~55 us a call, CPU, 2026-12-07)
    Recurrence.forward.__signature__ = inspect.signature(Recurrence.forward)

    class RecurrenceWithTangents(Recurrence):
        @staticmethod
        def setup_context(ctx, inputs, output):
            Recurrence.setup_context(ctx, inputs, output)
            x, R, b, states, lengths, resets = inputs[:6]
            ctx.save_for_forward(x, R, b, states, lengths, resets)

        @staticmethod
        def jvp(ctx, x_t, R_t, b_t, states_t, *_):
            if differentiable is None:
                raise NotImplementedError(refuse_tangents + " is not implemented; backend='torch' supports it")
            x, R, b, states, lengths, resets = ctx.saved_tensors
            primals = (x, R, b, states)
            given = (x_t, R_t, b_t, states_t)
            tangents = tuple(torch.zeros_like(p) if t is None else t for p, t in zip(primals, given))
            y_t, final_t = _tangents(differentiable, primals, tangents, lengths, resets, ctx.cell)
            return y_t, final_t, None

    return _Functions(compiled=Recurrence, eager=RecurrenceWithTangents)


def _differentiable_grads(differentiable, inputs, lengths, resets, cell, dy, dfinal):
    """The backward as torch ops on a recomputed forward, so that the gradients
    are themselves differentiable (gradient penalties, Hessian products);
    torch.func's vjp, because this runs inside torch.func transforms too."""
    _, vjp = torch.func.vjp(lambda *p: differentiable(*p, lengths, cell, resets=resets), *inputs)
    return vjp((dy, dfinal))


def _tangents(differentiable, primals, tangents, lengths, resets, cell):
    """J v by transposing a vector-Jacobian product: g(u) = J^T u is linear in u,
    so the vector-Jacobian product of g with v is J v. Reverse mode only,
    because forward-mode AD cannot nest inside forward-mode AD; torch.func's
    vjp, because this runs inside torch.func transforms too."""
    outputs, vjp_of_outputs = torch.func.vjp(lambda *p: differentiable(*p, lengths, cell, resets=resets), *primals)
    u = tuple(torch.zeros_like(o) for o in outputs)
    _, vjp_of_g = torch.func.vjp(vjp_of_outputs, u)
    (jv,) = vjp_of_g(tuple(tangents))
    return jv


class _Unsupported(torch.autograd.Function):
    """Passes first-order gradients through; differentiating them again raises
    NotImplementedError with `message` instead of torch's internal error."""

    generate_vmap_rule = True  # jacrev vmaps over the backward

    @staticmethod
    def forward(message, dx, dR, db, dstates, *_graph_inputs):
        return dx.clone(), dR.clone(), db.clone(), dstates.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.message = inputs[0]

    @staticmethod
    def backward(ctx, *_):
        raise NotImplementedError(ctx.message)
