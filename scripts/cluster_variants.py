"""Heads split over CTAs: the thread-block cluster forward (csrc/cluster_forward.cuh)
against the cooperative grid (csrc/split_forward.cuh) at 256x3 and 768x1, LSTM
bf16, B=16, T=1024, forward and forward+backward (the backward is the grid's
either way). Every variant is first checked against the torch backend in fp32
on a short sequence; a wrong one is reported and not timed. Variants: the grid,
the cluster shape the plan picks, and the next best shapes of its cost model.
One process, about a minute on the H100. Prints a table; writes
cluster-variants.json into the folder given (default $OUT, else /tmp).

With --probes (a separate run, under 90 s): why 768x1 is slower than its model. Forward only, at
768x1 (and 256x3 for reference): the plan, the plan with one part of the step left out (timing
probes, csrc ClusterOptions: wrong results, so not checked), the exchange of h by st.async and
mbarriers instead of the cluster barrier (checked), fewer register tiles, and the 12-warp shape;
each row also gives how many clusters the GPU runs at once (1: the two clusters of B=16 run in two
waves). The async rows come last: a hang there loses no other row.
Usage: python scripts/cluster_variants.py [OUT_DIR] [--probes]"""
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
from fusedrnn.backends.cuda.fused import SHARED_MEMORY_LIMIT
from fusedrnn.backends.cuda.launch import device_arch
from fusedrnn.backends.cuda.split import split_head_dim

B, T, T_CHECK = 16, 1024, 48
SHAPES = [(256, 3), (384, 2), (768, 1)]
EXTRA_SHAPES = 3  # cluster shapes beyond the plan's, best first by the cost model
plan = cluster.choose_cluster


def variants(DH, NH):
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    chosen = plan("lstm", torch.bfloat16, DH, B, NH, sm_count)
    found = [("grid", None), ("cluster (plan)", chosen)]
    others = sorted((c for c in cluster.cluster_configs("lstm", torch.bfloat16, split_head_dim(DH), 8, B > 8)
                     if c != chosen), key=lambda c: c.step_cycles())
    found += [(f"cluster P={c.parts} K={c.KSPLIT} NT={c.NT}", c) for c in others[:EXTRA_SHAPES]]
    # an mbarrier a sender: each warp's product starts on the slices of h that have come
    found.append(("cluster (plan), a barrier a sender", dataclasses.replace(
        chosen, options=chosen.options | cluster.PER_SOURCE)))
    if chosen.shared_tiles:  # one more K tile in registers than the plan's register model allows
        more = dataclasses.replace(chosen, reg_tiles=chosen.reg_tiles + 1)
        found.append(("cluster (plan), +1 tile in registers", more))
    return found


def probe_variants(DH, NH):
    """(name, config, timing only) for the --probes run."""
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    chosen = plan("lstm", torch.bfloat16, DH, B, NH, sm_count)
    with_options = lambda options: dataclasses.replace(chosen, options=options)  # noqa: E731
    found = [("grid", None, False), ("cluster (plan)", chosen, False)]
    if DH == 768:
        others = [c for c in cluster.cluster_configs("lstm", torch.bfloat16, split_head_dim(DH), 8, B > 8)
                  if c.parts == chosen.parts and c.KSPLIT == 2 * chosen.KSPLIT and c.NT == chosen.NT]
        found += [
            # each leaves one part of the step out: what remains is the time of the rest
            ("probe: no DSMEM push of h", with_options(cluster.NO_PUSH), True),
            ("probe: relaxed arrive (no MEMBAR.ALL.GPU)", with_options(cluster.RELAXED_ARRIVE), True),
            ("probe: no push, relaxed arrive", with_options(cluster.NO_PUSH | cluster.RELAXED_ARRIVE), True),
            ("probe: register tiles of R only", with_options(cluster.REGISTER_TILES_ONLY), True),
            ("probe: no product", with_options(cluster.NO_PRODUCT), True),
            ("probe: no y stores", with_options(cluster.NO_OUTPUT), True),
            ("probe: only barrier, cell, x", with_options(cluster.NO_PUSH | cluster.NO_PRODUCT | cluster.NO_OUTPUT),
             True),
        ]
        fewer = next(c for depth in (4, 3, 2) for c in [dataclasses.replace(
            chosen, reg_tiles=chosen.reg_tiles - 1, depth=depth)] if c.shared_memory <= SHARED_MEMORY_LIMIT)
        # correct variants: 16 registers left to the scheduler (ldmatrix ahead of the mma); twice the warps
        found.append((f"cluster (plan), reg_tiles={fewer.reg_tiles} depth={fewer.depth}", fewer, False))
        found += [(f"cluster P={c.parts} K={c.KSPLIT} NT={c.NT} reg_tiles={c.reg_tiles}", c, False) for c in others]
        found += [(f"cluster P={c.parts} K={c.KSPLIT}, async push", dataclasses.replace(c, options=cluster.ASYNC_PUSH),
                   False) for c in others]
    fitted = fit(chosen, device_arch(torch.device("cuda")))
    if fitted is not None and fitted != chosen:
        found.append((f"cluster (plan) fitted to this NVRTC: reg_tiles={fitted.reg_tiles} depth={fitted.depth}",
                      fitted, False))
    if DH == 768:  # the 12-warp shape, fitted too
        for c in others:
            fitted = fit(c, device_arch(torch.device("cuda")))
            if fitted is not None and fitted != c:
                found.append((f"cluster P={c.parts} K={c.KSPLIT} fitted: reg_tiles={fitted.reg_tiles}", fitted, False))
    return found


fit = cluster.fit_to_compiler


def use(config):
    """Run `config` as it is (not fitted to the compiler), or the grid for None."""
    os.environ["FUSEDRNN_SPLIT"] = "grid" if config is None else "cluster"
    cluster.choose_cluster = plan if config is None else (lambda *args, **kwargs: config)
    cluster.fit_to_compiler = fit if config is None else (lambda config, arch: config)


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


def precompile(configs):
    """Every variant's kernel into the disk cache, in parallel (NVRTC takes seconds a kernel)."""
    from concurrent.futures import ProcessPoolExecutor

    names = sorted({c.name_expression for c in configs if c is not None})
    arch = device_arch(torch.device("cuda"))
    with ProcessPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1) or 1) as pool:
        list(pool.map(compile_kernel, names, [arch] * len(names)))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    probes = "--probes" in sys.argv[1:]
    out = args[0] if args else os.environ.get("OUT", "/tmp")
    started, results = time.time(), []
    if probes:
        todo = [(DH, NH, name, config, timing_only) for DH, NH in SHAPES for name, config, timing_only
                in probe_variants(DH, NH)]
        todo.sort(key=lambda v: bool(v[3] and v[3].options & cluster.ASYNC_PUSH))  # the async exchange last
    else:
        todo = [(DH, NH, name, config, False) for DH, NH in SHAPES for name, config in variants(DH, NH)]
    precompile([v[3] for v in todo])
    for DH, NH, name, config, timing_only in todo:
        row = dict(shape=f"{DH}x{NH}", variant=name, kernel=config and config.name_expression,
                   ctas=config and config.parts, model_us_per_step=config and config.step_cycles() / 1980)
        use(config)
        try:
            if config is not None:  # a spilling variant runs, slower: worth knowing
                compiled = compile_kernel(config.name_expression, device_arch(torch.device("cuda")))
                row["spill_bytes"], row["registers"] = compiled.spill_bytes, compiled.registers
                row["local_memory_instructions"] = compiled.local_memory_instructions
                row["clusters_at_once"] = cluster.clusters_resident(config, 0)
            if timing_only:
                row["ok"] = True  # a probe's values are wrong by design: not checked
            else:
                row["error"] = error(DH, NH)
                row["ok"] = row["error"] < 3e-2  # bf16 outputs over 48 steps: ~1e-2 against fp32
            if row["ok"]:
                row["fwd_ms"] = bench(DH, NH, False)
                if not probes:
                    row["fwd_bwd_ms"] = bench(DH, NH, True)
        except Exception as failure:  # a launch error, or a shape the GPU cannot run
            row["ok"], row["failure"] = False, f"{type(failure).__name__}: {failure}"[:300]
        results.append(row)
        print(row, flush=True)
    use(None)
    os.environ.pop("FUSEDRNN_SPLIT")
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, B=B, T=T, seconds=time.time() - started)
    name = "cluster-probes.json" if probes else "cluster-variants.json"
    with open(os.path.join(out, name), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    from fusedrnn.backends.cuda.compile import nvrtc_version

    print(f"\n{meta}, NVRTC {nvrtc_version()}\n| shape | variant | CTAs a head | clusters at once | registers "
          "| LDL/STL | error | fwd ms | us/step | fwd+bwd ms | model us/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        fwd, both = (f"{r[k]:.3f}" if k in r else "-" for k in ("fwd_ms", "fwd_bwd_ms"))
        step = f"{r['fwd_ms'] * 1000 / T:.2f}" if "fwd_ms" in r else "-"
        err = f"{r['error']:.2e}" if "error" in r else r.get("failure", "-")
        model = f"{r['model_us_per_step']:.2f}" if r["model_us_per_step"] else "-"
        print(f"| {r['shape']} | {r['variant']} | {r['ctas'] or '-'} | {r.get('clusters_at_once', '-')} "
              f"| {r.get('registers', '-')} | {r.get('local_memory_instructions', '-')} | {err}{'' if r['ok'] else ' WRONG'} | {fwd} | {step} | {both} | {model} |")


if __name__ == "__main__":
    main()
