"""define_cell: a cell from one step function, traced once; its torch forward and
backward are generated from the trace (DESIGN.md section 2). The built-in cells are
built by the same function (cell_from_step) and registered in cells/__init__.py."""
from __future__ import annotations

from typing import Callable, Sequence

from .base import Cell
from .registry import CELLS, REGISTRATION, register
from .symbolic import trace
from .torch_codegen import torch_code


def define_cell(name: str, step: Callable, *, gates_x: int, gates_r: int, gates_b: int,
                states: Sequence[str]) -> Cell:
    """Define the cell `name` from step(x, r, b, s) -> new states (h first), where x, r, b
    are the Gx, Gr, Gb pre-activation parts of one element and s its S states, all
    built on with Python arithmetic and fusedrnn.cellmath. Returns the registered Cell.

    Raises ValueError, leaving CELLS unchanged, for a name already defined, bad
    counts or state names, a step whose state count differs from `states`, or math
    outside cellmath."""
    check_name(name)
    with REGISTRATION:  # no second definition of the name between the check and the registration
        if name in CELLS:
            raise ValueError(f"define_cell: a cell named {name!r} is already defined; choose another name")
        return register(cell_from_step(name, step, gates_x=gates_x, gates_r=gates_r, gates_b=gates_b,
                                       states=states))


def cell_from_step(name: str, step: Callable, *, gates_x: int, gates_r: int, gates_b: int,
                   states: Sequence[str]) -> Cell:
    """The Cell of define_cell's arguments, checked, traced and its torch code generated, but
    not registered: what define_cell registers, and each built-in cell's file builds."""
    check_name(name)
    if not callable(step):
        raise ValueError(f"define_cell {name!r}: step must be a function step(x, r, b, s), got {type(step).__name__}")
    for argument, count in (("gates_x", gates_x), ("gates_r", gates_r), ("gates_b", gates_b)):
        check_count(name, argument, count)
    state_names = checked_states(name, states)
    symbolic = trace(step, gates_x, gates_r, gates_b, len(state_names), name=name)
    code = torch_code(symbolic)
    return Cell(name, gates_x, gates_r, gates_b, state_names, code.forward, code.backward,
                gates_are_sums=symbolic.gates_are_sums, symbolic=symbolic)


def check_name(name) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"define_cell: name must be a non-empty identifier-like str (letters, digits, _), got {name!r}")


def check_count(name: str, argument: str, count) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"define_cell {name!r}: {argument} must be a positive int, got {count!r}")


def checked_states(name: str, states) -> tuple[str, ...]:
    if not isinstance(states, (tuple, list)) or not states:
        raise ValueError(f"define_cell {name!r}: states must be a non-empty tuple of state names, h first, got {states!r}")
    if not all(isinstance(state, str) and state for state in states):
        raise ValueError(f"define_cell {name!r}: states must be non-empty str names, got {states!r}")
    if len(set(states)) != len(states):
        raise ValueError(f"define_cell {name!r}: states must be distinct names, got {states!r}")
    if states[0] != "h":
        raise ValueError(f"define_cell {name!r}: states must name the hidden state first, as \"h\", got {states!r}")
    return tuple(states)
