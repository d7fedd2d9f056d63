"""Heads split over CTAs: the thread-block cluster forward (csrc/cluster_forward.cuh)
against the cooperative grid (csrc/split_forward.cuh) at 256x3 and 768x1, LSTM
bf16, B=16, T=1024, forward and forward+backward (the backward is the grid's
either way). Every variant is first checked against the torch backend in fp32
on a short sequence; a wrong one is reported and not timed. Variants: the grid,
the cluster shape the plan picks, and the next best shapes of its cost model.
One process, about a minute on the H100. Prints a table; writes
cluster-variants.json into the folder given (default $OUT, else /tmp).
Usage: python scripts/cluster_variants.py [OUT_DIR]"""
import dataclasses
import json
import os
import sys
import time

import torch
import triton.testing

import fusedrnn
from fusedrnn.backends.cuda import cluster
from fusedrnn.backends.cuda.compile import compile_kernel
from fusedrnn.backends.cuda.launch import device_arch
from fusedrnn.backends.cuda.split import split_head_dim

B, T, T_CHECK = 16, 1024, 48
SHAPES = [(256, 3), (768, 1)]
EXTRA_SHAPES = 3  # cluster shapes beyond the plan's, best first by the cost model
plan = cluster.choose_cluster


def variants(DH, NH):
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    chosen = plan("lstm", torch.bfloat16, DH, B, NH, sm_count)
    found = [("grid", None), ("cluster (plan)", chosen)]
    others = sorted((c for c in cluster.cluster_configs("lstm", torch.bfloat16, split_head_dim(DH), 8, B > 8)
                     if c != chosen), key=lambda c: c.step_cycles())
    found += [(f"cluster P={c.parts} K={c.KSPLIT} NT={c.NT}", c) for c in others[:EXTRA_SHAPES]]
    if chosen.shared_tiles:  # one more K tile in registers than the plan's register model allows
        more = dataclasses.replace(chosen, reg_tiles=chosen.reg_tiles + 1)
        found.append(("cluster (plan), +1 tile in registers", more))
    return found


def use(config):
    os.environ["FUSEDRNN_SPLIT"] = "grid" if config is None else "cluster"
    cluster.choose_cluster = plan if config is None else (lambda *args, **kwargs: config)


def inputs(DH, NH, steps, grad=False):
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, steps, 4, NH, DH, **kw)
    R = torch.randn(4, NH, DH, DH, **kw) / DH**0.5
    b = torch.randn(4, NH, DH, **kw) / 4
    s = torch.randn(2, B, NH, DH, **kw) / 2
    return [t.requires_grad_(grad) for t in (x, R, b, s)]


def error(DH, NH):
    """Relative error of y and the final states against the torch backend in fp32."""
    x, R, b, s = inputs(DH, NH, T_CHECK)
    lengths = torch.randint(1, T_CHECK + 1, (B,), device="cuda")
    with torch.no_grad():
        got = fusedrnn.rnn(x, R, b, s, backend="cuda_fused", lengths=lengths)
        want = fusedrnn.rnn(x.float(), R.float(), b.float(), s.float(), backend="torch", lengths=lengths)
    return max(((g.float() - w).norm() / w.norm()).item() for g, w in zip(got, want))


def bench(DH, NH, backward):
    x, R, b, s = inputs(DH, NH, T, grad=backward)
    if not backward:
        def step():
            with torch.no_grad():
                fusedrnn.rnn(x, R, b, s, backend="cuda_fused")
    else:
        dy = torch.randn(B, T, NH, DH, device="cuda", dtype=torch.bfloat16)

        def step():
            y, _ = fusedrnn.rnn(x, R, b, s, backend="cuda_fused")
            torch.autograd.grad(y, (x, R, b, s), dy)
    step()
    return triton.testing.do_bench(step, warmup=5, rep=60)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp")
    started, results = time.time(), []
    for DH, NH in SHAPES:
        for name, config in variants(DH, NH):
            row = dict(shape=f"{DH}x{NH}", variant=name, kernel=config and config.name_expression,
                       ctas=config and config.parts, model_us_per_step=config and config.step_cycles() / 1980)
            use(config)
            try:
                if config is not None:  # a spilling variant runs, slower: worth knowing
                    compiled = compile_kernel(config.name_expression, device_arch(torch.device("cuda")))
                    row["spill_bytes"] = compiled.spill_bytes
                row["error"] = error(DH, NH)
                row["ok"] = row["error"] < 3e-2  # bf16 outputs over 48 steps: ~1e-2 against fp32
                if row["ok"]:
                    row["fwd_ms"], row["fwd_bwd_ms"] = bench(DH, NH, False), bench(DH, NH, True)
            except Exception as failure:  # a launch error, or a shape the GPU cannot run
                row["ok"], row["failure"] = False, f"{type(failure).__name__}: {failure}"[:300]
            results.append(row)
            print(row, flush=True)
    use(None)
    os.environ.pop("FUSEDRNN_SPLIT")
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, B=B, T=T, seconds=time.time() - started)
    with open(os.path.join(out, "cluster-variants.json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    print(f"\n{meta}\n| shape | variant | CTAs a head | error | fwd ms | fwd+bwd ms | model us/step |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        fwd, both = (f"{r[k]:.3f}" if k in r else "-" for k in ("fwd_ms", "fwd_bwd_ms"))
        err = f"{r['error']:.2e}" if "error" in r else r.get("failure", "-")
        model = f"{r['model_us_per_step']:.2f}" if r["model_us_per_step"] else "-"
        print(f"| {r['shape']} | {r['variant']} | {r['ctas'] or '-'} | {err}{'' if r['ok'] else ' WRONG'} "
              f"| {fwd} | {both} | {model} |")


if __name__ == "__main__":
    main()
