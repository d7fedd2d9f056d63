"""Move products and sums into the branches of `Where` (cellmath.where's node).

Differentiating where(c, a, b), relu or maximum gives factors such as
Where(c, 1, 0) that multiply the rest of a gradient. Moving that product into
the branches turns it into a select, Where(c, rest, 0): no multiply by zero,
which would turn an Inf or NaN in the untaken branch into NaN, and no
constant-valued where for a backend to materialise. Likewise a number added
to a where of numbers goes into its branches, and sums of wheres under the
same condition merge into one where.

Deliberately conservative: a product moves into a where only if some branch is
a number (else it would be computed once per branch); wheres under different
conditions nest rather than combine, and a sum of those stays as it is, since
folding it (as sympy.piecewise_fold does) takes the cross product of the
conditions and copies every other term into each.
"""
from __future__ import annotations

from collections import defaultdict

import sympy
from sympy import Add, Mul

from .functions import Where


def fold_selects(expr: sympy.Basic) -> sympy.Basic:
    """expr with products and same-condition sums moved into where branches, bottom up."""
    if expr.is_Atom or not expr.args:
        return expr
    args = tuple(fold_selects(arg) for arg in expr.args)
    if args != expr.args:
        expr = expr.func(*args)
    if isinstance(expr, Mul):
        return product_into_select(expr)
    if isinstance(expr, Add):
        return merge_selects(expr)
    return expr


def leaves(select: Where):
    """The values a where may take, looking into wheres nested in its branches."""
    for branch in select.args[1:]:
        if isinstance(branch, Where):
            yield from leaves(branch)
        else:
            yield branch


def has_number_leaf(select: Where) -> bool:
    return any(leaf.is_Number for leaf in leaves(select))


def product_into_select(product: sympy.Expr) -> sympy.Expr:
    """a * Where(c, p, q) -> Where(c, a*p, a*q) when some branch of the where is a
    number. Several wheres under the same condition multiply branch by branch;
    under different conditions the rest (other wheres included) goes into the
    first such where, and on into the next inside its branches: nested selects."""
    if not isinstance(product, Mul):
        return product
    selects = [factor for factor in product.args if isinstance(factor, Where) and has_number_leaf(factor)]
    if not selects:
        return product
    condition = selects[0].args[0]
    same = [factor for factor in product.args if isinstance(factor, Where) and factor.args[0] == condition]
    rest = Mul(*(factor for factor in product.args if not any(factor is s for s in same)))
    if_true = Mul(*(s.args[1] for s in same))
    if_false = Mul(*(s.args[2] for s in same))
    return Where(condition, product_into_select(rest * if_true), product_into_select(rest * if_false))


def merge_selects(total: sympy.Expr) -> sympy.Expr:
    """Where(c, p, q) + Where(c, u, v) + t -> Where(c, p+u, q+v) + t, and
    Where(c, 1, 0) + 2 -> Where(c, 3, 2)."""
    if not isinstance(total, Add):
        return total
    by_condition = defaultdict(list)
    others = []
    for term in total.args:
        if isinstance(term, Where):
            by_condition[term.args[0]].append(term)
        else:
            others.append(term)
    numbers = [term for term in others if term.is_Number]
    constant = next((group for group in by_condition.values()
                     if all(leaf.is_Number for s in group for leaf in leaves(s))), None)
    if numbers and constant is not None:
        others = [term for term in others if not term.is_Number]
        constant.append(add_to_leaves(constant.pop(), Add(*numbers)))
    elif all(len(group) == 1 for group in by_condition.values()):
        return total
    merged = [
        Where(condition, merge_selects(Add(*(s.args[1] for s in group))), merge_selects(Add(*(s.args[2] for s in group))))
        for condition, group in by_condition.items()
    ]
    return Add(*others, *merged)


def add_to_leaves(select: Where, number: sympy.Expr) -> sympy.Expr:
    condition, a, b = select.args
    return Where(condition, *(add_to_leaves(v, number) if isinstance(v, Where) else v + number for v in (a, b)))
