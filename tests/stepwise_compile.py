"""Compile backends/triton/stepwise.py's kernels for sm_90 on a CPU (no interpreter: run it in a
process without TRITON_INTERPRET) and print {cell: [forward spill bytes, backward spill bytes]} as JSON
(tests/test_triton_stepwise.py). Usage: python tests/stepwise_compile.py CELL..."""
import json
import sys

import torch
import triton.language as tl

import fusedrnn
from fusedrnn.backends.triton import stepwise
from fusedrnn.backends.triton.compile_check import build, ptxas_report
from fusedrnn.backends.triton.plan import stepwise_plan
from fusedrnn.backends.triton.pointwise import pointwise
from fusedrnn.problem import Problem


def spill_bytes(kernel, cell: str, backward: bool) -> int:
    """As forward() and backward() launch them at DH 768, B=256 in bf16 with lengths and resets, the
    plan's tiles and warps (plan.stepwise_plan), the call's tensors 16-byte aligned."""
    spec = fusedrnn.CELLS[cell]
    problem = Problem(spec, 256, 1024, 1, 768, torch.bfloat16, torch.device("cuda"), True, True, True)
    plan = stepwise_plan(problem, backward)
    signature = dict(call_ptr="*i64", k="i32", B="i32")
    constants = dict(NH=1, DH=768, GX=spec.gates_x, GR=spec.gates_r, GB=spec.gates_b, S=spec.num_states,
                     CELL=pointwise(spec)[int(backward)], HAS_LENGTHS=True, HAS_RESETS=True, STORAGE=tl.bfloat16,
                     ALIGNED=True, **plan.constants())
    if not backward:
        constants["SAVE"] = spec.num_states > 1
    return ptxas_report(build(kernel, signature, constants, dict(num_warps=plan.num_warps)).ptxas_log)["spill_stores"]


if __name__ == "__main__":
    print(json.dumps({cell: [spill_bytes(stepwise.step_forward_kernel, cell, False),
                             spill_bytes(stepwise.step_backward_kernel, cell, True)] for cell in sys.argv[1:]}))
