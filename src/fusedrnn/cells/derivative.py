"""The gradient of a step by reverse accumulation over its straight-line code.

Given new states N_k over some inputs and the incoming gradients d_k, the
gradient w.r.t. an input v is sum_k d_k dN_k/dv. Differentiating each N_k as a
whole (sympy's diff, forward mode) spells the chain rule out along every path
again, once per input, and its sums of products come out multiplied out.
Instead the forward is first cut into temporaries (sympy.cse) and the gradient
flows backward through them, as a hand-written backward does: each temporary's
adjoint is one expression (e.g. LSTM's dc), used by every input it depends on.
Each local derivative is still sympy's diff of one assignment.

The result is expressed over the inputs and d alone (the temporaries inlined,
as shared objects, so nothing is copied), ready for one cse over the backward.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import sympy
from sympy import Add, Symbol

from .selects import fold_selects


def gradients(outputs: Sequence[sympy.Expr], d: Sequence[Symbol], wrt: Sequence[Symbol]) -> tuple[sympy.Expr, ...]:
    """sum_k d_k * d outputs_k / d v for each v in wrt, over the inputs and d."""
    forward, reduced = sympy.cse(list(outputs), symbols=sympy.numbered_symbols("forward", real=True), order="none")
    adjoint_symbols = sympy.numbered_symbols("adjoint", real=True)

    contributions = defaultdict(list)  # symbol -> the terms of its adjoint
    for d_k, out in zip(d, reduced):
        spread(d_k, out, contributions)
    adjoints = []  # (symbol, its adjoint's value), each using only those before it
    for temporary, value in reversed(forward):
        adjoint = fold_selects(Add(*contributions.pop(temporary, ())))
        if adjoint == 0:
            continue
        if not adjoint.is_Atom:  # name it: every symbol the temporary uses shares it
            symbol = next(adjoint_symbols)
            adjoints.append((symbol, adjoint))
            adjoint = symbol
        spread(adjoint, value, contributions)

    # every temporary's value over the inputs alone, built once in order and shared
    inlined = {}
    for temporary, value in forward + adjoints:
        inlined[temporary] = value.xreplace(inlined)
    return tuple(fold_selects(Add(*contributions.get(v, ()))).xreplace(inlined) for v in wrt)


def spread(adjoint: sympy.Expr, value: sympy.Basic, contributions: dict) -> None:
    """Pass the adjoint of `value` on to each symbol it uses: adjoint * d value / d symbol.
    A symbol in a condition only gets 0: conditions carry no gradient."""
    for symbol in value.free_symbols:
        local = value.diff(symbol)
        if local != 0:
            contributions[symbol].append(fold_selects(adjoint * local))
