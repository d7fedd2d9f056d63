"""Compile the kernels for a GPU that is not here and read their resources.

Triton compiles for any target on a CPU-only machine; its bundled ptxas then
reports registers, spills and the stack frame. CI uses this to keep every
shipped configuration inside an H100's budget.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ...cells import get_cell
from .backward import recurrence_bwd_kernel
from .cells import POINTWISE
from .forward import recurrence_fwd_kernel
from . import padded_head_dim
from .launch import batch_tile, launch_options

_TYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_FLOAT_ARGS = {
    False: ["x_ptr", "R_ptr", "b_ptr", "s0_ptr", "y_ptr", "final_ptr"],
    True: ["x_ptr", "R_ptr", "b_ptr", "s0_ptr", "y_ptr", "dy_ptr", "dfinal_ptr", "dx_ptr", "ds0_ptr"],
}
_FP32_ARGS = {
    False: ["saved_states_ptr"],
    True: ["saved_states_ptr", "drec_ptr", "db_ptr"],
}


def compile_for(cell: str, dtype: str, DH: int, B: int, backward: bool, arch: int = 90) -> dict:
    spec = get_cell(cell)
    kernel = recurrence_bwd_kernel if backward else recurrence_fwd_kernel
    DH_P = padded_head_dim(DH)
    BLOCK_B = batch_tile(B, DH_P)
    signature = {name: "*" + _TYPES[dtype] for name in _FLOAT_ARGS[backward]}
    signature.update({name: "*fp32" for name in _FP32_ARGS[backward]})
    signature.update({"len_ptr": "*i64", "B": "i32", "T": "i32"})
    constants = dict(NH=12, DH=DH, DH_P=DH_P, BLOCK_B=BLOCK_B, GX=spec.gates_x, GR=spec.gates_r,
                     GB=spec.gates_b, S=spec.num_states, CELL=POINTWISE[cell][int(backward)], HAS_LENGTHS=True, WIDE_OFFSETS=False,
                     FAST_MATH=dtype == "bfloat16",
                     PRECISION="ieee" if dtype == "float32" else "tf32")
    if not backward:
        constants["SAVE"] = True
    signature.update({name: "constexpr" for name in constants})
    options = launch_options(DH_P, BLOCK_B, backward, spec.gates_r)
    for knob in ("PREFETCH", "DB_EACH_STEP"):  # kernel constants among the launch options
        if knob in options:
            constants[knob] = options.pop(knob)
            signature[knob] = "constexpr"
    source = ASTSource(kernel, signature, constexprs={(kernel.arg_names.index(k),): v for k, v in constants.items()})
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    return dict(shared=compiled.metadata.shared, **options, **ptxas_report(compiled.asm["ptx"], arch))


def ptxas_report(ptx: str, arch: int) -> dict:
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        out = subprocess.run([ptxas, f"-arch=sm_{arch}a", "-v", path, "-o", os.path.join(tmp, "k.cubin")],
                             capture_output=True, text=True, check=True).stderr
    number = lambda pattern: int(re.search(pattern, out).group(1))  # noqa: E731
    return dict(registers=number(r"Used (\d+) registers"), spill_stores=number(r"(\d+) bytes spill stores"),
                stack=number(r"(\d+) bytes stack frame"))


def main(argv=None) -> None:
    """python -m fusedrnn.backends.triton.compile_check CELL,DTYPE,DH,B,fwd|bwd ... -> JSON lines.

    A separate process, because under TRITON_INTERPRET=1 (as in the CPU tests)
    the kernels are interpreted functions that cannot be compiled."""
    import json
    import sys

    for spec in (argv if argv is not None else sys.argv[1:]):
        cell, dtype, DH, B, direction = spec.split(",")
        report = compile_for(cell, dtype, int(DH), int(B), direction == "bwd")
        print(json.dumps({"spec": spec, **report}), flush=True)


if __name__ == "__main__":
    main()
