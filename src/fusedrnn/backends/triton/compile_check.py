"""Compile the kernels for a GPU that is not here and read their resources.

Triton compiles for any target on a CPU-only machine; the log of the ptxas it
runs (the one it bundles for the target: from Triton 3.9 the CUDA 13 one for
sm_90) reports registers, spills and the stack frame, and its nvdisasm the time
loop's instructions. CI uses this to keep every shipped configuration inside
an H100's budget; variants are compared with it before any GPU time.
Pointers are declared 16-byte aligned, as the launcher specialises them: without
that the loads do not vectorise and the reports overstate spills several-fold.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tempfile

import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ...cells import get_cell
from .backward import recurrence_bwd_kernel
from .cells import POINTWISE
from .forward import recurrence_fwd_kernel
from . import padded_head_dim, saved, variants
from .launch import batch_tile, launch_options, stacks_gates

_TYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_FP32_ARGS = ("saved_states_ptr", "drec_ptr", "db_ptr")
_KNOBS = ("PREFETCH", "DB_EACH_STEP", "DX_DB_FROM_DREC", "STACK_GATES")  # kernel constants among the launch options


def _products(DH_P: int, products: str) -> str | None:
    """The products_ptr element type for `products` = none|fp32|shipped (what saved.py picks)."""
    if products == "shipped":
        chosen = saved.products_dtype(DH_P)
        return None if chosen is None else _TYPES[str(chosen).removeprefix("torch.")]
    return {"none": None, "fp32": "fp32"}[products]


def compile_for(cell: str, dtype: str, DH: int, B: int, backward: bool, arch: int = 90,
                products: str = "shipped", **overrides) -> dict:
    """Registers, spills, shared memory and the time loop's instruction mix of one
    configuration; `overrides` replace launch options (num_warps, PREFETCH, ...)."""
    compiled, options, constants, product_type = compile_kernel(cell, dtype, DH, B, backward, arch, products,
                                                                **overrides)
    chosen = {k: constants[k] for k in _KNOBS if k in constants}
    return dict(shared=compiled.metadata.shared, **options, products=product_type or "none", **chosen,
                **ptxas_report(compiled.ptxas_log), **loop_report(compiled.asm["cubin"]),
                transposed_a_jumps=transposed_a_jumps(compiled.asm["ptx"]))


def compile_kernel(cell: str, dtype: str, DH: int, B: int, backward: bool, arch: int = 90,
                   products: str = "shipped", **overrides):
    """The compiled kernel (its .asm holds ttgir, ptx, cubin; its .ptxas_log what ptxas
    -v said building that cubin), its launch options, its constants and the products'
    element type (None: not saved)."""
    spec = get_cell(cell)
    kernel = recurrence_bwd_kernel if backward else recurrence_fwd_kernel
    DH_P = padded_head_dim(DH)
    BLOCK_B = batch_tile(B, DH_P)
    product_type = _products(DH_P, products)
    signature = {name: "*" + _TYPES[dtype] for name in kernel.arg_names if name.endswith("_ptr")}
    signature.update({name: "*fp32" for name in _FP32_ARGS if name in signature})
    signature.update({"len_ptr": "*i64", "B": "i32", "T": "i32", "products_ptr": "*" + (product_type or "fp32")})
    constants = dict(NH=12, DH=DH, DH_P=DH_P, BLOCK_B=BLOCK_B, GX=spec.gates_x, GR=spec.gates_r,
                     GB=spec.gates_b, S=spec.num_states, CELL=POINTWISE[cell][int(backward)], HAS_LENGTHS=True,
                     WIDE_OFFSETS=False, FAST_MATH=dtype == "bfloat16",
                     PRECISION="ieee" if dtype == "float32" else "tf32")
    constants["LOAD_PRODUCTS" if backward else "SAVE_PRODUCTS"] = product_type is not None
    if not backward:
        constants["SAVE"] = True
    options = {**launch_options(DH_P, BLOCK_B, backward, spec.gates_r), **overrides}  # as asked, even for Elman
    constants.update({knob: options.pop(knob) for knob in _KNOBS if knob in options})
    constants["STACK_GATES"] = stacks_gates(constants["STACK_GATES"], spec, dtype == "float32", DH_P)  # as launch.py
    if "DX_DB_FROM_DREC" in constants:  # as launch.py: only where dx and db equal drec
        constants["DX_DB_FROM_DREC"] = constants["DX_DB_FROM_DREC"] and spec.gates_are_sums
    signature.update({name: "constexpr" for name in constants})
    # as the launcher specialises them: every buffer torch allocates is 16-byte aligned (B, T are not specialised)
    aligned = {(kernel.arg_names.index(name),): [["tt.divisibility", 16]]
               for name in signature if name.endswith("_ptr")}
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
    return compiled, options, constants, product_type


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


def _value(text: str):
    if text in ("true", "false"):
        return text == "true"
    return int(text) if text.isdigit() else text


def main(argv=None) -> None:
    """python -m fusedrnn.backends.triton.compile_check CELL,DTYPE,DH,B,fwd|bwd[,key=value...] ... -> JSON lines.

    Keys: variant=NAME (variants.py), products=none|fp32|input|shipped and any
    launch option (num_warps=8, PREFETCH=false, DX_DB_FROM_DREC=true, STACK_GATES=true).
    A separate process, because under TRITON_INTERPRET=1 (as in the CPU tests)
    the kernels are interpreted functions that cannot be compiled."""
    import json
    import sys

    for spec in (argv if argv is not None else sys.argv[1:]):
        cell, dtype, DH, B, direction, *rest = spec.split(",")
        overrides = {key: _value(value) for key, value in (item.split("=") for item in rest)}
        if "variant" in overrides:
            named = variants.compile_overrides(overrides.pop("variant"), direction == "bwd")
            overrides = {**named["overrides"], "products": named["products"], **overrides}
        report = compile_for(cell, dtype, int(DH), int(B), direction == "bwd", **overrides)
        print(json.dumps({"spec": spec, **report}), flush=True)


if __name__ == "__main__":
    main()
