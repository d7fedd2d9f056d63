"""Generate a cell's CUDA struct (the contract of csrc/cells/cell.cuh) from its
SymbolicCell: what every CUDA kernel template takes as its `Cell` argument.

The struct lives in namespace fusedrnn::generated, apart from the kernels'
names in fusedrnn::, and is named after the cell (struct_name). Its forward
and backward run the SymbolicCell's Programs as straight-line code: one
`const float` (or `const bool`, for a condition) a temporary, then the outputs
into the Gates arrays, slots past the cell's counts left alone. A cell whose
gates are sums runs the summed Programs over pre_g = x_g + r_g + b_g (the
kernels then read dx as drec) and stores each gate's one gradient into dx,
drec and db.

The text goes into a translation unit's prelude (cxx.cell_prelude), so a
cell's kernels are compiled, and cached on disk, from its definition alone.
"""
from __future__ import annotations

from typing import Sequence

import sympy
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom, BooleanFunction

from ...cells.symbolic import Program, SymbolicCell
from .cell_printer import CudaCellPrinter

NAMESPACE = "fusedrnn::generated"
MAX_GATES = 4  # Gates is float[4] (csrc/cells/cell.cuh): the most of each kind of gate, and of states
MAX_STATES = 4
INDENT = "    "


def struct_name(cell_name: str) -> str:
    """A C++ identifier for the cell, distinct for distinct names: `cell_` and the name where it
    is ASCII (a prefix, so that no name is a C++ keyword or a reserved identifier), else
    `ucell_` and its characters, each other than a letter or digit as _<hex code>_."""
    if cell_name.isascii():
        return f"cell_{cell_name}"
    return "ucell_" + "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):x}_" for c in cell_name)


def qualified_name(cell_name: str) -> str:
    return f"{NAMESPACE}::{struct_name(cell_name)}"


def too_many(gates_x: int, gates_r: int, gates_b: int, num_states: int) -> str:
    """Why the kernels cannot hold a step of these counts ('' when they can)."""
    for what, count, most in (("input gates (gates_x)", gates_x, MAX_GATES),
                              ("recurrent gates (gates_r)", gates_r, MAX_GATES),
                              ("biases (gates_b)", gates_b, MAX_GATES), ("states", num_states, MAX_STATES)):
        if count > most:
            return f"{count} {what}, over the {most} the CUDA kernels hold an element (float[4] a kind)"
    return ""


def cell_struct(cell: SymbolicCell) -> str:
    """The C++ text of the cell's struct, inside its namespace (after csrc/cells/cell.cuh)."""
    why = too_many(cell.gates_x, cell.gates_r, cell.gates_b, cell.num_states)
    if why:
        raise ValueError(f"cell {cell.name!r}: {why}")
    lines = [
        f"// cell {cell.name!r} (fusedrnn.define_cell), generated from its traced step by",
        "// fusedrnn/backends/cuda/cell_codegen.py: the contract of cells/cell.cuh",
        f"namespace {NAMESPACE} {{",
        "",
        f"struct {struct_name(cell.name)} {{",
        f"  static constexpr int GX = {cell.gates_x}, GR = {cell.gates_r}, GB = {cell.gates_b}, S = {cell.num_states};",
        f"  static constexpr bool SUMS = {str(cell.gates_are_sums).lower()};",
        "",
        "  template <bool FAST>",
        "  __device__ static void forward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, Gates& next) {",
        *forward_body(cell),
        "  }",
        "",
        "  template <bool FAST>",
        "  __device__ static void backward(const Gates& x, const Gates& r, const Gates& b, const Gates& s, const Gates& ds,",
        "                                  Gates& dx, Gates& drec, Gates& db, Gates& dprev) {",
        *backward_body(cell),
        "  }",
        "};",
        "",
        f"}}  // namespace {NAMESPACE}",
    ]
    return "\n".join(lines) + "\n"


def input_names(cell: SymbolicCell) -> dict[sympy.Symbol, str]:
    """Each input symbol -> the C++ that reads it: the contract's arrays (d_q is ds[q])."""
    names = {}
    for symbols, array in ((cell.x, "x"), (cell.r, "r"), (cell.b, "b"), (cell.s, "s"), (cell.d, "ds")):
        names.update({symbol: f"{array}[{k}]" for k, symbol in enumerate(symbols)})
    return names


def summed_inputs(cell: SymbolicCell, program: Program, printer: CudaCellPrinter) -> list[str]:
    """pre_g = x_g + r_g + b_g for each pre_g the summed program uses."""
    used = program.used_inputs
    lines = []
    for g, pre in enumerate(cell.pre):
        if pre in used:
            lines.append(f"{INDENT}const float {pre} = x[{g}] + r[{g}] + b[{g}];")
            printer.declare(pre)
    return lines


def assignments(program: Program, printer: CudaCellPrinter) -> list[str]:
    lines = []
    for temporary, value in program.assignments:
        kind = "bool" if isinstance(value, (Relational, BooleanFunction, BooleanAtom)) else "float"
        lines.append(f"{INDENT}const {kind} {temporary} = {printer.doprint(value)};")
        printer.declare(temporary)
    return lines


def stores(targets: Sequence[str], outputs: Sequence[sympy.Expr], printer: CudaCellPrinter) -> list[str]:
    """`targets[k] = outputs[k];` each; a target may chain several arrays (dx[0] = drec[0] = ...)."""
    return [f"{INDENT}{target} = {printer.doprint(value)};" for target, value in zip(targets, outputs)]


def forward_body(cell: SymbolicCell) -> list[str]:
    printer = CudaCellPrinter(input_names(cell))
    program = cell.summed_forward if cell.gates_are_sums else cell.forward
    lines = summed_inputs(cell, program, printer) if cell.gates_are_sums else []
    lines += assignments(program, printer)
    return lines + stores([f"next[{q}]" for q in range(cell.num_states)], program.outputs, printer)


def backward_body(cell: SymbolicCell) -> list[str]:
    printer = CudaCellPrinter(input_names(cell))
    states = [f"dprev[{q}]" for q in range(cell.num_states)]
    if cell.gates_are_sums:
        program = cell.summed_backward
        lines = summed_inputs(cell, program, printer) + assignments(program, printer)
        dpre, dprev = cell.summed_backward_outputs
        gates = [f"dx[{g}] = drec[{g}] = db[{g}]" for g in range(cell.gates_x)]
        return lines + stores(gates, dpre, printer) + stores(states, dprev, printer)
    program = cell.backward
    lines = assignments(program, printer)
    grads = cell.backward_outputs
    for array, outputs in (("dx", grads.dx), ("drec", grads.drec), ("db", grads.db)):
        lines += stores([f"{array}[{g}]" for g in range(len(outputs))], outputs, printer)
    return lines + stores(states, grads.dprev, printer)
