"""Print the sympy nodes of a traced step (cells/functions.py lists them) as CUDA C++
expressions in fp32, for a generated cell struct (cell_codegen.py).

Every value is a float and every constant a float literal (an `f` suffix): one
double literal would promote its expression to fp64, tens of times slower on
the GPU. The transcendental functions are csrc/math.cuh's, templated on FAST
(the MUFU approximations where the storage is bfloat16). A condition (a comparison, or And, Or, Not of them) prints as a C++ bool
expression; Where as the ternary operator.

Semantics follow the torch printer (cells/torch_printer.py) wherever a finite
input reaches them: maximum/minimum are fmaxf/fminf (torch's propagate a NaN,
fmaxf drops it; a NaN only arises past a sequence's length, where every
kernel selects it away), and the tie rule of their derivatives lives in the
Where conditions the tracer wrote, printed as they are.
"""
from __future__ import annotations

import math
from typing import Mapping

import sympy
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from ...cells.functions import GRADIENT_FUNCTIONS

# node class -> the math.cuh or CUDA function of one argument it prints as
UNARY = {
    "Sigmoid": "sigmoid_<FAST>",
    "tanh": "tanh_<FAST>",
    "exp": "exp_<FAST>",
    "log": "log_<FAST>",
    "LogSigmoid": "log_sigmoid_<FAST>",
    "Abs": "fabsf",
    "sign": "sign_",
}
assert set(UNARY) | {"Softplus", "Relu", "Maximum", "Minimum", "Where"} == {f.__name__ for f in GRADIENT_FUNCTIONS}


def float_literal(value: float) -> str:
    """A C++ float literal of `value` (inf and NaN by their bits: no header defines INFINITY
    for NVRTC)."""
    if math.isnan(value):
        return "__int_as_float(0x7fffffff)"
    if math.isinf(value):
        return ("-" if value < 0 else "") + "__int_as_float(0x7f800000)"
    return repr(float(value)) + "f"  # repr always has a '.' or an exponent: a valid literal


class CudaCellPrinter(C99CodePrinter):
    """sympy -> CUDA C++ over fp32. `names` maps each input symbol to the C++ expression that
    reads it (x0 -> "x[0]", d1 -> "ds[1]"); any other symbol must be a temporary the code
    declared, printed by its own name."""

    def __init__(self, names: Mapping[sympy.Symbol, str], temporaries=()):
        super().__init__({"strict": True})
        self.names = dict(names)
        self.temporaries = frozenset(temporaries)

    def declare(self, temporary: sympy.Symbol) -> None:
        """Let the printer print `temporary` (assigned by now in the generated code)."""
        self.temporaries |= {temporary}

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Expr) and expr.is_number:
            return float_literal(float(expr))  # pi, log(2), sigmoid(1): folded here once
        return super()._print(expr, **kwargs)

    def parenthesize(self, item, level, strict=False):
        if isinstance(item, sympy.Expr) and item.is_number:  # a literal needs parentheses only for its sign
            text = self._print(item)
            return f"({text})" if text.startswith("-") else text
        return super().parenthesize(item, level, strict)

    def _print_Symbol(self, expr):
        if expr in self.names:
            return self.names[expr]
        if expr in self.temporaries:
            return expr.name
        raise ValueError(f"symbol {expr} is neither an input of the step nor a temporary assigned before its use")

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in UNARY:
            return f"{UNARY[name]}({self._print(expr.args[0])})"
        raise ValueError(f"no CUDA code for {name}: {expr}")

    # sympy's own functions are found through their class names before _print_Function
    _print_tanh = _print_exp = _print_log = _print_Abs = _print_sign = _print_Function

    def _print_Softplus(self, expr):
        # log(1 + exp(z)) = -logsigmoid(-z), stable for every z (as the torch printer)
        return f"(-log_sigmoid_<FAST>(-({self._print(expr.args[0])})))"

    def _print_Mul(self, expr):
        """A product with factors to negative whole powers as one division, math.cuh's div_ (the
        MUFU reciprocal with FAST); other products as sympy prints them."""
        numerator, denominator = [], []
        for factor in expr.args:
            exponent = factor.exp if factor.is_Pow else None
            whole = exponent is not None and exponent.is_number and float(exponent).is_integer()
            if whole and float(exponent) < 0 and abs(float(exponent)) <= 64:
                denominator.append(sympy.Pow(factor.base, -exponent))
            else:
                numerator.append(factor)
        if not denominator:
            return super()._print_Mul(expr)
        return f"div_<FAST>({self._print(sympy.Mul(*numerator))}, {self._print(sympy.Mul(*denominator))})"

    def _print_Relu(self, expr):
        return f"fmaxf({self._print(expr.args[0])}, 0.0f)"

    def _print_Maximum(self, expr):
        return f"fmaxf({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Minimum(self, expr):
        return f"fminf({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Where(self, expr):
        condition, a, b = expr.args
        return f"({self._print(condition)} ? {self._print(a)} : {self._print(b)})"

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.args
        if exponent == sympy.S.Half or exponent.is_Float and float(exponent) == 0.5:
            return f"sqrtf({self._print(base)})"
        if exponent == -sympy.S.Half or exponent.is_Float and float(exponent) == -0.5:
            return f"rsqrtf({self._print(base)})"
        whole = exponent.is_Integer or exponent.is_Float and float(exponent).is_integer()
        if whole and abs(float(exponent)) <= 64:
            n = int(exponent)
            power = self.whole_power(base, abs(n))
            return f"div_<FAST>(1.0f, {power})" if n < 0 else power
        return f"powf({self._print(base)}, {self._print(exponent)})"

    def whole_power(self, base: sympy.Expr, n: int) -> str:
        """base**n for a whole n >= 1: a product for a square or cube of a name, else math.cuh's power_."""
        if n == 1:
            return self.parenthesize(base, PRECEDENCE["Mul"])
        if base.is_Symbol and n <= 3:
            return "(" + "*".join([self._print(base)] * n) + ")"
        return f"power_<{n}>({self._print(base)})"

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_And(self, expr):
        return "(" + " && ".join(self._print(arg) for arg in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " || ".join(self._print(arg) for arg in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(!{self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return "true"

    def _print_BooleanFalse(self, expr):
        return "false"
