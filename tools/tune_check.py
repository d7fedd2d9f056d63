"""Does the tuner pick within 5% of the best plan, and does the planner's rule?
On the GPU, for LSTM bf16 at 64x12, 128x6, 256x3 and 768x1 (T=1024) and the
batch sizes given (default 16 and 64): every plan of the planner's space
(tune.space.candidates: one SM, the grid, clusters) is timed for the forward
and the backward (`tune(..., exhaustive=True)`), after its outputs are
compared with the rule's plan's on a short sequence (a plan that computes
something else must not win). Then the tuner's pick as `fusedrnn tune` makes
it (the fastest of what it times: the model's top 3 distinct candidates and its
first of each kernel form, search.to_time) and the rule's plan are compared
with the best of all. Prints a table; writes tune-check-B.json
to the folder given. Usage: python tools/tune_check.py FOLDER [B ...]"""
import json
import math
import sys

import torch

from fusedrnn.backends.cuda.fused.plan import rule_plan
from fusedrnn.backends.cuda.fused.planned import with_plans
from fusedrnn.tune import device_limits, tune
from fusedrnn.tune.command import describe
from fusedrnn.tune.search import to_time
from fusedrnn.tune.timing import GpuTimer
from fusedrnn.testing import random_problem

CELL, DTYPE, TOP_K = "lstm", torch.bfloat16, 3
SHAPES = [(64, 12), (128, 6), (256, 3), (768, 1)]
CHECK_STEPS = 64
TOLERANCE = 2e-2  # relative L2 difference from the rule's outputs (bf16 rounding of h, other sum orders)


def outputs(plans, B, DH, NH, backward):
    """y (forward), or the gradients of x, R, b (backward) of the plans on fixed inputs."""
    torch.manual_seed(0)
    x, R, b, states = random_problem(CELL, B, CHECK_STEPS, NH, DH, dtype=DTYPE, device="cuda")
    run = with_plans(*plans)
    if not backward:
        with torch.no_grad():
            return [run(x, R, b, states, cell=CELL)[0].float()]
    leaves = [t.requires_grad_() for t in (x, R, b)]
    y, _ = run(*leaves, states, cell=CELL)
    return [g.float() for g in torch.autograd.grad(y, leaves, torch.randn_like(y))]


class CheckedTimer(GpuTimer):
    """The tuner's GPU timer, refusing plans whose outputs differ from the rule's."""

    def __init__(self, limits):
        super().__init__()
        self.limits, self.references, self.wrong = limits, {}, []

    def rules(self, call, T):
        return [rule_plan(CELL, DTYPE, call.DH, call.NH, call.B, T >= 16, self.limits, d, None)
                for d in ("forward", "backward")]

    def __call__(self, plan, call):
        if self.local_memory.get(plan.name_expression, False):
            return math.inf
        backward = plan.direction == "backward"
        key = (call.B, call.DH, call.NH, backward)
        forward_rule, backward_rule = self.rules(call, CHECK_STEPS)
        if key not in self.references:
            self.references[key] = outputs((forward_rule, backward_rule), call.B, call.DH, call.NH, backward)
        plans = (forward_rule, plan) if backward else (plan, backward_rule)
        got = outputs(plans, call.B, call.DH, call.NH, backward)
        if not all(torch.isfinite(g).all() and (g - r).norm() <= TOLERANCE * r.norm()
                   for g, r in zip(got, self.references[key])):
            self.wrong.append(plan.name_expression)
            return math.inf
        return super().__call__(plan, call)


def compare(ranking, B, DH, NH, limits) -> dict:
    timed = {c.config: c.measured_ms for c in ranking.candidates}
    best = ranking.best
    picked = min(to_time(ranking.candidates, TOP_K), key=lambda c: c.measured_ms)
    direction = "backward" if ranking.backward else "forward"
    rule = rule_plan(CELL, DTYPE, DH, NH, B, True, limits, direction, None).config
    rule_ms = timed.get(rule)
    return dict(
        B=B, shape=f"{DH}x{NH}", direction=direction, candidates=len(ranking.candidates),
        pick=describe(picked.config), pick_ms=picked.measured_ms, best=describe(best.config), best_ms=best.measured_ms,
        pick_ratio=picked.measured_ms / best.measured_ms, pick_within_5_percent=picked.measured_ms <= 1.05 * best.measured_ms,
        rule=describe(rule), rule_ms=rule_ms, rule_ratio=None if rule_ms is None else rule_ms / best.measured_ms,
        all=[dict(config=describe(c.config), name=c.config.name_expression, model_ms=c.estimated_ms, ms=c.measured_ms)
             for c in ranking.candidates])


def print_table(rows, device) -> None:
    print(f"{device}: {CELL} {DTYPE}, T=1024; ms, median of triton.testing.do_bench, one kernel a direction")
    print("| B | shape | direction | plans | tuner's pick | ms | best of all | ms | pick/best | rule ms | rule/best |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rule = "—" if r["rule_ms"] is None else f"{r['rule_ms']:.3f} | {r['rule_ratio']:.3f}"
        print(f"| {r['B']} | {r['shape']} | {r['direction']} | {r['candidates']} | {r['pick']} | {r['pick_ms']:.3f} "
              f"| {r['best']} | {r['best_ms']:.3f} | {r['pick_ratio']:.3f}{'' if r['pick_within_5_percent'] else ' NO'} "
              f"| {rule} |")


def main():
    folder, batches = sys.argv[1], [int(b) for b in sys.argv[2:]] or [16, 64]
    limits = device_limits()
    timer = CheckedTimer(limits)
    for B in batches:
        rows = []
        for DH, NH in SHAPES:
            # the timer compares every plan's outputs with the rule's: no second check
            result = tune(CELL, DTYPE, DH, NH, B, exhaustive=True, limits=limits, timer=timer, use_cache=False,
                          check=lambda plan, call: "", progress=False)
            rows += [compare(ranking, B, DH, NH, limits) for ranking in (result.forward, result.backward)]
            print(f"B={B} {DH}x{NH} done", flush=True)
        print_table(rows, limits.name)
        with open(f"{folder}/tune-check-{B}.json", "w") as file:
            json.dump(dict(device=limits.name, cell=CELL, dtype=str(DTYPE), B=B, top_k=TOP_K, rows=rows,
                           wrong_outputs=timer.wrong,
                           local_memory=sorted(n for n, used in timer.local_memory.items() if used)), file, indent=1)
    if timer.wrong:
        print("outputs differ from the rule's (not timed):", *timer.wrong, sep="\n  ")


if __name__ == "__main__":  # the compile pool spawns processes that import this file
    main()
