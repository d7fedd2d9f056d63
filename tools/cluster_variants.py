"""How long is a step of the cluster forward with one part of it left out, and in
each form of its exchange of h? For each DHxNH (default 768x1 256x3), LSTM bf16,
B=16, T=1024, forward only: the cluster plan (plan.plan narrowed with
strategy='cluster'); the plan in the other forms of its step (tools/cuda_profile.py
FORMS: the cluster barrier, st.async with one mbarrier a buffer or one a sender,
each with the owners' cells), checked first against the float64 torch reference
at T=48 with lengths (a wrong one is reported, not timed); and the timing probes
of csrc/cluster_probes.cu (ClusterConfig.probe: each leaves a part of the step
out, so their results are wrong and not checked): on the plan those that leave
out the product or the stores, on the barrier form also those of the push and
the barrier's fence. Each row gives the forward's median ms
(triton.testing.do_bench, as `fusedrnn bench` takes it), µs a step, the cost
model's µs a step (ClusterConfig.step_cycles), registers, local-memory
instructions and how many clusters the GPU runs at once. Prints a table; writes
cluster-variants.json to --out (default $OUT, else /tmp).
The cluster against the grid or one SM, forward or backward, is `fusedrnn bench
--plan cluster/auto grid/auto`; other cluster shapes, register tiles and depths
(the planner's space) are timed by tools/tune_check.py; where a step goes inside
the kernel, warp by warp, is tools/cluster_timeline.py.

  python tools/cluster_variants.py [DHxNH ...] [--out DIR]
"""
import argparse
import dataclasses
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import triton.testing

from cuda_profile import FORMS, owners
from fusedrnn.backends.cuda.fused.cluster import PER_SOURCE, clusters_at_once
from fusedrnn.backends.cuda.fused.plan import Plan, plan
from fusedrnn.backends.cuda.fused.planned import with_plans
from fusedrnn.backends.cuda.runtime.compile import compile_kernel, nvrtc_version
from fusedrnn.backends.cuda.runtime.device import device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from fusedrnn.testing import random_problem, torch_reference

CELL, DTYPE, B, T, T_CHECK = "lstm", torch.bfloat16, 16, 1024, 48
TOLERANCE = 3e-2  # relative L2 error of bf16 outputs over 48 steps against float64: ~1e-2
# probes that leave out a part of any form of the step; those of the cluster barrier's push and fence
# (the st.async forms push without the barrier: there they would change nothing or break the barrier)
ANY_FORM_PROBES = ("RegisterTilesOnly", "NoProduct", "NoOutput")
BARRIER_PROBES = ("NoPush", "RelaxedArrive", "NoPushRelaxedArrive", "BarrierCellInput") + ANY_FORM_PROBES


def variants(DH, NH, limits):
    """(name, forward config, checked) of one shape: the plan, its forms, the probes."""
    problem = Problem(get_cell(CELL), B, T, NH, DH, DTYPE, torch.device("cuda"), False, False)
    chosen = plan(problem, limits, "forward", strategy="cluster").config
    found = [("plan", chosen, True)]
    whole_slices = chosen.DHP // 16 // chosen.KSPLIT % (chosen.ROWS // 16) == 0  # PER_SOURCE's condition
    for form in ("barrier", "async", "per-source"):
        config = FORMS[form][1](chosen)
        if (config.options & PER_SOURCE and not whole_slices) or config.shared_memory > limits.shared_memory_per_block:
            continue
        found.append((f"form {form}", config, True))
    found += [(f"plan, probe {probe}", dataclasses.replace(chosen, probe=probe), False) for probe in ANY_FORM_PROBES]
    barrier = owners(chosen, 0)
    found += [(f"barrier, probe {probe}", dataclasses.replace(barrier, probe=probe), False)
              for probe in BARRIER_PROBES]
    return found


def inputs(DH, NH, steps):
    torch.manual_seed(0)
    return random_problem(CELL, B, steps, NH, DH, dtype=DTYPE, device="cuda")


def error(config, DH, NH):
    """Relative error of y and the final states against the float64 torch reference, with lengths."""
    x, R, b, states = inputs(DH, NH, T_CHECK)
    lengths = torch.randint(1, T_CHECK + 1, (B,), device="cuda")
    with torch.no_grad():
        got = with_plans(Plan("forward", config, "variant"))(x, R, b, states, cell=CELL, lengths=lengths)
    want = torch_reference(CELL, x, R, b, states, lengths)
    return max(((g.double() - w).norm() / w.norm()).item() for g, w in zip(got, want))


def forward_ms(config, DH, NH):
    x, R, b, states = inputs(DH, NH, T)
    run = with_plans(Plan("forward", config, "variant"))

    def call():
        with torch.no_grad():
            run(x, R, b, states, cell=CELL)
    call()
    return triton.testing.do_bench(call, warmup=25, rep=100, return_mode="median")


def precompile(configs, arch):
    """Every variant's kernel into the disk cache, in parallel (NVRTC takes seconds a kernel)."""
    kernels = sorted({(c.name_expression, c.source) for c in configs}, key=str)
    context = multiprocessing.get_context("spawn")  # no CUDA in a forked child
    with ProcessPoolExecutor(max_workers=min(len(kernels), os.cpu_count() or 1), mp_context=context) as pool:
        list(pool.map(compile_kernel, [k[0] for k in kernels], [arch] * len(kernels), [k[1] for k in kernels]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", default=["768x1", "256x3"], metavar="DHxNH")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    args = parser.parse_args()
    limits = device_limits()
    started, results = time.time(), []
    todo = [(DH, NH, *v) for DH, NH in (map(int, s.split("x")) for s in args.shapes) for v in variants(DH, NH, limits)]
    precompile([v[3] for v in todo], limits.arch)
    for DH, NH, name, config, checked in todo:
        row = dict(shape=f"{DH}x{NH}", variant=name, kernel=config.name_expression, ctas=config.parts,
                   model_us_per_step=config.step_cycles() / limits.clock_mhz)
        try:
            compiled = compile_kernel(config.name_expression, limits.arch, config.source)
            row.update(registers=compiled.registers, spill_bytes=compiled.spill_bytes,
                       local_memory_instructions=compiled.local_memory_instructions,
                       clusters_at_once=clusters_at_once(config, limits))
            if checked:
                row["error"] = error(config, DH, NH)
            row["ok"] = not checked or row["error"] < TOLERANCE
            if row["ok"]:
                row["fwd_ms"] = forward_ms(config, DH, NH)
        except Exception as failure:  # noqa: BLE001 (a launch error, or a form the GPU cannot run: the row's note)
            row["ok"], row["failure"] = False, f"{type(failure).__name__}: {failure}"[:300]
        results.append(row)
        print(row, flush=True)
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, nvrtc=nvrtc_version(), B=B, T=T,
                seconds=time.time() - started)
    with open(os.path.join(args.out, "cluster-variants.json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    print(f"\n{meta}\n| shape | variant | CTAs a head | clusters at once | registers | LDL/STL | error | fwd ms "
          "| µs/step | model µs/step |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        fwd = f"{r['fwd_ms']:.3f}" if "fwd_ms" in r else "-"
        step = f"{r['fwd_ms'] * 1000 / T:.2f}" if "fwd_ms" in r else "-"
        err = f"{r['error']:.2e}" if "error" in r else r.get("failure", "not checked")
        print(f"| {r['shape']} | {r['variant']} | {r['ctas']} | {r.get('clusters_at_once', '-')} "
              f"| {r.get('registers', '-')} | {r.get('local_memory_instructions', '-')} "
              f"| {err}{'' if r['ok'] else ' WRONG'} | {fwd} | {step} | {r['model_us_per_step']:.2f} |")


if __name__ == "__main__":
    main()
