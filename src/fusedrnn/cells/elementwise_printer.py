"""What the printers of Python-syntax elementwise code (torch, Triton) share: a
constant folded and printed as a float (it takes the dtype of the tensor it
meets: a float64 0.5 would promote a half tensor, an int literal make an int
one), sympy's own functions routed to the printer's `_print_Function`, and
conditions combined with the elementwise & | ~ (Python's `and` would ask a
tensor for one truth value)."""
from __future__ import annotations

import math

import sympy
from sympy.printing.pycode import PythonCodePrinter


class ElementwisePrinter(PythonCodePrinter):
    """Subclasses give `_print_Function` for the node classes of cells/functions.py."""

    def __init__(self):
        super().__init__({"strict": True})

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Expr) and expr.is_number:
            return self.constant(expr)  # pi, log(2), sigmoid(1): folded here once
        return super()._print(expr, **kwargs)

    def constant(self, expr: sympy.Expr) -> str:
        value = float(expr)
        if math.isnan(value) or math.isinf(value):
            return f"float('{value}')"
        text = repr(value)
        return f"({text})" if value < 0 else text

    # sympy's own functions (tanh, exp, log, Abs, sign) are found through their class
    # names before _print_Function; route them to the subclass's table
    def _print_tanh(self, expr):
        return self._print_Function(expr)

    _print_exp = _print_log = _print_Abs = _print_sign = _print_tanh

    def _print_And(self, expr):
        return "(" + " & ".join(self._print(arg) for arg in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(self._print(arg) for arg in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(~{self._print(expr.args[0])})"
