"""Print the sympy nodes of a traced step (cells/functions.py lists them) as torch
expressions on tensors that broadcast against each other.

Constants print as Python floats, so that they take the dtype of the tensor they
meet (a float64 0.5 would promote a half tensor). Where a value would be a
constant alone, the printed code makes it a tensor like `like`, the name of a
tensor of the step's shape and dtype in the generated function.
"""
from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE

from .elementwise_printer import ElementwisePrinter
from .functions import GRADIENT_FUNCTIONS

# node class -> the torch function of one argument it prints as
UNARY = {
    "Sigmoid": "torch.sigmoid",
    "LogSigmoid": "torch.nn.functional.logsigmoid",
    "Relu": "torch.relu",
    "tanh": "torch.tanh",
    "exp": "torch.exp",
    "log": "torch.log",
    "Abs": "torch.abs",
    "sign": "torch.sign",
}
assert set(UNARY) | {"Softplus", "Maximum", "Minimum", "Where"} == {f.__name__ for f in GRADIENT_FUNCTIONS}


class TorchPrinter(ElementwisePrinter):
    """sympy -> torch source. `like`: the name of a tensor whose shape, dtype and device
    a value that is otherwise constant takes."""

    def __init__(self, like: str = "like"):
        super().__init__()
        self.like = like

    def tensor(self, expr: sympy.Basic) -> str:
        """expr as a tensor even when it is a constant, e.g. a branch of a where
        whose other branch is a constant too."""
        if isinstance(expr, sympy.Expr) and expr.is_number:
            value = float(expr)
            if value == 0:
                return f"torch.zeros_like({self.like})"
            return f"torch.full_like({self.like}, {self.constant(expr)})"
        return self._print(expr)

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in UNARY:
            return f"{UNARY[name]}({self._print(expr.args[0])})"
        raise ValueError(f"no torch code for {name}: {expr}")

    def _print_Softplus(self, expr):
        # log(1 + exp(z)) = -logsigmoid(-z) exactly, stable for every z; F.softplus
        # returns z itself past its threshold (20), off by up to 2e-9
        return f"(-torch.nn.functional.logsigmoid(-({self._print(expr.args[0])})))"

    def _print_Maximum(self, expr):
        return self.extremum(expr, "maximum", "min")

    def _print_Minimum(self, expr):
        return self.extremum(expr, "minimum", "max")

    def extremum(self, expr, function: str, clamp: str) -> str:
        a, b = expr.args
        if b.is_number or a.is_number:  # torch.maximum takes two tensors; clamp a tensor and a number
            tensor, number = (a, b) if b.is_number else (b, a)
            return f"torch.clamp({self._print(tensor)}, {clamp}={self.constant(number)})"
        return f"torch.{function}({self._print(a)}, {self._print(b)})"

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.args
        if exponent == sympy.S.Half:
            return f"torch.sqrt({self._print(base)})"
        if exponent == -sympy.S.Half:
            return f"torch.rsqrt({self._print(base)})"
        if exponent == -1:
            return f"(1.0 / {self.parenthesize(base, PRECEDENCE['Mul'])})"
        if exponent == 2 and base.is_Symbol:  # a multiply, cheaper than torch.pow's kernel
            return f"({self._print(base)}*{self._print(base)})"
        power = str(int(exponent)) if exponent.is_Integer else self.parenthesize(exponent, PRECEDENCE["Pow"])
        if exponent.is_Integer and exponent < 0:
            power = f"({power})"
        return f"{self.parenthesize(base, PRECEDENCE['Pow'])}**{power}"

    def _print_Where(self, expr):
        condition, a, b = expr.args
        if a.is_number and b.is_number:  # torch.where of two numbers would be float32
            return f"torch.where({self._print(condition)}, {self.tensor(a)}, {self._print(b)})"
        return f"torch.where({self._print(condition)}, {self._print(a)}, {self._print(b)})"

