"""Compile backends/triton/stepwise.py's kernels for sm_90 on a CPU (no interpreter: run it in a
process without TRITON_INTERPRET) and print {cell: [forward spill bytes, backward spill bytes]} as JSON
(tests/test_triton_stepwise.py). Usage: python tests/stepwise_compile.py CELL..."""
import json
import sys

import triton.language as tl

import fusedrnn
from fusedrnn.backends.triton import stepwise
from fusedrnn.backends.triton.compile_check import build, ptxas_report
from fusedrnn.backends.triton.pointwise import pointwise

def spill_bytes(kernel, cell: str, backward: bool, warps: int) -> int:
    """As forward() and backward() launch them at DH 768 in bf16, with lengths and resets, the call's
    tensors 16-byte aligned."""
    spec = fusedrnn.CELLS[cell]
    signature = dict(call_ptr="*i64", k="i32", B="i32")
    constants = dict(NH=1, DH=768, GX=spec.gates_x, GR=spec.gates_r, GB=spec.gates_b, S=spec.num_states,
                     BLOCK_U=32, BLOCK_B=32, BLOCK_K=64, CELL=pointwise(spec)[int(backward)], FAST_MATH=True,
                     HAS_LENGTHS=True, HAS_RESETS=True, PRECISION="tf32", WIDE_OFFSETS=False, STORAGE=tl.bfloat16,
                     ALIGNED=True)
    if not backward:
        constants["SAVE"] = spec.num_states > 1
    return ptxas_report(build(kernel, signature, constants, dict(num_warps=warps)).ptxas_log)["spill_stores"]


if __name__ == "__main__":
    print(json.dumps({cell: [spill_bytes(stepwise.step_forward_kernel, cell, False, 4),
                             spill_bytes(stepwise.step_backward_kernel, cell, True, 8)] for cell in sys.argv[1:]}))
