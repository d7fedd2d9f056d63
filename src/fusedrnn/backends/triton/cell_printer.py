"""Print the sympy nodes of a traced step (fusedrnn/cells/functions.py lists them)
as Triton expressions on the fp32 tiles of the kernels' pointwise functions.

The transcendentals are math.py's (sigmoid and tanh take the function's FAST
switch: one MUFU instruction in bfloat16).
Constants print as float literals: an int literal would make an int tensor of
a where of two constants, and a float one takes the dtype of the tile it meets.
Imports no triton: it only writes text (cell_codegen.py assembles the module).
"""
from __future__ import annotations

import sympy
from sympy.printing.precedence import PRECEDENCE

from ...cells.elementwise_printer import ElementwisePrinter
from ...cells.functions import GRADIENT_FUNCTIONS

# node class name -> the Triton function of one tile it prints as; FAST: takes the switch too
UNARY = {
    "Sigmoid": ("sigmoid", True),
    "tanh": ("tanh", True),
    "LogSigmoid": ("log_sigmoid", False),
    "exp": ("tl.exp", False),
    "log": ("tl.log", False),
    "Abs": ("tl.abs", False),
    "sign": ("sign", False),
}
# every node a gradient may hold has a printing here: a new cellmath function must add one
assert set(UNARY) | {"Softplus", "Relu", "Maximum", "Minimum", "Where"} == {f.__name__ for f in GRADIENT_FUNCTIONS}

#: the names of math.py the printed code calls
MATH_NAMES = ("integer_power", "log_sigmoid", "sigmoid", "sign", "sqrt", "tanh")


class TritonPrinter(ElementwisePrinter):
    """sympy -> Triton source. `fast`: the name of the constexpr switch of the
    generated function (math.py's FAST)."""

    def __init__(self, fast: str = "FAST"):
        super().__init__()
        self.fast = fast

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name not in UNARY:
            raise ValueError(f"no Triton code for {name}: {expr}")
        function, takes_fast = UNARY[name]
        argument = self._print(expr.args[0])
        return f"{function}({argument}, {self.fast})" if takes_fast else f"{function}({argument})"

    def _print_Softplus(self, expr):
        # log(1 + exp(z)) = -logsigmoid(-z), stable at both tails
        return f"(-log_sigmoid(-({self._print(expr.args[0])})))"

    def _print_Relu(self, expr):
        return f"tl.maximum({self._print(expr.args[0])}, 0.0)"

    def _print_Maximum(self, expr):
        return self.extremum(expr, "tl.maximum")

    def _print_Minimum(self, expr):
        return self.extremum(expr, "tl.minimum")

    def extremum(self, expr, function: str) -> str:
        a, b = expr.args
        if a.is_number:  # the tile first, as tl.maximum(x, 0.0); the value is the same either way
            a, b = b, a
        return f"{function}({self._print(a)}, {self._print(b)})"

    def _print_Where(self, expr):
        condition, a, b = expr.args
        return f"tl.where({self._print(condition)}, {self._print(a)}, {self._print(b)})"


    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.args
        power = float(exponent)
        if power == int(power):  # 2 or 2.0 alike: multiplies, right for a negative base too
            return self.integer_power(base, int(power))
        if 2 * power == int(2 * power):  # a half-integer: sqrt times an integer power
            root = f"sqrt({self._print(base)}, {self.fast})"
            whole = int(abs(power) - 0.5)
            value = root if whole == 0 else f"{root} * {self.integer_power(base, whole)}"
            return f"({value})" if power > 0 else f"(1.0 / ({value}))"
        # any other real power: NaN for a negative base, as torch.pow's
        return f"tl.exp({self.constant(exponent)} * tl.log({self._print(base)}))"

    def integer_power(self, base: sympy.Expr, n: int) -> str:
        if n < 0:
            return f"(1.0 / {self.integer_power(base, -n)})"
        if n == 0:  # x ** 0.0, which sympy may leave unevaluated
            return "1.0"
        text = self._print(base)
        if n == 1:
            return self.parenthesize(base, PRECEDENCE["Mul"])
        if n == 2 and base.is_Atom:  # a multiply of a named value; a larger one goes through the helper
            return f"({text}*{text})"
        return f"integer_power({text}, {n})"
