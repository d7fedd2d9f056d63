"""Where a step of the cluster forward goes, from inside the kernel: the timeline probe
(csrc ClusterOptions::TIMELINE) has lane 0 of every warp stamp the SM clock at eight points
of each step. LSTM bf16, B=16, T=1024, each DHxNH given (default 768x1 256x3): the plan, and
the owners' cells, and the spread cells with several sequences a cluster (SEQUENCES), built
for the batch tile or for just those. Each variant's y is first compared with the owners'
(bitwise: padding columns change no other column, the K slices add in the same order) and its forward timed without
the probe. Prints, per variant, the median cycles between consecutive points of a step (over
steps and CTAs) for each warp, and one step as it ran; the raw stamps go to $OUT (or the folder
given) as cluster-timeline.pt.
Usage: python scripts/cluster_timeline.py [OUT_DIR] [DHxNH ...]"""
import dataclasses
import math
import os
import sys

import torch
import triton.testing

from fusedrnn.backends.cuda import cluster
from fusedrnn.backends.cuda.fused import SHARED_MEMORY_LIMIT
from fusedrnn.backends.cuda.launch import device_arch

B, T = 16, 1024
SEQUENCES = (3,)
POINTS = ["top", "product", "k slices", "cell", "syncthreads", "push", "y stores", "wait"]


def inputs(DH, NH):
    torch.manual_seed(0)
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, 4, NH, DH, **kw)
    R = torch.randn(4, NH, DH, DH, **kw) / DH**0.5
    b = torch.randn(4, NH, DH, **kw)
    states = torch.randn(2, B, NH, DH, **kw)
    return x, R, b, states


def run(config, DH, NH):
    """y, final states and the forward's median ms (no probe)."""
    x, R, b, states = inputs(DH, NH)
    y, final, _ = cluster.cluster_forward(config, x, R, b, states, None, False)
    ms = triton.testing.do_bench(lambda: cluster.cluster_forward(config, x, R, b, states, None, False),
                                 warmup=50, rep=300, return_mode="median")
    return y, final, ms


def timeline(config, DH, NH):
    x, R, b, states = inputs(DH, NH)
    for _ in range(3):  # the last run's stamps are kept
        _, _, saved = cluster.cluster_forward(config, x, R, b, states, None, True)
    torch.cuda.synchronize()
    stamps = saved.flatten()[:T * config.parts * config.warps * 8].view(T, config.parts, config.warps, 8)
    return stamps.double().cpu()


def summary(stamps):
    """Median cycles from each point to the next (the last: to the next step's top), per warp."""
    steady = stamps[16:-16]
    following = stamps[17:-15, :, :, :1]
    gaps = torch.cat([steady[..., 1:] - steady[..., :-1], following - steady[..., -1:]], dim=-1)
    per_warp = gaps.flatten(0, 1).median(dim=0).values  # [warps, 8]
    step = (stamps[17:-15, :, 0, 0] - stamps[16:-16, :, 0, 0]).flatten()
    return per_warp, step


def main():
    args = [a for a in sys.argv[1:] if "x" in a and a[0].isdigit()]
    folders = [a for a in sys.argv[1:] if a not in args]
    out = folders[0] if folders else os.environ.get("OUT", "/tmp")
    shapes = [tuple(map(int, a.split("x"))) for a in args] or [(768, 1), (256, 3)]
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    arch = device_arch(torch.device("cuda"))
    results, lines = {}, []
    table = ["| shape | variant | y as the plan's | fwd ms | us/step | probe cycles/step |", "|---|---|---|---|---|---|"]
    for DH, NH in shapes:
        plan = cluster.fit_to_compiler(cluster.choose_cluster("lstm", torch.bfloat16, DH, B, NH, sm_count), arch)
        launched = plan.with_sequences(B, NH, cluster.clusters_at_once(plan, 0, sm_count))
        owners = dataclasses.replace(plan, options=plan.options & ~cluster.SPREAD_CELLS, elements=0, sequences=0)
        roomy = dataclasses.replace(plan, elements=0)  # built for the whole batch tile
        forms = {"plan, as launched": launched, "owners' cells": owners}
        forms |= {f"spread cells, {s} sequences, built for {roomy.batch_tile}": dataclasses.replace(roomy, sequences=s)
                  for s in (roomy.batch_tile,) + SEQUENCES if s <= roomy.batch_tile}
        forms |= {f"spread cells, {s} sequences, built for them": dataclasses.replace(
            plan, sequences=s, elements=math.ceil(plan.ROWS * s / plan.threads)) for s in SEQUENCES}
        forms["plan, an mbarrier a sender"] = dataclasses.replace(launched, options=launched.options | cluster.PER_SOURCE)
        for extra in (1, 2):  # the registers the spread cells free, for more tiles of R
            more = dataclasses.replace(launched, reg_tiles=launched.reg_tiles + extra)
            if more.reg_tiles <= more.DHP // 16 // more.KSPLIT and more.shared_memory <= SHARED_MEMORY_LIMIT:
                forms[f"plan, {more.reg_tiles} register tiles"] = more
        y_plan, final_plan, _ = run(owners, DH, NH)
        for name, form in forms.items():
            y, final, ms = run(form, DH, NH)
            same = torch.equal(y, y_plan) and torch.equal(final, final_plan)
            if not same:
                same = f"no: {max((y - y_plan).abs().max().item(), (final - final_plan).abs().max().item()):.2e}"
            config = dataclasses.replace(form, options=form.options | cluster.TIMELINE)
            stamps = timeline(config, DH, NH)
            per_warp, step = summary(stamps)
            results[f"{DH}x{NH} {name}"] = dict(config=repr(config), stamps=stamps, ms=ms, same=same)
            table.append(f"| {DH}x{NH} | {name} | {same} | {ms:.3f} | {ms * 1000 / T:.2f} | {step.median():.0f} |")
            lines.append(f"\n{DH}x{NH}, {name}: {config.name_expression}\nstep: median {step.median():.0f} cycles, "
                         f"p10 {step.quantile(0.1):.0f}, p90 {step.quantile(0.9):.0f}")
            lines.append("| warp | " + " | ".join(f"{a} -> {b}" for a, b in zip(POINTS, POINTS[1:] + ["top"])) + " |")
            lines.append("|---" * 9 + "|")
            for w in range(per_warp.shape[0]):
                lines.append(f"| {w} | " + " | ".join(f"{v:.0f}" for v in per_warp[w].tolist()) + " |")
            for rank in (0, config.parts - 1):  # one step as it ran: every warp's stamps from warp 0's top
                lines.append(f"step {T // 2}, CTA {rank}, cycles from warp 0's top:")
                one = stamps[T // 2, rank]
                for w in range(one.shape[0]):
                    lines.append(f"  warp {w}: " + " ".join(f"{v:6.0f}" for v in (one[w] - one[0, 0]).tolist()))
    torch.save(results, os.path.join(out, "cluster-timeline.pt"))
    print(torch.cuda.get_device_name(0))
    print("\n".join(lines + [""] + table))


if __name__ == "__main__":
    main()
