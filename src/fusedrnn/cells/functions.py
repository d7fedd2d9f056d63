"""The sympy node classes a traced step and its gradient are made of: what every
code printer (torch, Triton, CUDA) maps to its own language.

A step is built from these nodes and nothing else:

| node                                  | made by cellmath           | meaning                         |
|---------------------------------------|----------------------------|---------------------------------|
| `Symbol`                              | (the step's inputs)        | x0.., r0.., b0.., s0..          |
| any number (`expr.is_number`)         | Python numbers             | a real constant                 |
| `Add`, `Mul`, `Pow`                   | `+ - * / **`, `sqrt`       | arithmetic; sqrt is `Pow(z, 1/2)`|
| `Sigmoid`, `LogSigmoid`, `Softplus`   | sigmoid, logsigmoid, softplus | defined here                 |
| `Relu`, `Maximum`, `Minimum`          | relu, maximum, minimum     | defined here                    |
| `Where`                               | where                      | `Where(cond, a, b)`, defined here |
| `sympy.tanh`, `sympy.exp`, `sympy.log`, `sympy.Abs` | tanh, exp, log, abs |                            |
| `StrictGreaterThan` ... `Equality`, `Unequality` | `< <= > >=`, eq, ne | comparisons (conditions)     |
| `And`, `Or`, `Not`                    | `& | ~` on conditions      | conditions                      |

A gradient may in addition hold `sympy.sign` (the derivative of `Abs`).
Conditions are sympy Booleans: they appear as the first argument of a Where, and
a Program may assign one to a temporary (a boolean tensor / register).

`Where` is a Function of our own rather than sympy's Piecewise: Piecewise
rewrites a condition that holds a Piecewise into a boolean ITE, a node every
printer would then need; Where stays as written, and its derivative is
Where(cond, da, db) directly.

Sigmoid and friends are nodes of their own, not rewritten to exp, so that each
backend prints its fast and stable function (torch.sigmoid, not 1/(1+exp(-z))).
Each defines `fdiff`, its derivative, in terms of these same nodes.
"""
from __future__ import annotations

import sympy
from sympy import Function


class Sigmoid(Function):
    """1 / (1 + exp(-z))."""

    @classmethod
    def eval(cls, z):
        if z.is_number:  # a constant folds to a constant
            return 1 / (1 + sympy.exp(-z))

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None


class LogSigmoid(Function):
    """log(sigmoid(z)) = -softplus(-z), stable for large |z|."""

    @classmethod
    def eval(cls, z):
        if z.is_number:
            return -sympy.log(1 + sympy.exp(-z))

    def fdiff(self, argindex=1):
        return Sigmoid(-self.args[0])

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_negative(self):
        return True if self.args[0].is_extended_real else None


class Softplus(Function):
    """log(1 + exp(z))."""

    @classmethod
    def eval(cls, z):
        if z.is_number:
            return sympy.log(1 + sympy.exp(z))

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None


class Relu(Function):
    """max(z, 0); its derivative at 0 is 0, as torch.relu's."""

    @classmethod
    def eval(cls, z):
        if z.is_extended_nonnegative:
            return z
        if z.is_extended_nonpositive:
            return sympy.S.Zero

    def fdiff(self, argindex=1):
        return Where(self.args[0] > 0, 1, 0)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_nonnegative(self):
        return True if self.args[0].is_extended_real else None


class Maximum(Function):
    """The larger of a and b. Tie rule: at a == b the gradient goes to a, the first."""

    @classmethod
    def eval(cls, a, b):
        if a == b:
            return a
        difference = a - b
        if difference.is_extended_nonnegative:
            return a
        if difference.is_extended_negative:
            return b

    def fdiff(self, argindex=1):
        a, b = self.args
        first = a >= b
        return Where(first, 1, 0) if argindex == 1 else Where(first, 0, 1)

    def _eval_is_extended_real(self):
        return fuzzy_all_real(self.args)


class Minimum(Function):
    """The smaller of a and b. Tie rule: at a == b the gradient goes to a, the first."""

    @classmethod
    def eval(cls, a, b):
        if a == b:
            return a
        difference = a - b
        if difference.is_extended_nonpositive:
            return a
        if difference.is_extended_positive:
            return b

    def fdiff(self, argindex=1):
        a, b = self.args
        first = a <= b
        return Where(first, 1, 0) if argindex == 1 else Where(first, 0, 1)

    def _eval_is_extended_real(self):
        return fuzzy_all_real(self.args)


class Where(Function):
    """a where condition holds, else b (elementwise select). The condition, the first
    argument, is a sympy Boolean: a comparison, or several under And, Or, Not."""

    @classmethod
    def eval(cls, condition, a, b):
        if condition is sympy.true:
            return a
        if condition is sympy.false:
            return b
        if a == b:
            return a

    def _eval_is_commutative(self):
        return True  # a Boolean argument has no commutativity of its own to take it from

    def _eval_derivative(self, symbol):
        # the gradient flows into the branch taken; the condition carries none
        condition, a, b = self.args
        return Where(condition, a.diff(symbol), b.diff(symbol))

    def _eval_is_extended_real(self):
        return fuzzy_all_real(self.args[1:])


def fuzzy_all_real(args) -> bool | None:
    """True when every arg is known real, None when unknown (sympy's three-valued logic)."""
    return True if all(arg.is_extended_real for arg in args) else None


#: the function nodes a step may contain (besides Add, Mul, Pow and conditions)
STEP_FUNCTIONS = (Sigmoid, LogSigmoid, Softplus, Relu, Maximum, Minimum, Where,
                  sympy.tanh, sympy.exp, sympy.log, sympy.Abs)

#: the function nodes a gradient may contain: the step's and the derivative of Abs
GRADIENT_FUNCTIONS = STEP_FUNCTIONS + (sympy.sign,)

#: comparisons a condition may use
RELATIONS = (sympy.StrictGreaterThan, sympy.StrictLessThan, sympy.GreaterThan, sympy.LessThan,
             sympy.Equality, sympy.Unequality)

#: how conditions combine
CONNECTIVES = (sympy.And, sympy.Or, sympy.Not)

#: the nodes a cost model counts as transcendental, by the name it reports them under
TRANSCENDENTAL_FUNCTIONS = {
    Sigmoid: "sigmoid", LogSigmoid: "logsigmoid", Softplus: "softplus",
    sympy.tanh: "tanh", sympy.exp: "exp", sympy.log: "log",
}
