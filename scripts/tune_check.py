"""Check the tuner on the GPU: for three call shapes, time every feasible
configuration of the forward and the backward kernel, and compare the tuner's
pick (the fastest of the cost model's top_k distinct candidates, as
`fusedrnn.tune.tune` times them) and today's heuristic (choose_config /
choose_split) with the best found. Each configuration's outputs are first
compared with the heuristic's (a configuration that computes something else
must not win). Prints a table, writes tune-check.json to the folder given
(default $OUT or /tmp). Usage: python scripts/tune_check.py [folder]

About a minute of GPU time: ~75 kernels compiled in parallel, each timed for
~50 ms. Split heads are timed on the cooperative grid (the thread-block
cluster forward of split.py is outside the tuner's space)."""
import json
import math
import os
import sys

import torch

import fusedrnn
from fusedrnn.backends.cuda import fused, split
from fusedrnn.cells import get_cell
from fusedrnn.tune import device_limits, tune
from fusedrnn.tune.command import describe
from fusedrnn.tune.search import distinct
from fusedrnn.tune.timing import GpuTimer, forced

CELL, DTYPE, B, TOP_K = "lstm", torch.bfloat16, 16, 3
SHAPES = [(64, 12), (128, 6), (768, 1)]
CHECK_STEPS = 64
TOLERANCE = 2e-2  # relative L2 difference from the heuristic's outputs (bf16 rounding of h, other sum orders)


def outputs(config, DH, NH, backward):
    """y (forward), or the gradients of x, R and b (backward), with `config` forced."""
    spec = get_cell(CELL)
    generator = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", dtype=DTYPE)
    x = torch.randn(B, CHECK_STEPS, spec.gates_x, NH, DH, generator=generator, **kw)
    R = torch.randn(spec.gates_r, NH, DH, DH, generator=generator, **kw) / math.sqrt(DH)
    b = torch.randn(spec.gates_b, NH, DH, generator=generator, **kw) * 0.1
    dy = torch.randn(B, CHECK_STEPS, NH, DH, generator=generator, **kw)
    with forced(config):
        if not backward:
            with torch.no_grad():
                return [fusedrnn.rnn(x, R, b, cell=CELL, backend="cuda_fused")[0].float()]
        leaves = [t.requires_grad_() for t in (x, R, b)]
        y, _ = fusedrnn.rnn(*leaves, cell=CELL, backend="cuda_fused")
        return [g.float() for g in torch.autograd.grad(y, leaves, dy)]


def agrees(config, reference, DH, NH) -> bool:
    got = outputs(config, DH, NH, config.backward)
    return all(torch.isfinite(g).all() and (g - r).norm() <= TOLERANCE * r.norm() for g, r in zip(got, reference))


def heuristic(DH, NH, backward, sm_count):
    if fused.fits_one_sm(CELL, DTYPE, DH, B):
        return fused.choose_config(CELL, DTYPE, DH, B, backward, NH, sm_count)
    return split.choose_split(CELL, DTYPE, DH, B, NH, sm_count, backward)


class CheckedTimer(GpuTimer):
    """The GPU timer, refusing configurations whose outputs differ from the heuristic's."""

    def __init__(self, sm_count):
        super().__init__()
        self.sm_count, self.references, self.wrong = sm_count, {}, []

    def __call__(self, config, call):
        if self.spills.get(config.name_expression, 0):
            return math.inf
        key = (call.DH, call.NH, config.backward)
        if key not in self.references:
            shipped = heuristic(call.DH, call.NH, config.backward, self.sm_count)
            self.references[key] = outputs(shipped, call.DH, call.NH, config.backward)
        if not agrees(config, self.references[key], call.DH, call.NH):
            self.wrong.append(config.name_expression)
            return math.inf
        return super().__call__(config, call)


def compare(ranking, DH, NH, sm_count) -> dict:
    """The tuner's pick and the heuristic's choice against the best of an exhaustive timing."""
    timed = {c.config: c.measured_ms for c in ranking.candidates}
    best = ranking.best
    picked = min(distinct(ranking.candidates)[:TOP_K], key=lambda c: c.measured_ms)
    shipped = heuristic(DH, NH, ranking.backward, sm_count)
    return dict(
        shape=f"{DH}x{NH}", kernel="backward" if ranking.backward else "forward",
        pass_timed="fwd+bwd" if ranking.backward else "fwd", feasible=len(ranking.candidates),
        pick=describe(picked.config), pick_ms=picked.measured_ms, pick_model_ms=picked.estimated_ms,
        best=describe(best.config), best_ms=best.measured_ms, ratio=picked.measured_ms / best.measured_ms,
        within_5_percent=picked.measured_ms <= 1.05 * best.measured_ms,
        heuristic=describe(shipped), heuristic_ms=timed.get(shipped),
        all=[dict(config=describe(c.config), name=c.config.name_expression, model_ms=c.estimated_ms,
                  ms=c.measured_ms) for c in ranking.candidates])


def print_table(rows, device) -> None:
    print(f"{device}: {CELL} {DTYPE}, B={B}, T=1024; ms, median of triton.testing.do_bench")
    print("| shape | kernel (timed pass) | feasible | tuner's pick | ms | best of all | ms | ratio | within 5% "
          "| heuristic ms |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        heuristic_ms = "—" if r["heuristic_ms"] is None else f"{r['heuristic_ms']:.3f}"
        print(f"| {r['shape']} | {r['kernel']} ({r['pass_timed']}) | {r['feasible']} | {r['pick']} "
              f"| {r['pick_ms']:.3f} | {r['best']} | {r['best_ms']:.3f} | {r['ratio']:.3f} "
              f"| {'yes' if r['within_5_percent'] else 'NO'} | {heuristic_ms} |")


def main():
    limits = device_limits()
    timer = CheckedTimer(limits.sm_count)
    rows = []
    for DH, NH in SHAPES:
        result = tune(CELL, DTYPE, DH, NH, B, exhaustive=True, limits=limits, timer=timer, use_cache=False)
        rows += [compare(ranking, DH, NH, limits.sm_count) for ranking in (result.forward, result.backward)]
    print_table(rows, limits.name)
    if timer.wrong:
        print("outputs differ from the heuristic's (not timed):", *timer.wrong, sep="\n  ")
    folder = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp")
    with open(os.path.join(folder, "tune-check.json"), "w") as file:
        json.dump(dict(device=limits.name, cell=CELL, dtype=str(DTYPE), B=B, top_k=TOP_K, rows=rows,
                       wrong_outputs=timer.wrong, spills=[n for n, s in timer.spills.items() if s]), file, indent=1)


if __name__ == "__main__":  # the compile pool spawns processes that import this file
    main()
