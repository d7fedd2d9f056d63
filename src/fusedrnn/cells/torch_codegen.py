"""Generate a cell's torch forward and backward (the signatures of cells/base.py)
from its SymbolicCell: Python source, compiled once.

Each input tensor is unbound into one tensor per gate or state, named as the
SymbolicCell's symbols (x0 = x[:, 0], b0 = b[0], s0 = states[0], ...), then the
Program's assignments run in order. A cell whose gates are sums adds
x + rec + b once and unbinds that into pre0, pre1, ... (its summed Program),
and returns the one gradient tensor as dx, drec and db (the torch backend then
keeps one buffer).
"""
from __future__ import annotations

import linecache
from dataclasses import dataclass
from typing import Callable, Sequence

import sympy
import torch

from .symbolic import Program, SymbolicCell
from .torch_printer import TorchPrinter

LIKE = "like"  # a tensor of the step's shape [B, NH, DH], dtype and device: states[0]


@dataclass(frozen=True)
class TorchCode:
    forward: Callable
    backward: Callable
    forward_source: str
    backward_source: str


def torch_code(cell: SymbolicCell) -> TorchCode:
    """The cell's forward(x, rec, b, states) and backward(x, rec, b, states, d_new)."""
    forward_source = forward_text(cell)
    backward_source = backward_text(cell)
    forward = compiled(forward_source, "forward", cell.name)
    backward = compiled(backward_source, "backward", cell.name)
    return TorchCode(forward, backward, forward_source, backward_source)


def forward_text(cell: SymbolicCell) -> str:
    printer = TorchPrinter(LIKE)
    lines = ["def forward(x, rec, b, states):", f"    {LIKE} = states[0]"]
    lines += unpacked(cell, summed=cell.gates_are_sums)
    program = cell.summed_forward if cell.gates_are_sums else cell.forward
    lines += assignments(program, printer)
    states = ", ".join(full_shaped(program, out, cell.b, printer) for out in program.outputs)
    lines.append(f"    return ({states},)")
    return "\n".join(lines) + "\n"


def backward_text(cell: SymbolicCell) -> str:
    printer = TorchPrinter(LIKE)
    lines = ["def backward(x, rec, b, states, d_new):", f"    {LIKE} = states[0]"]
    lines += unpacked(cell, summed=cell.gates_are_sums)
    lines.append(f"    {names(cell.d)} = d_new")
    program = cell.summed_backward if cell.gates_are_sums else cell.backward
    lines += assignments(program, printer)

    def stacked(outputs: Sequence[sympy.Expr]) -> str:
        shaped = [full_shaped(program, out, cell.b, printer) for out in outputs]
        if len(shaped) == 1:  # one gate: a view, not a copy
            return f"({shaped[0]}).unsqueeze(1)"
        return f"torch.stack(({', '.join(shaped)},), dim=1)"

    def tupled(outputs: Sequence[sympy.Expr]) -> str:
        return f"({', '.join(full_shaped(program, out, cell.b, printer) for out in outputs)},)"

    if cell.gates_are_sums:
        dpre, dprev = cell.summed_backward_outputs
        lines.append(f"    dpre = {stacked(dpre)}")
        lines.append(f"    return dpre, dpre, dpre, {tupled(dprev)}")
    else:
        grads = cell.backward_outputs
        lines.append(f"    return {stacked(grads.dx)}, {stacked(grads.drec)}, {stacked(grads.db)}, {tupled(grads.dprev)}")
    return "\n".join(lines) + "\n"


def names(symbols: Sequence[sympy.Symbol]) -> str:
    """A tuple target: '(s0,)', '(s0, s1)'."""
    return "(" + ", ".join(map(str, symbols)) + ",)"


def unpacked(cell: SymbolicCell, summed: bool) -> list[str]:
    if summed:
        lines = [f"    {names(cell.pre)} = (x + rec + b).unbind(1)"]
    else:
        lines = [f"    {names(cell.x)} = x.unbind(1)", f"    {names(cell.r)} = rec.unbind(1)",
                 f"    {names(cell.b)} = b.unbind(0)"]
    return lines + [f"    {names(cell.s)} = states"]


def assignments(program: Program, printer: TorchPrinter) -> list[str]:
    return [f"    {temporary} = {printer.doprint(value)}" for temporary, value in program.assignments]


def full_shaped(program: Program, out: sympy.Expr, biases: Sequence[sympy.Symbol], printer: TorchPrinter) -> str:
    """out as a tensor of the step's shape: a constant, or a value of the biases alone
    ([NH, DH]), would not be one by itself."""
    inputs = program.inputs_of(out)
    if not inputs:
        return printer.tensor(out)
    text = printer.doprint(out)
    if inputs <= set(biases):
        return f"({text}).expand_as({LIKE})"
    return text


def compiled(source: str, function: str, cell_name: str) -> Callable:
    """Compile generated source; linecache keeps it so that a traceback shows the line."""
    filename = f"<fusedrnn cell {cell_name!r} torch {function}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)
    generated = namespace[function]
    generated.source = source
    return generated
