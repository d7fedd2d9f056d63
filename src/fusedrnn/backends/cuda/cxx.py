"""The C++ side's names for the host's types: each cell's struct
(csrc/cells/*.cuh) and each storage dtype, and how a template instantiation
is spelled for NVRTC's name expressions."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

CELL_TYPES = {
    "lstm": "fusedrnn::Lstm", "gru": "fusedrnn::Gru", "elman": "fusedrnn::ElmanTanh",
    "elman_relu": "fusedrnn::ElmanRelu", "slstm": "fusedrnn::Slstm",
}
STORAGE_TYPES = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}


def template_argument(value) -> str:
    """A template argument as C++ spells it: bools lower case, cells and dtypes by their C++ type."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, torch.dtype):
        return STORAGE_TYPES[value]
    if isinstance(value, str) and value in CELL_TYPES:
        return CELL_TYPES[value]
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
