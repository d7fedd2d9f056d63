"""A cell's step traced once into sympy expressions, its gradient derived from them,
both reduced to straight-line code with common subexpressions shared: what
every code printer (torch, Triton, CUDA) turns into its backend's pointwise.

Symbols (all real), per element of a head:
  x0 .. x{Gx-1}   the input pre-activations of the step
  r0 .. r{Gr-1}   the recurrent parts, (R[g] @ h_prev) of the element
  b0 .. b{Gb-1}   the biases
  s0 .. s{S-1}    the states entering the step (s0 is h)
  d0 .. d{S-1}    the gradient of the loss w.r.t. the new states (backward only)
  pre0 .. pre{G-1}  x_g + r_g + b_g, in the summed forms of a cell whose gates are sums
A printer maps these to its loads, and the node classes of cells/functions.py
to its functions; see Program for the code's shape.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import sympy
from sympy import Add, Mul, Pow, Symbol
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom, BooleanFunction

from .functions import CONNECTIVES, GRADIENT_FUNCTIONS, RELATIONS, STEP_FUNCTIONS, TRANSCENDENTAL_FUNCTIONS
from .derivative import gradients as reverse_gradients

ALLOWED_MATH = ("Python arithmetic (+ - * / ** and unary -), Python numbers, comparisons (< <= > >=) "
                "and fusedrnn.cellmath: sigmoid, tanh, exp, log, logsigmoid, softplus, relu, abs, sqrt, "
                "maximum, minimum, where, eq, ne")


@dataclass(frozen=True)
class Program:
    """Straight-line code: `assignments` in order, each (temporary, expression) using
    only the inputs and the temporaries assigned before it; then `outputs`, expressions
    over the same. A temporary may stand for a condition (a comparison, or And, Or,
    Not of them) used by a later Where; every output is a real-valued expression."""
    assignments: tuple[tuple[Symbol, sympy.Basic], ...]
    outputs: tuple[sympy.Expr, ...]

    def inputs_of(self, expr: sympy.Basic) -> frozenset[Symbol]:
        """The input symbols `expr` depends on, through the temporaries: e.g. whether an
        output is a constant (empty), depends on the biases alone, or needs a batch row."""
        depends = {}
        for temporary, value in self.assignments:
            depends[temporary] = frozenset().union(*(depends.get(s, {s}) for s in value.free_symbols))
        return frozenset().union(*(depends.get(s, {s}) for s in expr.free_symbols))

    @property
    def used_inputs(self) -> frozenset[Symbol]:
        """The input symbols the outputs need: a printer need not load the others."""
        return frozenset().union(*(self.inputs_of(out) for out in self.outputs))

    def source(self) -> str:
        """The program as readable text, for debugging and error messages."""
        lines = [f"{t} = {e}" for t, e in self.assignments]
        return "\n".join(lines + [f"out{i} = {e}" for i, e in enumerate(self.outputs)])


class Gradients(NamedTuple):
    """The backward's outputs, one expression per gate or state, grouped."""
    dx: tuple[sympy.Expr, ...]  # Gx: d loss / d x_g
    drec: tuple[sympy.Expr, ...]  # Gr: d loss / d r_g
    db: tuple[sympy.Expr, ...]  # Gb: d loss / d b_g, per sample
    dprev: tuple[sympy.Expr, ...]  # S: d loss / d s_q apart from what flows through r

    def flat(self) -> tuple[sympy.Expr, ...]:
        return self.dx + self.drec + self.db + self.dprev


@dataclass(frozen=True)
class SymbolicCell:
    """A step traced to sympy: its forward and backward as Programs. The backward
    recomputes what it needs of the forward from x, r, b and s: it saves nothing."""
    name: str
    gates_x: int
    gates_r: int
    gates_b: int
    num_states: int
    x: tuple[Symbol, ...]
    r: tuple[Symbol, ...]
    b: tuple[Symbol, ...]
    s: tuple[Symbol, ...]
    d: tuple[Symbol, ...]
    new_states: tuple[sympy.Expr, ...]  # the step as traced, over x, r, b, s (no temporaries)
    gradients: Gradients  # sum_k d_k dN_k/dv for every input v, over x, r, b, s, d (no temporaries)
    forward: Program  # inputs x, r, b, s; outputs the S new states
    backward: Program  # inputs x, r, b, s, d; outputs Gradients.flat() order: dx, drec, db, dprev
    # True when Gx == Gr == Gb and x_g, r_g, b_g enter only as x_g + r_g + b_g, so
    # dx == drec == db per sample; the summed forms below exist exactly then
    gates_are_sums: bool
    pre: tuple[Symbol, ...]  # pre_g = x_g + r_g + b_g when gates_are_sums, else ()
    summed_forward: Program | None  # inputs pre, s; outputs the S new states
    summed_backward: Program | None  # inputs pre, s, d; outputs dpre (G), then dprev (S)
    forward_transcendentals: int  # transcendental calls in `forward` (see count_transcendentals)
    backward_transcendentals: int  # ... and in `backward`
    forward_divisions: int  # divisions in `forward` (see count_divisions)
    backward_divisions: int  # ... and in `backward`

    @property
    def forward_chain(self) -> int:
        """The most transcendental calls and divisions one after another on a path from an
        input to a new state: the latency of a step's pointwise work where a thread runs
        the cell for one element (LSTM 2: sigmoid, then tanh of c; sLSTM 3: logsigmoid,
        exp, the division by n)."""
        return max((chain_length(state) for state in self.new_states), default=0)

    @property
    def forward_assignments(self):
        return self.forward.assignments

    @property
    def forward_outputs(self):
        return self.forward.outputs

    @property
    def backward_assignments(self):
        return self.backward.assignments

    @property
    def backward_outputs(self) -> Gradients:
        """backward.outputs grouped into dx, drec, db, dprev."""
        return split_gradients(self.backward.outputs, self.gates_x, self.gates_r, self.gates_b)

    @property
    def summed_backward_outputs(self) -> tuple[tuple[sympy.Expr, ...], tuple[sympy.Expr, ...]] | None:
        """(dpre, dprev) of summed_backward, when the gates are sums."""
        if self.summed_backward is None:
            return None
        outputs = self.summed_backward.outputs
        return outputs[: self.gates_x], outputs[self.gates_x:]


def split_gradients(flat: Sequence[sympy.Expr], gates_x: int, gates_r: int, gates_b: int) -> Gradients:
    first_r, first_b, first_s = gates_x, gates_x + gates_r, gates_x + gates_r + gates_b
    flat = tuple(flat)
    return Gradients(flat[:first_r], flat[first_r:first_b], flat[first_b:first_s], flat[first_s:])


def input_symbols(prefix: str, count: int) -> tuple[Symbol, ...]:
    return tuple(Symbol(f"{prefix}{i}", real=True) for i in range(count))


def trace(step: Callable, gates_x: int, gates_r: int, gates_b: int, num_states: int, *,
          name: str = "<step>") -> SymbolicCell:
    """Trace step(x, r, b, s) once and derive its gradient. Raises ValueError, naming the
    cell `name`, when the step fails on symbols, returns other than num_states
    expressions, or uses math outside cellmath."""
    x, r, b, s = (input_symbols(p, n) for p, n in (("x", gates_x), ("r", gates_r), ("b", gates_b), ("s", num_states)))
    d = input_symbols("d", num_states)
    new_states = traced_states(step, x, r, b, s, num_states, name)
    for k, state in enumerate(new_states):
        check_nodes(state, STEP_FUNCTIONS, frozenset(x + r + b + s), f"cell {name!r}: new state {k}")

    gradients = split_gradients(reverse_gradients(new_states, d, x + r + b + s), gates_x, gates_r, gates_b)
    for v, grad in zip(x + r + b + s, gradients.flat()):
        check_nodes(grad, GRADIENT_FUNCTIONS, frozenset(x + r + b + s + d), f"cell {name!r}: the gradient w.r.t. {v}")
    forward = reduce(new_states, "fwd")
    backward = reduce(gradients.flat(), "bwd")

    pre = input_symbols("pre", gates_x)
    summed_states = summed(new_states, x, r, b, pre) if gates_x == gates_r == gates_b else None
    if summed_states is None:
        pre, summed_forward, summed_backward = (), None, None
    else:
        summed_forward = reduce(summed_states, "fwd")
        summed_backward = reduce(reverse_gradients(summed_states, d, pre + s), "bwd")

    return SymbolicCell(
        name, gates_x, gates_r, gates_b, num_states, x, r, b, s, d, new_states, gradients, forward, backward,
        summed_states is not None, pre, summed_forward, summed_backward,
        sum(count_transcendentals(forward).values()), sum(count_transcendentals(backward).values()),
        count_divisions(forward), count_divisions(backward),
    )


def traced_states(step, x, r, b, s, num_states: int, name: str) -> tuple[sympy.Expr, ...]:
    """step's new states on symbols, as num_states sympy expressions."""
    try:
        result = step(x, r, b, s)
    except Exception as error:  # any failure on symbols is math outside cellmath or a bad step
        hint = ""
        if "truth value" in str(error):
            hint = " (a Python if, and, or, min or max on a traced value: use cellmath.where, maximum, minimum)"
        raise ValueError(
            f"cell {name!r}: tracing the step raised {type(error).__name__}: {error}{hint}. A step may use only "
            f"{ALLOWED_MATH}; other math (math.exp, torch functions, sympy.sin) is outside cellmath"
        ) from error
    # a one-state step may return its state bare
    results = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if len(results) != num_states:
        plural = "" if len(results) == 1 else "s"
        raise ValueError(f"cell {name!r}: the step returns {len(results)} new state{plural}, but states names {num_states}")
    states = []
    for k, value in enumerate(results):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = sympy.Float(value) if isinstance(value, float) else sympy.Integer(value)
        if not isinstance(value, sympy.Expr) or isinstance(value, (Relational, BooleanFunction, BooleanAtom)):
            raise ValueError(f"cell {name!r}: new state {k} is {value!r} ({type(value).__name__}), "
                             f"not a number or an expression of the step's inputs built with {ALLOWED_MATH}")
        states.append(value)
    return tuple(states)


def check_nodes(expr: sympy.Basic, functions: tuple, symbols: frozenset[Symbol], what: str) -> None:
    """Raise ValueError if expr holds a node outside the allowed set (see cells/functions.py)."""
    bad = first_outside(expr, functions, symbols)
    if bad is not None:
        node, reason = bad
        raise ValueError(f"{what} uses {reason}: {node}, which is outside cellmath. A step may use only {ALLOWED_MATH}")


def first_outside(expr: sympy.Basic, functions: tuple, symbols: frozenset[Symbol]):
    """(node, reason) for the first node outside the allowed set, else None."""
    if isinstance(expr, Symbol):
        return None if expr in symbols else (expr, "a symbol that is not one of the step's inputs")
    if isinstance(expr, sympy.Expr) and expr.is_number:
        return None if is_real_constant(expr) else (expr, "a constant that is not a real number")
    if isinstance(expr, (Add, Mul, Pow, BooleanAtom) + RELATIONS + CONNECTIVES + functions):
        for arg in expr.args:
            bad = first_outside(arg, functions, symbols)
            if bad is not None:
                return bad
        return None
    return expr, f"{type(expr).__name__}"


def is_real_constant(expr: sympy.Expr) -> bool:
    try:
        value = complex(expr.evalf())
    except (TypeError, ValueError):
        return False
    return value.imag == 0


def summed(new_states, x, r, b, pre) -> tuple[sympy.Expr, ...] | None:
    """The new states over pre_g = x_g + r_g + b_g, or None if some x_g, r_g or b_g enters
    otherwise. Substituting x_g = pre_g - r_g - b_g leaves no r_g and b_g exactly then."""
    to_pre = {x_g: p - r_g - b_g for x_g, r_g, b_g, p in zip(x, r, b, pre)}
    parts = frozenset(r + b)
    result = []
    for state in new_states:
        over_pre = state.xreplace(to_pre)
        if over_pre.free_symbols & parts:
            # a sum written as 2*(x + r) + 2*b or so: multiply out and look again
            over_pre = sympy.expand(over_pre, deep=True, mul=True, multinomial=False, power_exp=False,
                                    power_base=False, log=False, basic=False)
        if over_pre.free_symbols & parts:
            return None
        result.append(over_pre)
    return tuple(result)


def reduce(outputs: Sequence[sympy.Expr], prefix: str) -> Program:
    """outputs as straight-line code, common subexpressions computed once in temporaries
    named prefix0, prefix1, ..."""
    temporaries = sympy.numbered_symbols(prefix, real=True)
    assignments, reduced = sympy.cse(list(outputs), symbols=temporaries, order="none")
    return Program(tuple((t, e) for t, e in assignments), tuple(reduced))


def count_transcendentals(program: Program) -> Counter:
    """How many times each transcendental function (by name: sigmoid, tanh, exp, log,
    logsigmoid, softplus, sqrt, pow) is called in the program, each temporary once.
    sqrt is Pow(z, +-1/2); pow is any other non-integer power."""
    counts = Counter()
    for expr in [e for _, e in program.assignments] + list(program.outputs):
        count_calls(expr, counts)
    return counts


def count_calls(expr: sympy.Basic, counts: Counter) -> None:
    if isinstance(expr, sympy.Expr) and expr.is_number:
        return  # folded to a constant by every printer
    kind = TRANSCENDENTAL_FUNCTIONS.get(type(expr))
    if kind is None and isinstance(expr, Pow) and not expr.exp.is_Integer:
        kind = "sqrt" if expr.exp in (sympy.S.Half, -sympy.S.Half) else "pow"
    if kind is not None:
        counts[kind] += 1
    for arg in expr.args:
        count_calls(arg, counts)


def chain_length(expr: sympy.Basic) -> int:
    """The most transcendental calls and divisions (as count_calls and count_negative_powers
    count them) on one path from a leaf of `expr` to its root."""
    if isinstance(expr, sympy.Expr) and expr.is_number:
        return 0
    own = (type(expr) in TRANSCENDENTAL_FUNCTIONS
           or isinstance(expr, Pow) and (not expr.exp.is_Integer or bool(expr.exp.is_negative)))
    return int(own) + max((chain_length(arg) for arg in expr.args), default=0)


def count_divisions(program: Program) -> int:
    """How many divisions the program makes, each temporary once: sympy writes a / b as
    a * b**-1, so each power to a negative whole exponent (reciprocal or division)."""
    return sum(count_negative_powers(expr) for expr in [e for _, e in program.assignments] + list(program.outputs))


def count_negative_powers(expr: sympy.Basic) -> int:
    if isinstance(expr, sympy.Expr) and expr.is_number:
        return 0  # folded to a constant by every printer
    own = isinstance(expr, Pow) and expr.exp.is_Integer and bool(expr.exp.is_negative)
    return int(own) + sum(count_negative_powers(arg) for arg in expr.args)
