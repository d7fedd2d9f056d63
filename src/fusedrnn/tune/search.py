"""The search: rank a call's feasible configurations by the cost model, time
the best few (or all) of each direction, keep the fastest in the cache.

The timer is injectable: `timer(plan, call) -> milliseconds` (math.inf to
reject a plan); it may also have `prepare(plans)`, called once with
everything it is about to time. Without one, the GPU timer
(tune/timing.py) runs the kernels.

So is the correctness gate that runs before the timer: `check(plan, call)
-> str`, '' when the configuration computes the right thing, else why not.
A candidate that fails is reported and never timed, so never cached. Without
one, the GPU check (tune/correctness.py) runs the kernels."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from ..backends.cuda.fused import tuned
from ..backends.cuda.fused.cluster import ClusterConfig
from ..backends.cuda.fused.cluster_backward import ClusterBackwardConfig
from ..backends.cuda.fused.cost import estimated_ms, rank
from ..backends.cuda.fused.plan import strategy_of
from ..backends.cuda.runtime.device import DeviceLimits, device_limits
from .space import candidates


@dataclass(frozen=True)
class Call:
    cell: str
    dtype: torch.dtype
    DH: int
    NH: int
    B: int
    T: int = 1024


@dataclass(frozen=True)
class Candidate:
    plan: object  # a cuda_fused Plan

    @property
    def config(self):
        return self.plan.config

    estimated_ms: float
    measured_ms: float | None = None  # None: not timed; inf: rejected by the timer
    failed_check: str | None = None  # why it failed the correctness check (then it is not timed)


@dataclass(frozen=True)
class Ranking:
    """One direction's feasible configurations, fastest first by the model."""
    backward: bool
    candidates: tuple[Candidate, ...]

    @property
    def timed(self) -> list[Candidate]:
        return sorted((c for c in self.candidates if c.measured_ms is not None), key=lambda c: c.measured_ms)

    @property
    def failed(self) -> list[Candidate]:
        return [c for c in self.candidates if c.failed_check is not None]

    @property
    def best(self) -> Candidate:
        return self.timed[0]


@dataclass(frozen=True)
class TuneResult:
    call: Call
    device: str
    forward: Ranking
    backward: Ranking


def model_ranking(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, backward: bool,
                  limits: DeviceLimits, T: int = 1024) -> Ranking:
    """Every plan of one direction the planner may run, by the cost model alone."""
    plans = {plan.config: plan for plan in candidates(cell, dtype, DH, NH, B, backward, limits)}
    if not plans:
        raise ValueError(f"no cuda_fused configuration runs cell={cell!r} dtype={dtype} DH={DH} on "
                         f"{limits.name} (backward={backward})")
    ranked = rank(plans, NH, B, limits)
    return Ranking(backward, tuple(Candidate(plans[c], estimated_ms(c, NH, B, limits, T)) for c in ranked))


def distinct(candidates) -> list[Candidate]:
    """The candidates the model tells apart: of those with the same estimate
    (say, rings of different depth that all hide the memory latency) only the
    first, so that timing spends its budget on different predictions."""
    kept = []
    for candidate in candidates:
        if all(abs(candidate.estimated_ms - k.estimated_ms) > 1e-3 * k.estimated_ms for k in kept):
            kept.append(candidate)
    return kept


def form(config) -> tuple:
    """A kernel's form: its family, and for a cluster its size, K split and exchange form."""
    strategy = strategy_of(config)
    if isinstance(config, ClusterConfig):
        return strategy, "forward", config.parts, config.KSPLIT, config.options
    if isinstance(config, ClusterBackwardConfig):
        return strategy, "backward", config.parts
    return (strategy,)


def to_time(ranked, top_k: int) -> list[Candidate]:
    """The candidates a tuning times: the model's `top_k` distinct ones, and its first of each
    form. The model orders the shapes of one form well but not always the forms: at B=64 it
    put the fastest cluster forward of 128x6 and 256x3 (H200, 2026-12-07) 11th and 21st, as it
    counts clusters that share SMs as waves; timing each form's best caught every best within 5%
    (docs/perf-notes.md)."""
    chosen, forms = distinct(ranked)[:top_k], set()
    for candidate in ranked:
        if form(candidate.config) not in forms:
            forms.add(form(candidate.config))
            if candidate not in chosen:
                chosen.append(candidate)
    return chosen


def tune(cell: str, dtype: torch.dtype, DH: int, NH: int, B: int, device=None, *, top_k: int = 3,
         exhaustive: bool = False, T: int = 1024, limits: DeviceLimits | None = None, timer=None,
         check=None, use_cache: bool = True, progress: bool = True) -> TuneResult:
    """Tune the `cuda_fused` kernels for one call shape: for the forward and the
    backward, check and time the `top_k` plans the cost model ranks fastest and
    its best of each kernel form (to_time; every plan of the planner's space
    with `exhaustive`) and cache the fastest that passed the check, which the
    planner runs from then on."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: expected a positive int, got {top_k!r}")
    if limits is None:
        limits = device_limits(None if device is None else torch.device(device).index)
    call = Call(cell, dtype, DH, NH, B, T)
    models = [model_ranking(cell, dtype, DH, NH, B, backward, limits, T) for backward in (False, True)]
    chosen = [m.candidates if exhaustive else to_time(m.candidates, top_k) for m in models]
    if timer is None:
        from .timing import GpuTimer

        timer = GpuTimer(device)
    if check is None:
        from .correctness import GpuCheck

        check = GpuCheck(device)
    if hasattr(timer, "prepare"):
        timer.prepare([c.plan for picked in chosen for c in picked])
    rankings = []
    with tqdm(total=sum(map(len, chosen)), desc=f"tune {cell} {str(dtype)[6:]} {DH}x{NH} B={B}",
              disable=not progress) as bar:
        for model, timed in zip(models, chosen):
            ranking = check_and_time(model, timed, call, check, timer, bar if progress else None)
            if use_cache:
                key = tuned.cache_key(limits.name, cell, dtype, DH, NH, B, model.backward)
                tuned.store(key, ranking.best.config, ranking.best.measured_ms)
            rankings.append(ranking)
    return TuneResult(call, limits.name, *rankings)


def check_and_time(model: Ranking, chosen: list[Candidate], call: Call, check, timer, bar=None) -> Ranking:
    """The model's ranking with the chosen candidates checked, and those that pass
    timed; a failure is written to the progress `bar` (if any) as it happens."""
    measured, failures = {}, {}
    for candidate in chosen:
        failure = check(candidate.plan, call)
        if failure:
            failures[candidate.config] = failure
            if bar is not None:
                bar.write(f"failed the correctness check, not timed: {candidate.config.name_expression}: {failure}")
        else:
            measured[candidate.config] = float(timer(candidate.plan, call))
        if bar is not None:
            bar.update()
    ranking = Ranking(model.backward, tuple(
        replace(c, measured_ms=measured.get(c.config), failed_check=failures.get(c.config))
        for c in model.candidates))
    if not ranking.timed or not math.isfinite(ranking.best.measured_ms):
        why = "".join(f"\n  {config.name_expression}: {failure}" for config, failure in failures.items())
        raise RuntimeError(f"every candidate was rejected for {call} (backward={model.backward}): "
                           f"{len(failures)} by the correctness check, {len(ranking.timed)} by the timer{why}")
    return ranking
