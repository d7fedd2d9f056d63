"""Where, inside one step of the cluster forward, does each warp spend its cycles?
The Timeline probe (csrc/cluster_probes.cu, ClusterConfig.probe='Timeline') has
lane 0 of every warp of the first cluster stamp the SM clock at eight points of
each step into the saved-states buffer. LSTM bf16, B=16, T=1024, each DHxNH given
(default 768x1 256x3): the cluster plan (plan.plan narrowed with
strategy='cluster') and forms of it: the owners' cells; the spread cells running
fewer sequences a cluster (SEQUENCES), built for the whole batch tile or for just
those; an mbarrier a sender; more of R's tiles in registers. Each form runs on
explicit plans through the launchers (fused/launchers.py): its y and final states
are compared with the owners' form's (bitwise: padding columns change no other
column, the K slices add in the same order), its forward is timed without the
probe (triton.testing.do_bench median, as `fusedrnn bench`), then run with the
probe, wrapped as Plan('forward', replace(config, probe='Timeline'), 'probe').
Prints, per form, the median cycles between consecutive points of a step (over
steps and CTAs) for each warp, and one step as it ran; the raw stamps go to
--out (default $OUT, else /tmp) as cluster-timeline.pt. What a step costs with a
part of it left out is tools/cluster_variants.py.

  python tools/cluster_timeline.py [DHxNH ...] [--out DIR]
"""
import argparse
import dataclasses
import math
import os

import torch
import triton.testing

from fusedrnn.backends.cuda.fused import launchers
from fusedrnn.backends.cuda.fused.cluster import PER_SOURCE, SPREAD_CELLS
from fusedrnn.backends.cuda.fused.plan import Plan, plan
from fusedrnn.backends.cuda.runtime.device import device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from fusedrnn.testing import random_problem

CELL, DTYPE, B, T = "lstm", torch.bfloat16, 16, 1024
SEQUENCES = (3,)
POINTS = ["top", "product", "k slices", "cell", "syncthreads", "push", "y stores", "wait"]


def inputs(DH, NH):
    torch.manual_seed(0)
    return random_problem(CELL, B, T, NH, DH, dtype=DTYPE, device="cuda")


def forward(config, DH, NH, need_saved=False):
    x, R, b, states = inputs(DH, NH)
    return lambda: launchers.forward(Plan("forward", config, "form"), x, R, b, states, None, CELL, need_saved)


def forms(DH, NH, limits):
    """{name: forward config} of one shape, and the owners' form (the reference of y)."""
    problem = Problem(get_cell(CELL), B, T, NH, DH, DTYPE, torch.device("cuda"), False, False)
    chosen = plan(problem, limits, "forward", strategy="cluster").config  # sequences picked for B, NH
    owners = dataclasses.replace(chosen, options=chosen.options & ~SPREAD_CELLS, elements=0, sequences=0)
    found = {}

    def add(name, config):  # a form the same as an earlier one (the plan's own sequences) runs once
        if config not in found.values():
            found[name] = config
    add("plan", chosen)
    add("owners' cells", owners)
    if chosen.options & SPREAD_CELLS:
        roomy = dataclasses.replace(chosen, elements=0)  # built for the whole batch tile
        for s in (roomy.batch_tile,) + SEQUENCES:
            if s <= roomy.batch_tile:
                add(f"spread cells, {s} sequences, built for {roomy.batch_tile}",
                    dataclasses.replace(roomy, sequences=s))
        for s in SEQUENCES:
            add(f"spread cells, {s} sequences, built for them",
                dataclasses.replace(chosen, sequences=s, elements=math.ceil(chosen.ROWS * s / chosen.threads)))
    k_tiles = chosen.DHP // 16 // chosen.KSPLIT  # a warp's
    if not chosen.options & PER_SOURCE and k_tiles % (chosen.ROWS // 16) == 0:
        add("plan, an mbarrier a sender", dataclasses.replace(chosen, options=chosen.options | PER_SOURCE))
    for extra in (1, 2):  # more tiles of R in registers (the spread cells free some)
        more = dataclasses.replace(chosen, reg_tiles=chosen.reg_tiles + extra)
        if more.reg_tiles <= k_tiles and more.shared_memory <= limits.shared_memory_per_block:
            add(f"plan, {more.reg_tiles} register tiles", more)
    return found, owners


def timeline(config, DH, NH):
    """The stamps [T, CTAs, warps, 8] of the last of three runs of the probe, in cycles."""
    run = forward(dataclasses.replace(config, probe="Timeline"), DH, NH, need_saved=True)
    for _ in range(3):
        _, _, saved = run()
    torch.cuda.synchronize()
    count = T * config.parts * config.warps * 8
    if saved.numel() < count:
        raise ValueError(f"{config.name_expression}: {count} stamps, the saved states hold {saved.numel()}")
    return saved.flatten()[:count].view(T, config.parts, config.warps, 8).double().cpu()


def summary(stamps):
    """Median cycles from each point to the next (the last: to the next step's top), per warp."""
    steady = stamps[16:-16]
    following = stamps[17:-15, :, :, :1]
    gaps = torch.cat([steady[..., 1:] - steady[..., :-1], following - steady[..., -1:]], dim=-1)
    per_warp = gaps.flatten(0, 1).median(dim=0).values  # [warps, 8]
    step = (stamps[17:-15, :, 0, 0] - stamps[16:-16, :, 0, 0]).flatten()
    return per_warp, step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", default=["768x1", "256x3"], metavar="DHxNH")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    args = parser.parse_args()
    limits = device_limits()
    results, lines = {}, []
    table = ["| shape | form | y as the owners' | fwd ms | µs/step | probe cycles/step |", "|---|---|---|---|---|---|"]
    for DH, NH in (map(int, s.split("x")) for s in args.shapes):
        found, owners = forms(DH, NH, limits)
        y_owners, final_owners, _ = forward(owners, DH, NH)()
        for name, form in found.items():
            run = forward(form, DH, NH)
            y, final, _ = run()
            ms = triton.testing.do_bench(run, warmup=25, rep=100, return_mode="median")
            same = torch.equal(y, y_owners) and torch.equal(final, final_owners)
            if not same:
                differ = max((y - y_owners).abs().max().item(), (final - final_owners).abs().max().item())
                same = f"no: {differ:.2e}"
            stamps = timeline(form, DH, NH)
            per_warp, step = summary(stamps)
            results[f"{DH}x{NH} {name}"] = dict(config=repr(form), stamps=stamps, ms=ms, same=same)
            table.append(f"| {DH}x{NH} | {name} | {same} | {ms:.3f} | {ms * 1000 / T:.2f} | {step.median():.0f} |")
            lines.append(f"\n{DH}x{NH}, {name}: {form.name_expression}\nstep: median {step.median():.0f} cycles, "
                         f"p10 {step.quantile(0.1):.0f}, p90 {step.quantile(0.9):.0f}")
            lines.append("| warp | " + " | ".join(f"{a} -> {b}" for a, b in zip(POINTS, POINTS[1:] + ["top"])) + " |")
            lines.append("|---" * 9 + "|")
            for w in range(per_warp.shape[0]):
                lines.append(f"| {w} | " + " | ".join(f"{v:.0f}" for v in per_warp[w].tolist()) + " |")
            for rank in (0, form.parts - 1):  # one step as it ran: every warp's stamps from warp 0's top
                lines.append(f"step {T // 2}, CTA {rank}, cycles from warp 0's top:")
                one = stamps[T // 2, rank]
                for w in range(one.shape[0]):
                    lines.append(f"  warp {w}: " + " ".join(f"{v:6.0f}" for v in (one[w] - one[0, 0]).tolist()))
    torch.save(results, os.path.join(args.out, "cluster-timeline.pt"))
    print(torch.cuda.get_device_name(0))
    print("\n".join(lines + [""] + table))


if __name__ == "__main__":
    main()
