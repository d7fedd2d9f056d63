"""The tuner on a CPU: the constraint model over recorded device limits (H100,
A100, RTX 4090), the tuner's space against the planner's (every plan the rules
pick is a candidate, every candidate a plan the planner runs), the cost model
against the H100 measurements on record, the search with a fake timer and
correctness check, the on-disk cache and the `fusedrnn tune` command."""
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("constraint")

from fusedrnn.backends.cuda.fused import tuned  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster import choose_cluster  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster_backward import ClusterBackwardConfig, choose_cluster_backward  # noqa: E402
from fusedrnn.backends.cuda.fused.cost import estimated_ms, rank  # noqa: E402
from fusedrnn.backends.cuda.fused.grid import SplitConfig  # noqa: E402
from fusedrnn.backends.cuda.fused.one_sm import FusedConfig, fits_one_sm  # noqa: E402
from fusedrnn.backends.cuda.fused.plan import Plan, admissible, plan  # noqa: E402
from fusedrnn.backends.cuda.fused.registers import registers_needed  # noqa: E402
from fusedrnn.backends.cuda.runtime import compile as nvrtc_compile  # noqa: E402
from fusedrnn.cli import main  # noqa: E402
from fusedrnn.tune import A100_SXM, H100_SXM, RTX_4090, largest_head_dims, preset, tune  # noqa: E402
from fusedrnn.tune.search import distinct, form, model_ranking, to_time  # noqa: E402
from fusedrnn.tune.space import batch_bucket, candidates, feasible_configs, fused_space  # noqa: E402
from tune_fakes import FakeCheck, FakeTimer, problem, shared_cubins, use_cache_dir  # noqa: E402, F401

BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32
RECORD = Path(__file__).parent / "data"  # the H100 measurements of 2026-11-25 the model was fitted to
DIRECTIONS = ("forward", "backward")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch, shared_cubins):  # noqa: F811
    return use_cache_dir(tmp_path, monkeypatch, shared_cubins)


# The tuner's space is the planner's: the rules' plan for a call (what runs untuned) is one of
# the candidates the tuner times, for every cell, dtype, head shape and batch; and so is the
# rules' pick within each kernel family (`strategy`).

SPACE_SHAPES = [(64, 12, 16), (128, 6, 16), (256, 3, 16), (768, 1, 16), (64, 12, 64), (32, 24, 5)]
# The rules fit a cluster plan to the NVRTC in use by compiling it (about a second each, on a
# CPU): clusters are planned for every shape of LSTM bf16 and for two calls beside it.
CLUSTERS_FOR = {("lstm", BF16)}
MORE_CLUSTERS = [("gru", FP16, 64, 12, 16), ("elman", FP32, 256, 3, 16)]


def rules_plan_a_cluster(cell, dtype, DH, NH, B, direction):
    """Whether the rules would consider a cluster for the call (and so compile one): a cost
    filter of this test, not a statement of the rules."""
    if direction == "backward":
        return choose_cluster_backward(cell, dtype, DH, B, NH, H100_SXM) is not None
    bucket = 1 << (B - 1).bit_length()
    return not fits_one_sm(cell, dtype, DH, B, H100_SXM) and choose_cluster(cell, dtype, DH, bucket, NH,
                                                                             H100_SXM) is not None


def _space_cases():
    for cell in ("lstm", "gru", "elman"):
        for dtype in (BF16, FP16, FP32):
            for DH, NH, B in SPACE_SHAPES:
                for direction in DIRECTIONS:
                    clusters = (cell, dtype) in CLUSTERS_FOR or (cell, dtype, DH, NH, B) in MORE_CLUSTERS
                    if clusters or not rules_plan_a_cluster(cell, dtype, DH, NH, B, direction):
                        yield pytest.param(cell, dtype, DH, NH, B, direction, clusters,
                                           id=f"{cell}-{str(dtype)[6:]}-{DH}x{NH}-B{B}-{direction}")


@pytest.mark.parametrize("cell,dtype,DH,NH,B,direction,clusters", list(_space_cases()))
def test_the_tuners_space_is_the_planners(cache_dir, cell, dtype, DH, NH, B, direction, clusters):
    space = candidates(cell, dtype, DH, NH, B, direction == "backward", H100_SXM)
    assert all(p.direction == direction for p in space)
    for T in (1024, 8):  # long and short sequences (the rules run short ones on the grid, not a cluster)
        call = problem(DH, NH, B, cell, dtype, T)
        try:
            chosen = plan(call, H100_SXM, direction)
        except ValueError:  # no plan runs the call (fp32 LSTM at 768): then no candidate either
            assert space == []
            continue
        assert chosen.why.startswith("rule") and chosen in space, chosen
        if T == 1024:  # as a tuned winner, it would run as it was timed (a cluster only from 16 steps)
            assert admissible(chosen.config, call, H100_SXM, direction) == chosen.config
    for strategy in ("one_sm", "grid", "cluster") if clusters else ("one_sm", "grid"):
        try:
            narrowed = plan(problem(DH, NH, B, cell, dtype), H100_SXM, direction, strategy=strategy)
        except ValueError:
            continue
        assert narrowed.strategy == strategy and narrowed in space, narrowed
    if any(p.strategy == "one_sm" for p in space):  # the rules' one-SM pick exists exactly where the space has one
        assert plan(problem(DH, NH, B, cell, dtype), H100_SXM, direction, strategy="one_sm").strategy == "one_sm"
    else:
        with pytest.raises(ValueError, match="strategy='one_sm'"):
            plan(problem(DH, NH, B, cell, dtype), H100_SXM, direction, strategy="one_sm")


@pytest.mark.parametrize("DH,NH,B", SPACE_SHAPES + [(48, 16, 3), (61, 4, 40), (384, 2, 16), (1024, 1, 8)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "slstm"])
def test_every_candidate_is_a_plan_the_planner_runs(cell, DH, NH, B):
    """A winner is any candidate: each passes the planner's admission for its call unchanged
    (a cluster's sequences included), and is its own kernel."""
    for dtype in (BF16, FP16, FP32):
        for direction in DIRECTIONS:
            space = candidates(cell, dtype, DH, NH, B, direction == "backward", H100_SXM)
            call = problem(DH, NH, B, cell, dtype)
            assert [p for p in space if admissible(p.config, call, H100_SXM, direction) != p.config] == []
            assert len({p.config.name_expression for p in space}) == len(space)


def _points(limits):
    for cell in ("lstm", "gru", "elman", "slstm"):
        for dtype in (torch.float32, torch.float16, BF16):
            for DH in (16, 48, 61, 96, 128, 160, 256, 384, 768, 1100, 2048):
                for B, NH in ((3, 1), (16, 12), (256, 4)):
                    for backward in (False, True):
                        for config in feasible_configs(cell, dtype, DH, NH, B, backward, limits):
                            yield config, NH, B


def test_every_point_fits_the_h100():
    count = 0
    for config, NH, B in _points(H100_SXM):
        count += 1
        shared = config.shared_memory + getattr(config, "static_shared_memory", 0)
        assert config.batch_tile <= batch_bucket(B) and config.threads <= 1024, config
        assert shared <= H100_SXM.shared_memory_per_block, config
        if isinstance(config, FusedConfig):
            assert config.fits(H100_SXM), config
            assert registers_needed(config) <= H100_SXM.register_cap(config.threads)
        elif isinstance(config, SplitConfig):
            assert config.fits(NH, B, H100_SXM), config
            assert config.parts * NH * math.ceil(batch_bucket(B) / config.batch_tile) <= H100_SXM.sm_count
            assert (config.DHP // 16) % config.KSPLIT == 0
            assert registers_needed(config) <= H100_SXM.register_cap(config.threads)
        else:  # a cluster: at most 16 CTAs, every one on its own SM
            assert 2 <= config.parts <= H100_SXM.max_cluster_size_non_portable and config.DHP % config.ROWS == 0
            if not isinstance(config, ClusterBackwardConfig):
                assert 1 <= config.cluster_sequences <= config.most_sequences, config
    assert count > 1000


@pytest.mark.parametrize("limits", [A100_SXM, RTX_4090], ids=["a100", "rtx4090"])
def test_every_point_fits_smaller_gpus(limits):
    for config, NH, B in _points(limits):
        shared = config.shared_memory + getattr(config, "static_shared_memory", 0)
        assert shared <= limits.shared_memory_per_block and config.threads <= limits.max_threads_per_block


def test_single_sm_head_dims_match_the_kernels_today():
    # docs/perf-notes.md: the largest head dim one SM holds, forward and backward, on the H100
    rows = {(r.cell, r.dtype): r for r in largest_head_dims(H100_SXM)}
    expected = {"lstm": (128, 96), "slstm": (128, 80), "gru": (160, 112), "elman": (256, 192)}
    for cell, (half, single) in expected.items():
        assert rows[cell, BF16].one_sm == rows[cell, torch.float16].one_sm == half
        assert rows[cell, torch.float32].one_sm == single
    assert rows["lstm", BF16].split_training >= 1024 and rows["elman", BF16].split_forward == 2048


def test_smaller_gpus_run_smaller_heads():
    h100 = {(r.cell, r.dtype): r for r in largest_head_dims(H100_SXM)}
    for limits in (A100_SXM, RTX_4090):
        for row in largest_head_dims(limits):
            top = h100[row.cell, row.dtype]
            assert row.one_sm < top.one_sm and row.split_forward < top.split_forward
            assert row.split_training <= top.split_training
    # worked by hand from FusedConfig's byte counts, backward (the dispatch rule), depth 2, one warp of
    # 8 sequences; Elman bf16 at DHP = d: R 2d(d+8), drec 32(d+8), x ring 32(d+8), h and dy rings
    # 64(d+8), saved-state ring 64(d+4) (fp32), db sums 16d: 2d^2 + 224d + 1280 bytes.
    # RTX 4090 (99 KiB = 101376): d=160 needs 88320, d=176 needs 102656.
    rtx = {(r.cell, r.dtype): r for r in largest_head_dims(RTX_4090)}
    assert rtx["elman", BF16].one_sm == 160
    # LSTM bf16 on the A100 (163 KiB = 166912): d=112 needs 158272, d=128 over 170000
    assert {(r.cell, r.dtype): r for r in largest_head_dims(A100_SXM)}["lstm", BF16].one_sm == 112


@pytest.mark.parametrize("kwargs,compiles_clean", [
    # recorded with NVRTC for sm_90 (ptxas -v): whether the instantiation compiles without spills
    (dict(cell="lstm", DHP=64, NT=1, WN=4, r_in_registers=True), False),  # 344 bytes spilled
    (dict(cell="lstm", DHP=128, NT=2, WN=1, r_in_registers=True), False),  # 244
    (dict(cell="lstm", DHP=128, NT=2, WN=2), False),  # 356
    (dict(cell="lstm", DHP=128, NT=1, WN=4), False),  # 468
    (dict(cell="gru", DHP=128, NT=1, WN=2, r_in_registers=True), False),  # 508
    (dict(cell="slstm", DHP=128, NT=2, WN=1, r_in_registers=True), False),  # 668
    (dict(cell="lstm", DHP=128, NT=1, WN=2, backward=True), False),  # 72
    (dict(cell="lstm", DHP=96, NT=1, WN=2, backward=True), True),  # shipped: 384 threads
    (dict(cell="elman", DHP=256, NT=1, WN=2), True),  # 1024 threads, 64 registers
    (dict(cell="elman", DHP=256, NT=1, WN=1, r_in_registers=True), True),
    (dict(cell="slstm", DHP=128, NT=1, WN=1, r_in_registers=True), True),  # 233 registers
    (dict(cell="gru", DHP=128, NT=2, WN=1, r_in_registers=True), True),
])
def test_register_estimate_against_ptxas(kwargs, compiles_clean):
    config = FusedConfig(**dict(dict(dtype=BF16, backward=False, depth=4, vec=8, fast_math=True), **kwargs))
    assert (registers_needed(config) <= H100_SXM.register_cap(config.threads)) == compiles_clean


@pytest.mark.parametrize("cell,dtype,DHP,ROWS,NT,resets,compiles_clean", [
    # recorded with NVRTC 13.0 for sm_90 (ptxas -v), split forwards: registers, or spilled
    ("lstm", BF16, 768, 16, 2, False, True),  # 172
    ("lstm", BF16, 768, 16, 4, False, True),  # 249
    ("lstm", BF16, 128, 32, 4, False, True),  # 255
    ("lstm", BF16, 768, 16, 4, True, False),  # spills (the resets form)
    ("lstm", torch.float32, 128, 16, 2, False, True),  # 174
    ("lstm", torch.float32, 128, 16, 4, False, False),  # spills
    ("gru", BF16, 768, 16, 4, True, True),  # 244
    ("gru", torch.float32, 128, 32, 4, False, False),  # 255, at the edge
    ("gru", torch.float32, 256, 32, 4, False, False),  # spills
    ("elman", torch.float32, 128, 32, 4, False, True),  # 192
    ("slstm", torch.float32, 128, 32, 2, False, True),  # 212
    ("slstm", BF16, 128, 32, 4, False, False),  # spills
    ("slstm", torch.float32, 128, 16, 4, False, False),  # spills
    ("elman", torch.float32, 768, 16, 4, True, True),  # 210
])
def test_split_forward_register_estimate_against_ptxas(cell, dtype, DHP, ROWS, NT, resets, compiles_clean):
    config = SplitConfig(cell=cell, dtype=dtype, DHP=DHP, ROWS=ROWS, KSPLIT=8 if ROWS == 16 else 4, NT=NT, depth=3,
                         vec=8, fast_math=dtype == BF16, resets=resets)
    assert (registers_needed(config) <= H100_SXM.register_cap(config.threads)) == compiles_clean


def test_the_grid_runs_64_sequences_of_a_768_head_in_tiles_of_32():
    """On the H100, 96 CTAs of 16 rows and 32 sequences (one wave) where tiles of 16 would need 192; the LSTM's
    form with resets would spill there, so such a call has no grid plan (a cluster runs it on
    Hopper); the backward's buffers do not fit tiles of 32."""
    from fusedrnn.backends.cuda.fused.grid import rule_split

    config = rule_split("lstm", BF16, 768, 64, 1, False, H100_SXM)
    assert (config.ROWS, config.NT, config.parts) == (16, 4, 48) and config.fits(1, 64, H100_SXM)
    assert rule_split("lstm", BF16, 768, 64, 1, False, H100_SXM, resets=True) is None
    assert rule_split("gru", BF16, 768, 64, 1, False, H100_SXM, resets=True).NT == 4
    assert rule_split("lstm", BF16, 768, 64, 1, True, H100_SXM) is None
    assert rule_split("lstm", BF16, 768, 16, 1, False, H100_SXM).NT == 1  # the narrowest tile that fits
    assert rule_split("lstm", BF16, 768, 64, 1, False, A100_SXM) is None  # 219 KB of shared memory


@pytest.mark.parametrize("limits,cell,dtype,DH,B,backward", [
    (RTX_4090, "gru", torch.float32, 256, 16, True),  # depth 3 fills shared memory; its resets form would not fit
    (H100_SXM, "elman", torch.float32, 640, 128, False),
    (H100_SXM, "gru", BF16, 768, 64, False),
])
def test_a_grid_plan_with_resets_fits_in_the_form_that_reads_them(limits, cell, dtype, DH, B, backward):
    """The grid's ring depth and batch tile are chosen for the kernel the call runs (with_resets: the
    reset ring in shared memory, the initial states in registers), not the one without resets; the
    LSTM's resets form of tiles of 32 would spill, so at 768 x 64 it has no grid plan."""
    from fusedrnn.cells import get_cell
    from fusedrnn.problem import Problem

    def call(cell):
        return Problem(get_cell(cell), B, 1024, 1, DH, dtype, torch.device("cuda"), False, True, has_resets=True)

    direction = "backward" if backward else "forward"
    strategy = "grid" if limits.capability >= (9, 0) else None
    chosen = plan(call(cell), limits, direction, strategy=strategy)
    assert isinstance(chosen.config, SplitConfig) and chosen.config.resets, chosen
    assert chosen.config.fits(1, B, limits), chosen
    if (cell, DH) == ("gru", 768):
        with pytest.raises(ValueError, match="no plan"):
            plan(call("lstm"), limits, direction, strategy="grid")


def _recorded_h100():
    """(config, NH, measured ms of that kernel) from the 2026-11-25 H100 runs (LSTM bf16, B=16, T=1024):
    the launch variants (cuda-variants.json; the heuristic of the day: 16-wide tiles up to DH 64 forward
    and 96 backward, R in registers forward) and the split heads of the benchmark (bench-head.json).
    A backward kernel's time is fwd+bwd minus fwd minus ~0.1 ms of dR GEMM."""
    variants = {"shipped": {}, "NT2 WN1": dict(NT=2, WN=1), "NT1 WN1": dict(NT=1, WN=1), "NT2 WN2": dict(NT=2, WN=2)}
    rows = json.loads((RECORD / "h100-2026-11-25-cuda-variants.json").read_text())
    ms = {(r["shape"], r["variant"], r["passes"]): r["ms"] for r in rows}
    out = []
    for (shape, variant, passes), t in ms.items():
        if passes != "fwd":
            continue
        DH, NH = map(int, shape.split("x"))
        for backward, total in ((False, t), (True, ms[shape, variant, "fwd+bwd"] - t - 0.1)):
            WN = 1 if DH > 96 or (not backward and DH > 64) else 2
            base = FusedConfig("lstm", BF16, DH, backward, WN=WN, depth=4, vec=8, r_in_registers=not backward,
                               fast_math=True)
            config = dataclasses.replace(base, **variants[variant])
            # the script fell back when it did not fit
            out.append((config if config.fits(H100_SXM) else base, NH, total))
    bench = json.loads((RECORD / "h100-2026-11-25-cuda-bench-head.json").read_text())["rows"]
    fused_ms = {(r["DH"], r["passes"]): r["median_ms"] for r in bench if r["provider"] == "cuda_fused"}
    for DH, NH, backward_depth in ((256, 3, 4), (768, 1, 3)):
        forward, total = fused_ms[DH, "fwd"], fused_ms[DH, "fwd+bwd"]
        out.append((SplitConfig("lstm", BF16, DH, 16, 8, 2, 4, 8, True, False), NH, forward))
        out.append((SplitConfig("lstm", BF16, DH, 16, 8, 2, backward_depth, 8, True, True), NH, total - forward - 0.1))
    return out


def test_cost_model_agrees_with_the_h100_record():
    records = [r for r in _recorded_h100() if registers_needed(r[0]) <= H100_SXM.register_cap(r[0].threads)]
    errors = [abs(math.log(estimated_ms(c, NH, 16, H100_SXM) / t)) for c, NH, t in records]
    assert sum(errors) / len(errors) < 0.1 and max(errors) < 0.3  # docs/tuning.md: 7% mean, 28% worst
    pairs = agreeing = 0
    for i, (c1, n1, t1) in enumerate(records):
        for c2, n2, t2 in records[i + 1:]:
            same_group = (c1.backward, c1.DHP, type(c1)) == (c2.backward, c2.DHP, type(c2))
            if same_group and max(t1, t2) > 1.1 * min(t1, t2):  # measurably different
                pairs += 1
                agreeing += (estimated_ms(c1, n1, 16, H100_SXM) < estimated_ms(c2, n2, 16, H100_SXM)) == (t1 < t2)
    assert pairs >= 25 and agreeing == pairs


def test_cost_model_sanity():
    def fused(**kw):
        return FusedConfig(**dict(dict(cell="lstm", dtype=BF16, DHP=128, backward=False, WN=1, depth=4, vec=8,
                                       fast_math=True), **kw))

    def ms(config, NH=6, B=16):
        return estimated_ms(config, NH, B, H100_SXM)

    assert ms(fused(r_in_registers=True)) < ms(fused())  # measured 0.87 vs 2.18 ms
    assert ms(fused(depth=2)) >= ms(fused(depth=3)) >= ms(fused(depth=4))
    assert ms(fused(cell="elman")) < ms(fused(cell="lstm")) < ms(fused(cell="slstm"))
    assert ms(fused(), NH=6) < ms(fused(), NH=600)  # past one wave
    assert ms(fused(backward=True)) > ms(fused())
    split = SplitConfig("lstm", BF16, 128, 16, 8, 1, 4, 8, True)
    assert ms(split) > ms(fused())  # a grid barrier every step
    ranked = rank(fused_space("lstm", BF16, 64, 12, 16, False, H100_SXM), 12, 16, H100_SXM)
    assert (ranked[0].NT, ranked[0].WN, ranked[0].r_in_registers) == (1, 1, True)  # measured best at B=16


def test_search_times_the_models_best_and_caches_the_winner(cache_dir):
    space = rank(feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM), 12, 16, H100_SXM)
    slow_first = {space[0]: 3.0}  # the model's favourite measures slow: the timed runner-up must win
    timer = FakeTimer(scale=slow_first)
    result = tune("lstm", BF16, 64, 12, 16, top_k=2, limits=H100_SXM, timer=timer, check=FakeCheck(),
                  progress=False)
    models = [model_ranking("lstm", BF16, 64, 12, 16, backward, H100_SXM) for backward in (False, True)]
    expected = [to_time(m.candidates, 2) for m in models]  # the top 2, then the model's first of each form
    assert [c.plan for c in expected[0][:2]] == [c.plan for c in distinct(models[0].candidates)[:2]]
    forms = {form(c.config) for c in models[0].candidates}
    assert len(forms) > 3 and {form(c.config) for c in expected[0]} == forms
    assert len(timer.prepared) == 1 and timer.prepared[0] == timer.calls
    assert timer.calls == [c.plan for picked in expected for c in picked]
    timed = result.forward.timed
    assert len(timed) == len(expected[0]) and timed[0].config != space[0]
    assert result.forward.best.config == timed[0].config
    assert [c.config for c in result.forward.candidates] == space
    assert all(c.estimated_ms > 0 for c in result.backward.candidates)
    # the planner runs the winners from now on (the backward's also at 13 sequences: the same bucket)
    for direction, B, best in (("forward", 16, result.forward.best), ("backward", 13, result.backward.best)):
        chosen = plan(problem(64, 12, B), H100_SXM, direction)
        assert chosen == best.plan and chosen.why == "tuned winner"
    # the model's own first choice, without the cache
    assert model_ranking("lstm", BF16, 64, 12, 16, False, H100_SXM).candidates[0].config == space[0]


def test_search_skips_rejected_and_times_everything_when_exhaustive(cache_dir):
    space = feasible_configs("lstm", BF16, 768, 1, 16, False, H100_SXM)
    timer = FakeTimer(reject=space[:3])
    result = tune("lstm", BF16, 768, 1, 16, exhaustive=True, limits=H100_SXM, timer=timer, check=FakeCheck(),
                  progress=False)
    assert sorted(p.config.name_expression for p in timer.calls if p.direction == "forward") == sorted(
        c.name_expression for c in space)
    assert result.forward.best.config not in space[:3] and math.isfinite(result.forward.best.measured_ms)
    with pytest.raises(RuntimeError, match="rejected"):
        tune("lstm", BF16, 768, 1, 16, exhaustive=True, limits=H100_SXM, progress=False,
             check=FakeCheck(), timer=FakeTimer(reject=space))


def test_top_k_skips_configurations_the_model_cannot_tell_apart(cache_dir):
    timer = FakeTimer()
    tune("lstm", BF16, 64, 12, 16, top_k=3, limits=H100_SXM, timer=timer, check=FakeCheck(), use_cache=False,
         progress=False)
    forward = [p.config for p in timer.calls if p.direction == "forward"]
    estimates = [estimated_ms(c, 12, 16, H100_SXM) for c in forward]
    assert len({round(e, 6) for e in estimates[:3]}) == 3  # the top 3 the model tells apart
    ranked = model_ranking("lstm", BF16, 64, 12, 16, False, H100_SXM).candidates
    assert {form(c) for c in forward} == {form(c.config) for c in ranked}  # then each form's first
    assert len(forward) == len(set(forward))
    assert not (cache_dir / "tune.json").exists()


def test_cache_round_trip_corruption_and_kernel_digest(cache_dir):
    config = model_ranking("gru", FP16, 96, 4, 32, True, H100_SXM).candidates[0].config
    key = tuned.cache_key(H100_SXM.name, "gru", FP16, 96, 4, 32, True)
    assert tuned.lookup(key) is None
    tuned.store(key, config, 1.25)
    assert tuned.lookup(key) == config
    split = model_ranking("lstm", BF16, 768, 1, 16, False, H100_SXM).candidates[0].config
    split_key = tuned.cache_key(H100_SXM.name, "lstm", BF16, 768, 1, 16, False)
    tuned.store(split_key, split, 4.0)
    assert tuned.lookup(split_key) == split and tuned.lookup(key) == config
    path = tuned.cache_path()
    assert path == cache_dir / "tune.json"
    # each entry keeps the digest of its own kernel's translation unit
    entries = tuned.read_entries(path)
    for k, c in ((key, config), (split_key, split)):
        assert {n: entries[k][n] for n in ("kernel_digest", "nvrtc")} == tuned.kernel_version(c)
    text = path.read_text()
    for broken in (text[: len(text) // 2], text.replace("1.25", "1.26"), "", "[]", '{"version": 1}'):
        path.write_text(broken)
        assert tuned.lookup(key) is None  # detected, treated as empty
    tuned.store(key, config, 1.25)  # rebuilt
    assert tuned.lookup(key) == config and json.loads(path.read_text())["version"] == tuned.VERSION
    assert not list(cache_dir.glob("*.tmp"))
    # the key: GPU, call, batch bucket and direction; the kernel's digest is in the entry, not the key
    assert key == "NVIDIA H100 80GB HBM3|gru|float16|DH=96|NH=4|B<=32|backward"
    assert tuned.cache_key(H100_SXM.name, "gru", FP16, 96, 4, 17, True) == key
    assert tuned.cache_key(H100_SXM.name, "gru", FP16, 96, 4, 33, True) != key
    assert tuned.cache_key(H100_SXM.name, "gru", FP16, 96, 4, 32, False) != key
    assert tuned.batch_bucket(1) == tuned.batch_bucket(8) == 8 and tuned.batch_bucket(9) == 16


def test_a_plan_is_one_direction_of_one_kernel():
    """What the launchers run, the tuner times and tests pass explicitly: immutable, its
    direction that of its kernel; where it came from (`why`) is not part of it."""
    forward, backward = (model_ranking("lstm", BF16, 64, 12, 16, b, H100_SXM).candidates[0].config
                         for b in (False, True))
    assert Plan("forward", forward, "one reason") == Plan("forward", forward, "another")
    assert Plan("backward", backward).strategy == "cluster" and Plan("forward", forward).name_expression
    with pytest.raises(ValueError, match="a backward kernel cannot run the forward"):
        Plan("forward", backward)
    with pytest.raises(ValueError, match="a forward kernel cannot run the backward"):
        Plan("backward", forward)
    with pytest.raises(ValueError, match="direction: expected one of"):
        Plan("sideways", forward)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Plan("forward", forward).config = backward


def test_limits_read_from_the_device_match_the_h100_preset(monkeypatch):
    """device_limits' plumbing, with torch's properties and the driver's attributes as an H100 reports them."""
    from types import SimpleNamespace

    from fusedrnn.backends.cuda.runtime import device

    cuda_core = pytest.importorskip("cuda.core")

    torch_props = SimpleNamespace(
        name="NVIDIA H100 80GB HBM3", major=9, minor=0, multi_processor_count=132, regs_per_multiprocessor=65536,
        shared_memory_per_multiprocessor=233472, shared_memory_per_block_optin=232448,
        max_threads_per_multi_processor=2048, L2_cache_size=52428800)
    driver = SimpleNamespace(max_registers_per_block=65536, reserved_shared_memory_per_block=1024,
                             max_threads_per_block=1024, max_blocks_per_multiprocessor=32, clock_rate=1980000,
                             cluster_launch=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: torch_props)
    monkeypatch.setattr(cuda_core, "Device", lambda index: SimpleNamespace(properties=driver))
    device.device_limits.cache_clear()
    try:
        assert device.device_limits(0) == dataclasses.replace(H100_SXM, index=0)  # the preset, of device 0
    finally:
        device.device_limits.cache_clear()


def test_bad_input_names_the_argument(cache_dir):
    with pytest.raises(ValueError, match=r"device preset: expected one of .*'h200'"):
        preset("h200")
    with pytest.raises(ValueError, match="B: expected a positive int, got 0"):
        feasible_configs("lstm", BF16, 64, 1, 0, False, H100_SXM)
    with pytest.raises(ValueError, match="DH: expected a positive int, got -4"):
        feasible_configs("lstm", BF16, -4, 1, 16, False, H100_SXM)
    with pytest.raises(TypeError, match="dtype: expected one of"):
        feasible_configs("lstm", torch.float64, 64, 1, 16, False, H100_SXM)
    with pytest.raises(ValueError, match="top_k: expected a positive int, got 0"):
        tune("lstm", BF16, 64, 12, 16, top_k=0, limits=H100_SXM, check=FakeCheck(), timer=FakeTimer())
    with pytest.raises(ValueError, match="no cuda_fused configuration runs"):
        tune("lstm", BF16, 4096, 1, 16, limits=H100_SXM, check=FakeCheck(), timer=FakeTimer(), progress=False)
    with pytest.raises(ValueError, match="cuda_fused has no plan for the forward .* DH=4096"):
        plan(problem(4096, 1, 16), H100_SXM, "forward")
    with pytest.raises(ValueError, match="direction: expected one of"):
        plan(problem(64, 12, 16), H100_SXM, "both")
    with pytest.raises(ValueError, match="strategy: expected one of"):
        plan(problem(64, 12, 16), H100_SXM, "forward", strategy="split")


def test_cli_table_and_model_ranking_on_cpu(capsys):
    assert main(["tune", "--table", "--device", "a100"]) == 0
    out = capsys.readouterr().out
    assert "A100" in out and "| lstm | bfloat16 | 112 | 896 | 768 |" in out
    assert main(["tune", "--device", "h100", "--dh", "64", "--nh", "12", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    shown = [len(to_time(model_ranking("lstm", BF16, 64, 12, 16, backward, H100_SXM).candidates, 2))
             for backward in (False, True)]
    assert [out.count("| 64x12 | forward |"), out.count("| 64x12 | backward |")] == shown
    assert "cluster of 2 CTAs a head" in out  # the model's favourite kernels there, in words
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA GPU here; --device a100"):
            main(["tune", "--table"])


def test_model_picks_compile_without_spills(cache_dir):
    """The kernels are the ground truth: what the model picks for the shapes
    tools/tune_check.py times, and for the largest LSTM heads it claims,
    compiles (NVRTC, sm_90) without register spills or local memory."""
    pytest.importorskip("cuda.core")
    rows = {(r.cell, r.dtype): r for r in largest_head_dims(H100_SXM)}["lstm", BF16]
    shapes = [(64, 12, False), (64, 12, True), (128, 6, False), (768, 1, False), (768, 1, True),
              (rows.split_forward, 1, False), (rows.split_training, 1, True)]
    for DH, NH, backward in shapes:
        config = model_ranking("lstm", BF16, DH, NH, 16, backward, H100_SXM).candidates[0].config
        compiled = nvrtc_compile.compile_kernel(config.name_expression, H100_SXM.arch, config.source)
        assert compiled.spill_bytes == compiled.stack_bytes == compiled.local_memory_instructions == 0, (
            config.name_expression, compiled.log)
