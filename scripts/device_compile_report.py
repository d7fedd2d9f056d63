"""Registers, spills and local-memory instructions of the kernels a head sweep
runs (LSTM bf16, B=16, hidden 768), compiled by the NVRTC of this machine: the
CPU compile test uses whatever NVRTC CI installs, and another version may
allocate registers differently (docs/perf-notes.md, 2026-11-26).

    PYTHONPATH=src python scripts/device_compile_report.py
"""
import torch

from fusedrnn.backends.cuda.cluster import choose_cluster, fit_to_compiler
from fusedrnn.backends.cuda.compile import compile_kernel, nvrtc_version
from fusedrnn.backends.cuda.fused import choose_config
from fusedrnn.backends.cuda.split import choose_split

ARCH, B = "sm_90", 16


def kernels():
    for DH, NH in ((16, 48), (32, 24), (64, 12), (128, 6)):
        for backward in (False, True):
            yield f"{DH}x{NH} one SM", choose_config("lstm", torch.bfloat16, DH, B, backward)
    for DH, NH in ((256, 3), (768, 1)):
        for backward in (False, True):
            yield f"{DH}x{NH} grid", choose_split("lstm", torch.bfloat16, DH, B, NH, 132, backward)
        planned = choose_cluster("lstm", torch.bfloat16, DH, B, NH, 132)
        yield f"{DH}x{NH} cluster plan", planned
        yield f"{DH}x{NH} cluster fitted", fit_to_compiler(planned, ARCH)


print(f"NVRTC {nvrtc_version()}\n| shape | kernel | registers | spill bytes | stack | LDL/STL |\n|---|---|---|---|---|---|")
for label, config in kernels():
    if config is None:
        print(f"| {label} | none fits | | | | |")
        continue
    compiled = compile_kernel(config.name_expression, ARCH)
    print(f"| {label} | {config.name_expression.split('<')[0].split('::')[1]}<{config.name_expression.split('<', 1)[1]} "
          f"| {compiled.registers} | {compiled.spill_bytes} | {compiled.stack_bytes} "
          f"| {compiled.local_memory_instructions} |")
