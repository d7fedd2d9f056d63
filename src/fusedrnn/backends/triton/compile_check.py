"""Compile the kernels for a GPU that is not here and read their resources.

Triton compiles for any target on a CPU-only machine; the log of the ptxas it
runs (the one it bundles for the target: from Triton 3.9 the CUDA 13 one for
sm_90) reports registers, spills and the stack frame, and its nvdisasm the time
loop's instructions. CI uses this to keep every shipped configuration inside
an H100's budget; variants are compared with it before any GPU time. What
compiles is what plan.plan plans for the configuration (as shipped or as a named
variant), with any plan fields replaced as asked.
Pointers are declared 16-byte aligned, as the launcher specialises them: without
that the loads do not vectorise and the reports overstate spills several-fold.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import subprocess
import tempfile

import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ...cells import get_cell
from ...problem import Problem
from .backward import recurrence_bwd_kernel
from .forward import recurrence_fwd_kernel
from . import saved
from .launch import shape_constants
from .plan import plan
from .pointwise import pointwise

_TYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_FP32_ARGS = ("saved_states_ptr", "drec_ptr", "db_ptr")
_KNOBS = ("PREFETCH", "DB_EACH_STEP", "DX_DB_FROM_DREC", "STACK_GATES")  # kernel switches a plan sets
# the call planned and compiled: 12 heads (the benchmark's 64x12) and its length. T is a kernel
# argument, not a constant: it only decides WIDE_OFFSETS, int32 offsets up to B = 256 at DH = 128
HEADS, STEPS = 12, 1024


def compile_for(cell: str, dtype: str, DH: int, B: int, backward: bool, arch: int = 90,
                variant: str = "shipped", resets: bool = False, **replace) -> dict:
    """Registers, spills, shared memory and the time loop's instruction mix of one
    configuration as planned (`variant`, variants.py), with the plan fields in `replace`
    (num_warps, PREFETCH, products, ...) replaced as given; `resets`: as a call with resets."""
    compiled, options, constants, product_type = compile_kernel(cell, dtype, DH, B, backward, arch, variant,
                                                                resets, **replace)
    chosen = {k: constants[k] for k in _KNOBS if k in constants}
    return dict(shared=compiled.metadata.shared, **options, products=product_type or "none", **chosen,
                **ptxas_report(compiled.ptxas_log), **loop_report(compiled.asm["cubin"]),
                transposed_a_jumps=transposed_a_jumps(compiled.asm["ptx"]), byte_loads=byte_loads(compiled.asm["ptx"]))


def compile_kernel(cell: str, dtype: str, DH: int, B: int, backward: bool, arch: int = 90,
                   variant: str = "shipped", resets: bool = False, **replace):
    """The compiled kernel (its .asm holds ttgir, ptx, cubin; its .ptxas_log what ptxas
    -v said building that cubin), its launch options, its constants and the products'
    element type (None: not saved)."""
    spec = get_cell(cell)
    kernel = recurrence_bwd_kernel if backward else recurrence_fwd_kernel
    problem = Problem(spec, B, STEPS, HEADS, DH, getattr(torch, dtype), torch.device("cuda"), True, True)
    chosen = dataclasses.replace(plan(problem, backward, variant), **replace)
    saved_type = saved.products_dtype(chosen.products)
    product_type = None if saved_type is None else _TYPES[str(saved_type).removeprefix("torch.")]
    signature = {name: "*" + _TYPES[dtype] for name in kernel.arg_names if name.endswith("_ptr")}
    signature.update({name: "*fp32" for name in _FP32_ARGS if name in signature})
    signature.update({"len_ptr": "*i64", "B": "i32", "T": "i32", "products_ptr": "*" + (product_type or "fp32"),
                      "resets_ptr": "*u8", "tile_resets_ptr": "*u8"})
    # as launch.py passes them, with lengths and a training call's saved states; without
    # resets it passes no resets tables, whose default None Triton makes a constant
    constants = dict(shape_constants(spec, HEADS, DH), **chosen.constants(), CELL=pointwise(spec)[int(backward)],
                     HAS_LENGTHS=True, HAS_RESETS=resets)
    if not resets:
        constants.update(resets_ptr=None, tile_resets_ptr=None)
    constants["LOAD_PRODUCTS" if backward else "SAVE_PRODUCTS"] = product_type is not None
    if not backward:
        constants["SAVE"] = True
    options = chosen.options()
    return build(kernel, signature, constants, options, arch), options, constants, product_type


def build(kernel, signature: dict, constants: dict, options: dict, arch: int = 90):
    """`kernel` compiled for sm_`arch` with these argument types and constants, pointers 16-byte
    aligned as the launcher specialises them (every buffer torch allocates is; B, T are not
    specialised); its .ptxas_log holds what ptxas -v said building the cubin."""
    signature = dict(signature, **{name: "constexpr" for name in constants})
    aligned = {(kernel.arg_names.index(name),): [["tt.divisibility", 16]]
               for name, kind in signature.items() if name.endswith("_ptr") and kind != "constexpr"}
    source = ASTSource(kernel, signature, constexprs={(kernel.arg_names.index(k),): v for k, v in constants.items()},
                       attrs=aligned)
    # the resources of the cubin Triton builds, as its own ptxas run reports them (the ptxas
    # and its flags are Triton's choice, and change between versions): so compiled afresh
    log = io.StringIO()
    with knobs.compilation.scope(), knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    compiled.ptxas_log = log.getvalue()
    return compiled


def ptxas_report(log: str) -> dict:
    """Registers, spill stores and stack frame (bytes) from the log of `ptxas -v`."""
    number = lambda pattern: int(re.search(pattern, log).group(1))  # noqa: E731
    return dict(registers=number(r"Used (\d+) registers"), spill_stores=number(r"(\d+) bytes spill stores"),
                stack=number(r"(\d+) bytes stack frame"))


def loop_report(cubin: bytes) -> dict:
    """SASS instructions a warp runs per time step (the longest loop: the time
    loop), with its barriers, local-memory (spill) accesses, wgmma, waits for
    wgmma and memory fences (one before each product whose operand was just
    staged in shared memory). A step is a chain of these, so fewer is the
    CPU-side proxy for faster."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        sass = subprocess.run([knobs.nvidia.nvdisasm.path, "-c", path], capture_output=True, text=True,
                              check=True).stdout
    lines = sass.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^(\.L_x_\d+):", line))}
    loops = [(labels[m.group(1)], i) for i, line in enumerate(lines)
             if (m := re.search(r"BRA `\((\.L_x_\d+)\)", line)) and labels.get(m.group(1), i) < i]
    first, last = max(loops, key=lambda span: span[1] - span[0])
    body = [line.split("*/", 1)[1] for line in lines[first:last + 1] if re.match(r"\s+/\*[0-9a-f]{4,}\*/", line)]
    count = lambda pattern: sum(1 for line in body if re.search(pattern, line))  # noqa: E731
    return dict(loop_instructions=len(body), loop_barriers=count(r"\bBAR\.SYNC"),
                loop_local=count(r"\b(LDL|STL)\b"), loop_wgmma=count(r"\bHGMMA\b"),
                loop_wgmma_waits=count(r"WARPGROUP\.DEPBAR"), loop_fences=count(r"\bMEMBAR\b"))


# a register defined as another plus an immediate; for the descriptors' start addresses (in 16 bytes,
# their low 14 bits) Triton 3.6 adds the offset to the 64-bit descriptor (or.b64/add.s64), 3.9 to the
# 32-bit address (add.s32) before widening it (cvt.u64.u32) and or-ing in the descriptor's other fields
_OFFSET = re.compile(r"(?:or\.b64|add\.s64|add\.s32)\s+(%rd?\d+),\s*(%rd?\d+),\s*(-?\d+);")
_WIDEN = re.compile(r"cvt\.u64\.u32\s+(%rd\d+),\s*(%r\d+);")
_WGMMA = re.compile(r"wgmma\.mma_async\.sync\.aligned\.\S+\s+\{([^}]*)\},\s*(%rd\d+),\s*%rd\d+,\s*([^,]+),"
                    r"\s*-?1,\s*-?1,\s*([01]),\s*[01];")


def transposed_a_jumps(ptx: str) -> int:
    """Irregular K steps of wgmma A operands read transposed (M-major, the R^T
    products: tl.trans of a tile in shared memory). Their K runs along the
    tile's rows, which lie a fixed stride apart in every slab, so the start
    addresses of successive K steps of one product on one allocation must be
    evenly spaced. Triton 3.6 breaks this for a [512, 128] 16-bit tile (stacked.py:
    the transposed view assumes slabs of 256 rows): then this counts its jumps.
    Reads the PTX of Triton 3.6 to 3.9 (their descriptor arithmetic differs: _OFFSET)."""
    defined = {m.group(1): (m.group(2), int(m.group(3))) for m in _OFFSET.finditer(ptx)}
    defined.update({m.group(1): (m.group(2), 0) for m in _WIDEN.finditer(ptx)})

    def base(register: str, depth: int = 0) -> tuple[str, int]:
        """The register an address descends from by immediates, and its start address / 16 past it."""
        if register not in defined or depth > 8:
            return register, 0
        parent, offset = defined[register]
        root, more = base(parent, depth + 1)
        return root, (offset + more) & 0x3FFF

    running: dict = {}  # accumulator registers -> [(base, start address / 16)] of the product running into them
    chains = []
    for m in _WGMMA.finditer(ptx):
        if m.group(4) != "1":
            continue
        if m.group(3).strip() == "0" or m.group(1) not in running:  # a product starts: accumulator not read
            running[m.group(1)] = []
            chains.append(running[m.group(1)])
        running[m.group(1)].append(base(m.group(2)))
    jumps = 0
    for steps in chains:
        for root in {b for b, _ in steps}:
            offsets = [o for b, o in steps if b == root]
            jumps += len({b - a for a, b in zip(offsets, offsets[1:])}) > 1
    return jumps


def byte_loads(ptx: str) -> int:
    """Loads of single bytes: the kernels read no other bytes than the resets tables, so a
    kernel compiled without resets has none (it does not read them, resets.py)."""
    return len(re.findall(r"\bld\.global(?:\.\w+)*\.[bsu]8\b", ptx))


def _value(text: str):
    if text in ("true", "false"):
        return text == "true"
    return int(text) if text.isdigit() else text


def main(argv=None) -> None:
    """python -m fusedrnn.backends.triton.compile_check CELL,DTYPE,DH,B,fwd|bwd[,key=value...] ... -> JSON lines.

    Keys: variant=NAME (variants.py; default shipped), resets=true (as a call with resets),
    then any field of plan.TritonPlan,
    replacing the planned value as given (num_warps=8, PREFETCH=false, DX_DB_FROM_DREC=true,
    STACK_GATES=true, products=none|fp32; products=shipped keeps the planned one).
    A separate process, because under TRITON_INTERPRET=1 (as in the CPU tests)
    the kernels are interpreted functions that cannot be compiled."""
    import json
    import sys

    for spec in (argv if argv is not None else sys.argv[1:]):
        cell, dtype, DH, B, direction, *rest = spec.split(",")
        replace = {key: _value(value) for key, value in (item.split("=") for item in rest)}
        if replace.get("products") == "shipped":
            del replace["products"]
        report = compile_for(cell, dtype, int(DH), int(B), direction == "bwd", **replace)
        print(json.dumps({"spec": spec, **report}), flush=True)


if __name__ == "__main__":
    main()
