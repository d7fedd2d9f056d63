"""The C++ side's names for the host's types: each cell's struct (generated from
the cell's step by cell_codegen.py; no C++ file names a cell) and each storage
dtype, how a template instantiation is spelled for NVRTC's name expressions, and
the translation unit a cell's kernels compile from."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ...cells import CELLS, Cell, get_cell
from .cell_codegen import cell_struct, qualified_name
from .runtime.unit import TranslationUnit

STORAGE_TYPES = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}
# what a generated struct needs before it: Gates and the math (the kernels' headers include it again)
PRELUDE_INCLUDE = '#include "cells/cell.cuh"\n'


def cell_type(cell: str) -> str:
    """The C++ type of the struct of the cell named `cell`."""
    return qualified_name(traced_cell(cell).name)


def traced_cell(cell: str) -> Cell:
    """The cell named `cell`, which must carry its traced step: its struct is printed from it."""
    spec = get_cell(cell)
    if spec.symbolic is None:
        raise ValueError(f"cell {cell!r} has no CUDA struct: it was not built from a step (its Cell holds torch "
                         "functions alone); define it with fusedrnn.define_cell")
    return spec


def cell_prelude(cell: str) -> str:
    """The C++ text a translation unit needs before it to instantiate its kernels for the cell:
    the cell's generated struct (the .cu files include no cell of their own)."""
    return prelude_of(traced_cell(cell))


@functools.lru_cache(maxsize=None)
def prelude_of(cell: Cell) -> str:
    # keyed on the Cell (its name, counts and generated functions): asked at every launch
    return PRELUDE_INCLUDE + cell_struct(cell.symbolic)


def cell_unit(path: Path, cell: str) -> TranslationUnit:
    """The translation unit at `path` for the kernels of the cell named `cell`: the file with the
    cell's generated struct as its prelude."""
    return TranslationUnit(path, cell_prelude(cell))


def template_argument(value) -> str:
    """A template argument as C++ spells it: bools lower case, cells (by name) and dtypes by their C++ type."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, torch.dtype):
        return STORAGE_TYPES[value]
    if isinstance(value, str) and value in CELLS:
        return cell_type(value)
    return str(value)


def instantiation(kernel: str, *arguments) -> str:
    """`fusedrnn::kernel<a, b, ...>` for NVRTC's name expressions."""
    return f"fusedrnn::{kernel}<{', '.join(template_argument(a) for a in arguments)}>"


@dataclass(frozen=True)
class Kernel:
    """The contract of one kernel template, written once: its template parameters
    (fields of the host's config, in the C++ order) and its runtime parameters
    (device pointers first, then 32-bit ints, in the C++ order). The name
    expression and the launch arguments both come from it, and a CPU test
    checks the parameter kinds against each shipped kernel's PTX."""
    name: str
    template: tuple[str, ...]
    pointers: tuple[str, ...]
    ints: tuple[str, ...] = ()

    def name_expression(self, config) -> str:
        return instantiation(self.name, *(getattr(config, field) for field in self.template))

    def arguments(self, **values) -> list:
        """The launch arguments in the kernel's order: tensors (or None, a null pointer) for
        the pointers, Python ints for the ints; every parameter given, no other."""
        expected = self.pointers + self.ints
        missing, unknown = set(expected) - set(values), set(values) - set(expected)
        if missing or unknown:
            raise TypeError(f"{self.name}: arguments missing {sorted(missing)}, unknown {sorted(unknown)}")
        for name in self.ints:
            if not isinstance(values[name], int):
                raise TypeError(f"{self.name}: {name} must be an int, got {type(values[name]).__name__}")
        return [values[name] for name in expected]

    def parameter_kinds(self) -> list[str]:
        """The PTX kinds of the parameters: .u64 pointers, then .u32 ints."""
        return ["u64"] * len(self.pointers) + ["u32"] * len(self.ints)


def struct_constants(header: Path, struct: str) -> dict[str, int]:
    """The `static constexpr int NAME = value;` members of a C++ struct in a header, so that
    constants both sides need are written once, in C++."""
    text = header.read_text()
    body = re.search(r"struct\s+" + struct + r"\s*\{(.*?)\n\};", text, re.S)
    if body is None:
        raise ValueError(f"no struct {struct} in {header}")
    found = dict(re.findall(r"static\s+constexpr\s+int\s+(\w+)\s*=\s*(\d+)\s*;", body.group(1)))
    return {name: int(value) for name, value in found.items()}
