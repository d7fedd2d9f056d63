"""The tuner on a CPU: the constraint model over recorded device limits (H100,
A100, RTX 4090), the cost model against the H100 measurements on record, the
search with a fake timer and correctness check, the on-disk cache and the `fusedrnn tune` command."""
import dataclasses
import json
import math
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("constraint")

from fusedrnn.backends.cuda import compile as nvrtc_compile  # noqa: E402
from fusedrnn.backends.cuda.fused import SHARED_MEMORY_LIMIT, FusedConfig, choose_config, fits_one_sm  # noqa: E402
from fusedrnn.backends.cuda.split import SplitConfig, choose_split  # noqa: E402
from fusedrnn.cli import main  # noqa: E402
from fusedrnn.tune import A100_SXM, H100_SXM, RTX_4090, best_config, largest_head_dims, preset, tune  # noqa: E402
from fusedrnn.tune import cache  # noqa: E402
from fusedrnn.tune.choice import model_choice  # noqa: E402
from fusedrnn.tune.cost import estimated_ms, rank  # noqa: E402
from fusedrnn.tune.registers import registers_needed  # noqa: E402
from fusedrnn.tune.space import batch_bucket, feasible_configs, fused_space, split_space  # noqa: E402
from tune_fakes import FakeCheck, FakeTimer  # noqa: E402

BF16 = torch.bfloat16
BENCH_SHAPES = [(16, 48), (32, 24), (64, 12), (128, 6), (256, 3), (768, 1)]  # hidden 768, DH x NH
RESULTS = Path(__file__).parent.parent / "results" / "h100-2026-11-25-cuda"


def todays_pick(cell, dtype, DH, NH, B, backward):
    if fits_one_sm(cell, dtype, DH, B):
        return choose_config(cell, dtype, DH, B, backward, NH, H100_SXM.sm_count)
    return choose_split(cell, dtype, DH, B, NH, H100_SXM.sm_count, backward)


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("DH,NH", BENCH_SHAPES)
def test_feasible_set_holds_todays_choice(DH, NH, backward):
    space = feasible_configs("lstm", BF16, DH, NH, 16, backward, H100_SXM)
    assert todays_pick("lstm", BF16, DH, NH, 16, backward) in space


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
        assert config.batch_tile <= batch_bucket(B)
        assert registers_needed(config) <= H100_SXM.register_cap(config.threads)
        if isinstance(config, FusedConfig):
            assert config.fits(), config
        else:
            assert config.threads <= 1024 and config.shared_memory <= SHARED_MEMORY_LIMIT, config
            assert config.parts * NH * math.ceil(batch_bucket(B) / config.batch_tile) <= H100_SXM.sm_count
            assert (config.DHP // 16) % config.KSPLIT == 0
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


def _recorded_h100():
    """(config, NH, measured ms of that kernel) from the 2026-11-25 H100 runs (LSTM bf16, B=16, T=1024):
    the launch variants (cuda-variants.json; the heuristic of the day: 16-wide tiles up to DH 64 forward
    and 96 backward, R in registers forward) and the split heads of the benchmark (bench-head.json).
    A backward kernel's time is fwd+bwd minus fwd minus ~0.1 ms of dR GEMM."""
    variants = {"shipped": {}, "NT2 WN1": dict(NT=2, WN=1), "NT1 WN1": dict(NT=1, WN=1), "NT2 WN2": dict(NT=2, WN=2)}
    rows = json.loads((RESULTS / "cuda-variants.json").read_text())
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
            out.append((config if config.fits() else base, NH, total))  # the script fell back when it did not fit
    bench = json.loads((RESULTS / "bench-head.json").read_text())["rows"]
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


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_search_times_the_models_best_and_caches_the_winner(cache_dir):
    space = rank(feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM), 12, 16, H100_SXM)
    slow_first = {space[0]: 3.0}  # the model's favourite measures slow: the timed runner-up must win
    timer = FakeTimer(scale=slow_first)
    result = tune("lstm", BF16, 64, 12, 16, top_k=2, limits=H100_SXM, timer=timer, check=FakeCheck(),
                  progress=False)
    assert len(timer.prepared) == 1 and len(timer.prepared[0]) == len(timer.calls) == 4  # 2 a direction
    timed = result.forward.timed
    assert len(timed) == 2 and timed[0].config != space[0] and result.forward.best.config == timed[0].config
    assert [c.config for c in result.forward.candidates] == space
    assert all(c.estimated_ms > 0 for c in result.backward.candidates)
    assert best_config("lstm", BF16, 64, 12, 16, False, H100_SXM) == result.forward.best.config
    assert best_config("lstm", BF16, 64, 12, 13, True, H100_SXM) == result.backward.best.config  # same bucket
    assert best_config("lstm", BF16, 64, 12, 16, False, H100_SXM, use_cache=False) == space[0]


def test_search_skips_rejected_and_times_everything_when_exhaustive(cache_dir):
    space = feasible_configs("lstm", BF16, 768, 1, 16, False, H100_SXM)
    timer = FakeTimer(reject=space[:3])
    result = tune("lstm", BF16, 768, 1, 16, exhaustive=True, limits=H100_SXM, timer=timer, check=FakeCheck(),
                  progress=False)
    assert len([c for c in timer.calls if not c.backward]) == len(space)
    assert result.forward.best.config not in space[:3] and math.isfinite(result.forward.best.measured_ms)
    with pytest.raises(RuntimeError, match="rejected"):
        tune("lstm", BF16, 768, 1, 16, exhaustive=True, limits=H100_SXM, progress=False,
             check=FakeCheck(), timer=FakeTimer(reject=split_space("lstm", BF16, 768, 1, 16, False, H100_SXM)))


def test_top_k_skips_configurations_the_model_cannot_tell_apart(cache_dir):
    timer = FakeTimer()
    tune("lstm", BF16, 64, 12, 16, top_k=3, limits=H100_SXM, timer=timer, check=FakeCheck(), use_cache=False,
         progress=False)
    forward = [c for c in timer.calls if not c.backward]
    estimates = [estimated_ms(c, 12, 16, H100_SXM) for c in forward]
    assert len(forward) == 3 and len({round(e, 6) for e in estimates}) == 3
    assert not (cache_dir / "tune.json").exists()


def test_cache_round_trip_corruption_and_kernel_hash(cache_dir):
    config = model_choice("gru", torch.float16, 96, 4, 32, True, H100_SXM)
    key = cache.cache_key(H100_SXM.name, "gru", torch.float16, 96, 4, 32, True)
    assert cache.lookup(key) is None
    cache.store(key, config, 1.25)
    assert cache.lookup(key) == config
    split = model_choice("lstm", BF16, 768, 1, 16, False, H100_SXM)
    split_key = cache.cache_key(H100_SXM.name, "lstm", BF16, 768, 1, 16, False)
    cache.store(split_key, split, 4.0)
    assert cache.lookup(split_key) == split and cache.lookup(key) == config
    path = cache.cache_path()
    assert path == cache_dir / "tune.json"
    text = path.read_text()
    for broken in (text[: len(text) // 2], text.replace("1.25", "1.26"), "", "[]", '{"version": 1}'):
        path.write_text(broken)
        assert cache.lookup(key) is None  # detected, treated as empty
    cache.store(key, config, 1.25)  # rebuilt
    assert cache.lookup(key) == config and json.loads(path.read_text())["version"] == cache.VERSION
    assert not list(cache_dir.glob("*.tmp"))
    # the key: batch bucket, direction and the CUDA sources' digest
    assert cache.cache_key(H100_SXM.name, "gru", torch.float16, 96, 4, 17, True) == key
    assert cache.cache_key(H100_SXM.name, "gru", torch.float16, 96, 4, 33, True) != key
    assert cache.cache_key(H100_SXM.name, "gru", torch.float16, 96, 4, 32, False) != key
    assert cache.cache_key(H100_SXM.name, "gru", torch.float16, 96, 4, 32, True, kernel_hash="0" * 64) != key
    assert nvrtc_compile.sources_digest()[:16] in key


def test_forced_configuration_stands_in_for_the_backends_choice(monkeypatch):
    """How the GPU timer runs a candidate: in place of choose_config / choose_split, its direction only."""
    from fusedrnn.backends.cuda import fused, split
    from fusedrnn.tune.timing import forced

    monkeypatch.delenv("FUSEDRNN_SPLIT", raising=False)
    one_sm = model_choice("lstm", BF16, 64, 12, 16, True, H100_SXM)
    with forced(one_sm):
        assert fused.choose_config("lstm", BF16, 64, 16, True, 12) == one_sm
        assert fused.choose_config("lstm", BF16, 64, 16, backward=False) == choose_config("lstm", BF16, 64, 16, False)
    assert fused.choose_config is choose_config
    head = model_choice("lstm", BF16, 768, 1, 16, False, H100_SXM)
    with forced(head):
        assert split.choose_split("lstm", BF16, 768, 16, 1, 132) == head
        assert split.choose_split("lstm", BF16, 768, 16, 1, 132, backward=True) != head
        assert os.environ["FUSEDRNN_SPLIT"] == "grid"  # the cooperative grid, not a cluster
    assert split.choose_split is choose_split and "FUSEDRNN_SPLIT" not in os.environ


def test_limits_read_from_the_device_match_the_h100_preset(monkeypatch):
    """device_limits' plumbing, with torch's properties and the driver's attributes as an H100 reports them."""
    from types import SimpleNamespace

    from fusedrnn.tune import limits

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
    limits.device_limits.cache_clear()
    try:
        assert limits.device_limits(0) == H100_SXM
    finally:
        limits.device_limits.cache_clear()


def test_bad_input_names_the_argument():
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
    assert best_config("lstm", BF16, 4096, 1, 16, False, H100_SXM, use_cache=False) is None


def test_cli_table_and_model_ranking_on_cpu(capsys):
    assert main(["tune", "--table", "--device", "a100"]) == 0
    out = capsys.readouterr().out
    assert "A100" in out and "| lstm | bfloat16 | 112 | 896 | 768 |" in out
    assert main(["tune", "--device", "h100", "--dh", "64", "--nh", "12", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("| 64x12 | forward |") == 2 and "R in registers" in out
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA GPU here; --device a100"):
            main(["tune", "--table"])


def test_model_picks_compile_without_spills(tmp_path, monkeypatch):
    """The kernels are the ground truth: what the model picks for the shapes
    scripts/tune_check.py times, and for the largest LSTM heads it claims,
    compiles (NVRTC, sm_90) without register spills."""
    pytest.importorskip("cuda.core")
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    rows = {(r.cell, r.dtype): r for r in largest_head_dims(H100_SXM)}["lstm", BF16]
    shapes = [(64, 12, False), (64, 12, True), (128, 6, False), (768, 1, False), (768, 1, True),
              (rows.split_forward, 1, False), (rows.split_training, 1, True)]
    for DH, NH, backward in shapes:
        config = model_choice("lstm", BF16, DH, NH, 16, backward, H100_SXM)
        compiled = nvrtc_compile.compile_kernel(config.name_expression, H100_SXM.arch)
        assert compiled.spill_bytes == 0, (config.name_expression, compiled.log)
