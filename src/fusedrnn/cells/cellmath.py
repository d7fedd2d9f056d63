"""The math a cell's step may use: `fusedrnn.cellmath`.

A step is traced once with sympy symbols for its inputs, so these functions take
and return sympy expressions (Python numbers work too). Python arithmetic
(+ - * / ** and unary -), Python numbers and the comparisons < <= > >= work on
the expressions directly; conditions combine with & | ~.

`==` and `!=` do not: on sympy expressions they compare structure and give a
Python bool. Write `eq(n, 0)` and `ne(n, 0)` for an elementwise comparison;
`where` refuses a Python bool so that `where(n == 0, ...)` cannot silently
take one branch everywhere.

Which sympy node each function makes is listed in cells/functions.py.
"""
from __future__ import annotations

import sympy
from sympy.logic.boolalg import BooleanAtom, BooleanFunction

from .functions import LogSigmoid, Maximum, Minimum, Relu, Sigmoid, Softplus, Where

__all__ = ["sigmoid", "tanh", "exp", "log", "logsigmoid", "softplus", "relu", "abs", "sqrt",
           "maximum", "minimum", "where", "eq", "ne"]


def sigmoid(z):
    return Sigmoid(z)


def tanh(z):
    return sympy.tanh(z)


def exp(z):
    return sympy.exp(z)


def log(z):
    """The natural logarithm."""
    return sympy.log(z)


def logsigmoid(z):
    """log(sigmoid(z)), computed stably; its derivative is sigmoid(-z)."""
    return LogSigmoid(z)


def softplus(z):
    """log(1 + exp(z)), computed stably; its derivative is sigmoid(z)."""
    return Softplus(z)


def relu(z):
    """max(z, 0); the derivative at 0 is 0."""
    return Relu(z)


def abs(z):  # noqa: A001  (the name users expect, as torch.abs)
    """|z|; the derivative is sign(z), 0 at 0."""
    return sympy.Abs(z)


def sqrt(z):
    return sympy.sqrt(z)


def maximum(a, b):
    """The elementwise larger of a and b. At a tie the gradient goes to a (the first), all of it."""
    return Maximum(a, b)


def minimum(a, b):
    """The elementwise smaller of a and b. At a tie the gradient goes to a (the first), all of it."""
    return Minimum(a, b)


def where(condition, if_true, if_false):
    """if_true where condition holds, else if_false; the gradient flows into the branch taken.
    condition: a comparison (x > 0, eq(n, 0)), or several combined with & | ~."""
    if isinstance(condition, bool):
        raise TypeError(
            f"where: the condition is the Python bool {condition}, not an elementwise condition; "
            "== and != compare sympy expressions structurally: write cellmath.eq(a, b) or cellmath.ne(a, b)")
    if not isinstance(condition, (sympy.core.relational.Relational, BooleanFunction, BooleanAtom)):
        raise TypeError(f"where: the condition must be a comparison such as x > 0 or eq(n, 0), got {condition!r}")
    return Where(condition, if_true, if_false)


def eq(a, b):
    """The elementwise condition a == b, for `where`."""
    return sympy.Eq(a, b)


def ne(a, b):
    """The elementwise condition a != b, for `where`."""
    return sympy.Ne(a, b)
