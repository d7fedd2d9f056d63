"""Tuned winners in the planner, on a CPU: `tune` (fake timer, fake correctness
check) caches winners that `plan` runs from then on, for the GPU and batch
bucket they were tuned for, whatever their kernel family; a winner that cannot
run the call (another head dim, a row-copy width that does not divide DH, too
few SMs, no clusters, the other direction), one measured with another version
of its kernel, or a corrupted cache falls back to the rules; an explicit plan
runs as given; the correctness gate keeps failing candidates from being timed
or cached; and the host code launches the planner's plan."""
import contextlib
import dataclasses
import json
import os
import time

import pytest
import torch

pytest.importorskip("constraint")

from fusedrnn.backends.cuda import fused as fused_backend  # noqa: E402
from fusedrnn.backends.cuda.fused import launchers, tuned  # noqa: E402
from fusedrnn.backends.cuda.fused.cluster import ClusterConfig  # noqa: E402
from fusedrnn.backends.weight_gradient import entering_states  # noqa: E402
from fusedrnn.backends.cuda.fused.grid import SplitConfig  # noqa: E402
from fusedrnn.backends.cuda.fused.one_sm import FusedConfig  # noqa: E402
from fusedrnn.backends.cuda.fused.plan import Plan, plan, rule_plan  # noqa: E402
from fusedrnn.backends.cuda.fused.planned import with_plans  # noqa: E402
from fusedrnn.backends.cuda.runtime.compile import source_digest  # noqa: E402
from fusedrnn.testing import MismatchError  # noqa: E402
from fusedrnn.tune import H100_SXM, tune  # noqa: E402
from fusedrnn.tune.search import Call, model_ranking  # noqa: E402
from fusedrnn.tune.space import feasible_configs  # noqa: E402
from tune_fakes import FakeCheck, FakeTimer, problem, shared_cubins, use_cache_dir  # noqa: E402, F401

BF16 = torch.bfloat16
GPU = H100_SXM.name
DIRECTIONS = ("forward", "backward")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch, shared_cubins):  # noqa: F811
    return use_cache_dir(tmp_path, monkeypatch, shared_cubins)


def rule(DH, NH, B, direction, device=H100_SXM):
    """What the rules run for an LSTM bf16 call of 1024 steps (no tuned winner)."""
    return rule_plan("lstm", BF16, DH, NH, B, True, device, direction, None)


def planned(DH, NH, B, direction, device=H100_SXM):
    """What the planner runs for an LSTM bf16 call of 1024 steps."""
    return plan(problem(DH, NH, B), device, direction)


def tune_against_the_rules(DH, NH, B=16, reject=()):
    """Tune with the rules' own picks measuring slow, so that the winners differ from them."""
    slow = {rule(DH, NH, B, direction).config: 10.0 for direction in DIRECTIONS}
    return tune("lstm", BF16, DH, NH, B, limits=H100_SXM, timer=FakeTimer(scale=slow, reject=reject),
                check=FakeCheck(), exhaustive=True, progress=False)


def test_the_rule_runs_a_large_batch_in_one_wave_of_tiles_sharing_sms():
    """Past one CTA an SM, tiles of 8 stay where several CTAs an SM still run the call in one
    wave (LSTM 64x12, B=256: 384 CTAs, 3 an SM), with the deepest ring that keeps it; past
    that, tiles of 16 as before. (On the preset: the register model counts the CTAs.)"""
    forward, backward = (rule(64, 12, 256, direction).config for direction in DIRECTIONS)
    assert (forward.NT, forward.WN, forward.depth) == (1, 1, 4)
    assert forward.ctas_per_sm(H100_SXM) * H100_SXM.sm_count >= 12 * 256 // 8
    assert (backward.NT, backward.WN, backward.depth) == (1, 1, 3)  # depth 4's ring allows 2 an SM
    assert backward.ctas_per_sm(H100_SXM) == 3 and dataclasses.replace(backward, depth=4).ctas_per_sm(H100_SXM) == 2
    assert rule(64, 12, 16, "forward").config == forward  # the same kernel at B=16
    assert rule(64, 12, 2048, "forward").config.WN == 2  # 3072 CTAs: no wave holds them


@pytest.mark.parametrize("DH,NH", [(64, 12), (768, 1)], ids=["one SM", "split"])
def test_the_next_call_runs_the_tuned_winners(DH, NH):
    result = tune_against_the_rules(DH, NH)
    another_gpu = dataclasses.replace(H100_SXM, name="NVIDIA H100 PCIe")
    for direction, ranking in zip(DIRECTIONS, (result.forward, result.backward)):
        winner = ranking.best.plan
        assert winner != rule(DH, NH, 16, direction)
        chosen = planned(DH, NH, 16, direction)
        assert chosen == winner and chosen.why == "tuned winner"
        same_bucket = planned(DH, NH, 9, direction)  # the same kernel (a cluster's sequences fit to the batch)
        assert same_bucket.why == "tuned winner" and same_bucket.name_expression == winner.name_expression
        assert planned(DH, NH, 17, direction) == rule(DH, NH, 17, direction)  # another bucket: not tuned
        assert planned(DH, NH, 16, direction, another_gpu) == rule(DH, NH, 16, direction, another_gpu)
        # narrowed to a kernel family (tests, probes, bench --plan), the planner gives the rules' pick in it
        assert plan(problem(DH, NH, 16), H100_SXM, direction, strategy=winner.strategy).why.startswith("rule")


@pytest.mark.parametrize("DH,NH,strategy", [(64, 12, "one_sm"), (64, 12, "grid"), (64, 12, "cluster"),
                                            (256, 3, "cluster"), (768, 1, "grid"), (768, 1, "cluster")])
def test_the_planner_runs_the_winner_of_any_family(DH, NH, strategy):
    """The timer prefers a candidate of one family that is not the rules' (at 768x1 the
    rules' cluster is the only one): every candidate is timed, each its own kernel, and
    the planner then runs exactly the winner, cluster, grid or one SM."""
    preferred = {}
    for direction in DIRECTIONS:
        ranking = model_ranking("lstm", BF16, DH, NH, 16, direction == "backward", H100_SXM)
        family = [c.config for c in ranking.candidates if c.plan.strategy == strategy]
        others = [config for config in family if config != rule(DH, NH, 16, direction).config]
        preferred[direction] = (others or family)[0]
    timer = FakeTimer(scale={config: 1e-3 for config in preferred.values()})
    result = tune("lstm", BF16, DH, NH, 16, limits=H100_SXM, timer=timer, check=FakeCheck(), exhaustive=True,
                  progress=False)
    for direction, ranking in zip(DIRECTIONS, (result.forward, result.backward)):
        kernels = [p.config.name_expression for p in timer.calls if p.direction == direction]
        assert len(kernels) == len(set(kernels)) == len(ranking.candidates)
        assert ranking.best.config == preferred[direction]
        chosen = planned(DH, NH, 16, direction)
        assert (chosen.config, chosen.strategy, chosen.why) == (ranking.best.config, strategy, "tuned winner")
        if (DH, strategy) != (768, "cluster"):
            assert chosen != rule(DH, NH, 16, direction)


def test_a_winner_measured_with_another_version_of_its_kernel_is_retired():
    result = tune_against_the_rules(64, 12)
    path = tuned.cache_path()
    entries = tuned.read_entries(path)
    keys = {direction: tuned.cache_key(GPU, "lstm", BF16, 64, 12, 16, direction == "backward")
            for direction in DIRECTIONS}
    for direction, ranking in zip(DIRECTIONS, (result.forward, result.backward)):
        # each entry keeps the digest of its own kernel's translation unit
        assert entries[keys[direction]]["kernel_digest"] == source_digest(ranking.best.config.source)
        assert planned(64, 12, 16, direction) == ranking.best.plan
    # the forward's kernel was edited since its winner was measured: that winner is retired ...
    entries[keys["forward"]] = dict(entries[keys["forward"]], kernel_digest="0" * 64)
    tuned.write_entries(path, entries)
    assert tuned.lookup(keys["forward"]) is None
    chosen = planned(64, 12, 16, "forward")
    assert chosen == rule(64, 12, 16, "forward") and chosen.why.startswith("rule")
    # ... and only that one
    assert tuned.lookup(keys["backward"]) == result.backward.best.config
    assert planned(64, 12, 16, "backward") == result.backward.best.plan
    # tuned again, the winner is current
    tune_against_the_rules(64, 12)
    assert planned(64, 12, 16, "forward") == result.forward.best.plan


def test_a_corrupted_or_missing_cache_falls_back_to_the_rules():
    result = tune_against_the_rules(64, 12)
    path = tuned.cache_path()
    text = path.read_text()
    assert planned(64, 12, 16, "forward") == result.forward.best.plan
    for broken in (text[: len(text) // 3], text.replace('"depth": ', '"depth": 1'), "", "{"):
        path.write_text(broken)
        assert planned(64, 12, 16, "forward") == rule(64, 12, 16, "forward")
    path.unlink()
    assert planned(64, 12, 16, "backward") == rule(64, 12, 16, "backward")


def test_only_a_winner_that_can_run_the_call_is_run():
    one_sm = feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM)[0]
    head = next(c for c in feasible_configs("lstm", BF16, 768, 1, 16, False, H100_SXM) if isinstance(c, SplitConfig))
    cluster = next(c for c in feasible_configs("lstm", BF16, 768, 1, 16, False, H100_SXM)
                   if isinstance(c, ClusterConfig))
    assert isinstance(one_sm, FusedConfig)

    def cached(DH, NH, config, backward=False):
        tuned.store(tuned.cache_key(GPU, "lstm", BF16, DH, NH, 16, backward), config, 1.0)

    cached(64, 12, head)  # a kernel for heads of 768 where the call's are 64
    assert planned(64, 12, 16, "forward") == rule(64, 12, 16, "forward")
    cached(768, 1, one_sm)  # and the other way round
    assert planned(768, 1, 16, "forward") == rule(768, 1, 16, "forward")
    cached(64, 12, one_sm, backward=True)  # a forward kernel for the backward
    assert planned(64, 12, 16, "backward") == rule(64, 12, 16, "backward")
    cached(64, 12, dataclasses.replace(one_sm, cell="gru"))  # another cell's (a hand-edited file)
    assert planned(64, 12, 16, "forward") == rule(64, 12, 16, "forward")
    too_big = FusedConfig("lstm", BF16, 64, False, NT=2, WN=32, depth=4)  # 2048 threads a block
    cached(64, 12, too_big)
    assert not too_big.fits(H100_SXM) and planned(64, 12, 16, "forward") == rule(64, 12, 16, "forward")
    cached(768, 1, head)
    assert planned(768, 1, 16, "forward") == Plan("forward", head)
    fewer_sms = dataclasses.replace(H100_SXM, sm_count=head.parts - 1)  # its CTAs no longer all resident
    assert planned(768, 1, 16, "forward", fewer_sms).config != head
    cached(768, 1, cluster)
    assert planned(768, 1, 16, "forward") == Plan("forward", cluster)
    no_clusters = dataclasses.replace(H100_SXM, capability=(8, 0), max_cluster_size=1, max_cluster_size_non_portable=1)
    assert planned(768, 1, 16, "forward", no_clusters).strategy == "grid"
    other_width = FusedConfig("lstm", BF16, 64, False, WN=1, depth=4, vec=8)
    cached(60, 12, other_width)  # a row-copy width of 8 does not divide DH=60
    assert planned(60, 12, 16, "forward").config.vec == 4


def test_every_candidate_survives_the_cache():
    """A winner may be any candidate: each reads back from the file as itself, zero counts
    included (a cluster with none of R in registers, or running its whole batch tile), and
    the planner then runs it."""
    zeros = {}
    for DH, NH in ((64, 12), (256, 3), (768, 1)):
        for direction in DIRECTIONS:
            for candidate in model_ranking("lstm", BF16, DH, NH, 16, direction == "backward", H100_SXM).candidates:
                config = candidate.config
                assert tuned.config_from_json(json.loads(json.dumps(tuned.config_to_json(config)))) == config
                for field in ("sequences", "reg_tiles", "reg_blocks"):
                    if getattr(config, field, None) == 0:
                        zeros.setdefault(field, (DH, NH, candidate.plan))
    assert set(zeros) == {"sequences", "reg_tiles", "reg_blocks"}
    for DH, NH, candidate in zeros.values():
        tuned.store(tuned.cache_key(GPU, "lstm", BF16, DH, NH, 16, candidate.direction == "backward"),
                    candidate.config, 1.0)
        assert planned(DH, NH, 16, candidate.direction) == candidate


def record_launches(monkeypatch) -> list:
    """Every kernel launch goes through launchers.run_kernel: record the kernels instead
    (CPU tensors, nothing runs)."""
    launched = []
    monkeypatch.setattr(launchers, "run_kernel", lambda config, *args, **kwargs: launched.append(
        config.name_expression))
    return launched


def inputs(DH, NH, B=5, T=16, requires_grad=False):  # 16 steps: where a tuned cluster may run
    x = torch.zeros(B, T, 4, NH, DH, dtype=BF16, requires_grad=requires_grad)
    R = torch.zeros(4, NH, DH, DH, dtype=BF16, requires_grad=requires_grad)
    b = torch.zeros(4, NH, DH, dtype=BF16, requires_grad=requires_grad)
    states = torch.zeros(2, B, NH, DH, dtype=BF16, requires_grad=requires_grad)
    return x, R, b, states


def test_an_explicit_plan_runs_as_given(monkeypatch):
    """The internal call path with explicit plans (the tuner's check and timer, probes) runs
    its plans, not the cached winners nor the rules."""
    result = tune_against_the_rules(64, 12)
    explicit = [next(c.plan for c in ranking.candidates if c.plan.strategy == "grid")
                for ranking in (result.forward, result.backward)]
    assert all(p not in (result.forward.best.plan, result.backward.best.plan) for p in explicit)
    launched = record_launches(monkeypatch)
    y, final = with_plans(*explicit)(*inputs(64, 12, requires_grad=True), cell="lstm")
    (y.float().sum() + final.float().sum()).backward()
    assert launched == [p.name_expression for p in explicit]
    launched.clear()
    with_plans(explicit[0])(*inputs(64, 12), cell="lstm")  # inference: a forward plan alone
    assert launched == [explicit[0].name_expression]


def test_a_candidate_that_fails_the_check_is_reported_never_timed_nor_cached(capsys):
    space = feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM)
    slow = {c: 10.0 for c in space[1:]}  # the failing favourite would otherwise win
    call = Call("lstm", BF16, 64, 12, 16)
    favourite = min(space, key=lambda c: FakeTimer(scale=slow)(Plan("forward", c), call))
    timer, check = FakeTimer(scale=slow), FakeCheck(fail=[favourite])
    result = tune("lstm", BF16, 64, 12, 16, limits=H100_SXM, timer=timer, check=check, exhaustive=True)
    assert set(check.calls) == set(timer.prepared[0]) and favourite not in [p.config for p in timer.calls]
    assert [c.config for c in result.forward.failed] == [favourite]
    assert "MismatchError" in result.forward.failed[0].failed_check
    assert favourite not in [c.config for c in result.forward.timed]
    assert result.forward.best.config != favourite
    assert planned(64, 12, 16, "forward") == result.forward.best.plan
    assert f"failed the correctness check, not timed: {favourite.name_expression}" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"rejected .*: \d+ by the correctness check"):
        tune("lstm", BF16, 128, 6, 16, limits=H100_SXM, timer=FakeTimer(), progress=False,
             check=FakeCheck(fail=feasible_configs("lstm", BF16, 128, 6, 16, False, H100_SXM)))
    assert planned(128, 6, 16, "forward") == rule(128, 6, 16, "forward")  # nothing cached


def test_gpu_check_runs_the_plan_with_the_planners_other_direction_on_poisoned_outputs(monkeypatch):
    """The default check's control flow, with the kernel run replaced by a fake: a forward plan
    runs in inference and in training with the planner's backward; a backward plan in training
    only, after the planner's forward."""
    from fusedrnn.ops import outputs
    from fusedrnn.tune import correctness

    runs = []

    def fake_check_backend(backend, cell, dtype, B, T, NH, DH, device, with_grads):
        runs.append((backend, B, T, NH, DH, with_grads, outputs._poison))
        if with_grads and fail_training:
            raise MismatchError("dR: error 0.3 > 2 x torch's 0.01")

    monkeypatch.setattr(correctness, "check_backend", fake_check_backend)
    monkeypatch.setattr(correctness, "with_plans", lambda forward, backward: ("planned", forward, backward))
    monkeypatch.setattr(correctness, "device_limits", lambda index=None: H100_SXM)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(outputs, "_poison", False)
    check, call = correctness.GpuCheck("cuda:0"), Call("lstm", BF16, 64, 12, 16)
    forward = Plan("forward", feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM)[-1])
    partner = plan(problem(64, 12, 5, T=37), H100_SXM, "backward")
    fail_training = False
    assert check(forward, call) == ""
    assert runs == [(("planned", forward, partner), 5, 37, 12, 64, with_grads, True) for with_grads in (False, True)]
    fail_training, runs[:] = True, []
    assert check(forward, call) == "forward+backward: MismatchError: dR: error 0.3 > 2 x torch's 0.01"
    backward = Plan("backward", feasible_configs("lstm", BF16, 64, 12, 3, True, H100_SXM)[0])
    runs[:] = []
    assert check(backward, Call("lstm", BF16, 64, 12, 3)).startswith("forward+backward: MismatchError")
    partner = plan(problem(64, 12, 3, T=37), H100_SXM, "forward")
    assert runs == [(("planned", partner, backward), 3, 37, 12, 64, True, True)]  # training only
    assert not outputs._poison


@pytest.mark.parametrize("DH,NH", [(64, 3), (768, 1)], ids=["one SM", "split"])
def test_host_code_launches_the_winner_for_the_gpu_it_is_on(monkeypatch, DH, NH):
    """The backend's ops plan every call for the GPU the tensors are on (here CPU tensors, the
    H100's limits, the launches recorded) and so launch the tuned winners."""
    # the cluster backward's recompute of R h is a GEMM with fp32 output that CPU torch lacks
    cluster_backward = [c for c in feasible_configs("lstm", BF16, DH, NH, 5, True, H100_SXM)
                        if Plan("backward", c).strategy == "cluster"]
    result = tune_against_the_rules(DH, NH, B=5, reject=cluster_backward)
    monkeypatch.setattr(fused_backend, "device_limits", lambda index=None: H100_SXM)
    launched = record_launches(monkeypatch)
    x, R, b, states = inputs(DH, NH)
    y, final, saved = torch.ops.fusedrnn.cuda_fused_fwd(x, R, b, states, None, None, "lstm", True)
    torch.ops.fusedrnn.cuda_fused_bwd(torch.ones_like(y), torch.ones_like(final), x, R, b, states, None, None, y,
                                      final, saved, "lstm")
    winners = [result.forward.best.plan, result.backward.best.plan]
    assert all(w != rule(DH, NH, 5, w.direction) for w in winners)
    assert launched == [w.name_expression for w in winners]


def test_an_unchanged_cache_file_costs_one_stat(monkeypatch):
    tune_against_the_rules(64, 12)
    path = tuned.cache_path()
    settled = time.time() - 10  # older than a timestamp tick: its stat identifies it
    os.utime(path, (settled, settled))
    reads, read_text = [], tuned.Path.read_text
    monkeypatch.setattr(tuned.Path, "read_text", lambda self: reads.append(self) or read_text(self))
    winner = planned(64, 12, 16, "forward")
    assert len(reads) == 1
    for _ in range(3):
        assert planned(64, 12, 16, "forward") == winner and planned(64, 12, 16, "backward").why == "tuned winner"
    assert len(reads) == 1
    os.utime(path, (settled + 1, settled + 1))  # a changed stat: read again (same contents, same winner)
    assert planned(64, 12, 16, "forward") == winner and len(reads) == 2


def test_the_gates_rule_with_the_float64_torch_reference():
    """fusedrnn.testing, as the gate runs it (reference: the torch backend in float64), on a CPU:
    the torch backend passes against itself; a reference 10% off breaks the sanity bound."""
    from fusedrnn.testing import check_backend, torch_reference

    report = check_backend("torch", "gru", torch.float32, 3, 7, 2, 8, "cpu")
    assert set(report) == {"y", "final", "dx", "dR", "db", "dstates"}

    def off_by_a_tenth(*args, **kwargs):
        y, final = torch_reference(*args, **kwargs)
        return 1.1 * y, final

    with pytest.raises(MismatchError, match="y: relative error .* over the sanity bound"):
        check_backend("torch", "lstm", torch.float32, 3, 7, 2, 8, "cpu", with_grads=False, reference=off_by_a_tenth)


@pytest.mark.parametrize("B,needs_grad,DH,expected", [
    (256, False, 768, True),   # inference, a head over one SM, large batch: the alternating loop
    (256, True, 768, False),   # training: the fused kernels (measured faster with the backward)
    (64, False, 768, False),   # below the measured batch
    (256, False, 64, False),   # a head on one SM: the fused kernel
])
def test_auto_leaves_large_batch_inference_of_large_heads_to_the_alternating_loop(B, needs_grad, DH, expected):
    from fusedrnn.backends.cuda.fused.plan import alternating_is_faster
    from fusedrnn.backends.cuda.runtime.device import H100_SXM
    from fusedrnn.cells import get_cell
    from fusedrnn.problem import Problem

    problem = Problem(get_cell("lstm"), B, 1024, 768 // DH, DH, torch.bfloat16, torch.device("cuda", 0), False,
                      needs_grad)
    assert alternating_is_faster(problem, H100_SXM) is expected
    with_resets = Problem(get_cell("lstm"), B, 1024, 768 // DH, DH, torch.bfloat16, torch.device("cuda", 0), False,
                          needs_grad, True)
    assert alternating_is_faster(with_resets, H100_SXM) is expected  # cuda_alternating runs resets too


@pytest.mark.parametrize("cell,DH,B,family", [
    ("lstm", 64, 16, "one_sm"),     # a chain of 2 at DH 64: one SM (measured within 3% of clusters)
    ("elman", 64, 16, "one_sm"),    # a chain of 1: one SM, 0.32 against 0.41 ms
    ("slstm", 64, 16, "cluster"),   # a chain of 3 (logsigmoid, exp, the division): clusters, 0.56 against 0.87
    ("slstm", 32, 16, "one_sm"),    # under LONG_CHAIN_MIN_HEAD_DIM
    ("lstm", 128, 16, "cluster"),   # from DH 128 every cell: 0.59 against 0.78
    ("gru", 128, 64, "cluster"),    # 6 heads x 16 clusters of 4 sequences x 2 CTAs: one wave
    ("lstm", 128, 256, "one_sm"),   # clusters in waves: one SM
])
def test_the_forward_of_a_head_that_fits_one_sm_takes_clusters_where_they_measured_faster(cell, DH, B, family):
    chosen = rule_plan(cell, torch.bfloat16, DH, 768 // DH, B, True, H100_SXM, "forward", None)
    assert chosen.strategy == family, chosen


def test_the_cluster_backward_takes_x_in_rh_only_where_the_ring_does_not_fit():
    from fusedrnn.backends.cuda.fused.cluster_backward import choose_cluster_backward

    assert choose_cluster_backward("slstm", torch.bfloat16, 768, 16, 1, H100_SXM).x_in_rh
    for cell, DH in (("lstm", 768), ("lstm", 64), ("slstm", 256), ("gru", 768)):
        assert not choose_cluster_backward(cell, torch.bfloat16, DH, 16, 768 // DH, H100_SXM).x_in_rh


def test_recurrent_preactivations_with_x_added_in_the_layout_of_drec():
    """rh[n, b * T + t, g * DH + i] = sum_k R[g, n, i, k] h_prev[n, b * T + t, k] (+ x[b, t, g, n, i]),
    h_prev the initial state at t = 0 and y[b, t - 1] after."""
    G, NH, DH, B, T = 4, 2, 5, 3, 7
    R, x = torch.randn(G, NH, DH, DH), torch.randn(B, T, G, NH, DH)
    y, states = torch.randn(B, T, NH, DH), torch.randn(2, B, NH, DH)
    h_prev = torch.cat([states[0][:, None], y[:, :-1]], 1).reshape(B * T, NH, DH).transpose(0, 1)
    entering = entering_states(states, y)
    expected = torch.einsum("gnik,nsk->nsgi", R, h_prev)
    plain = launchers.recurrent_preactivations(R, entering, slice(0, B))
    torch.testing.assert_close(plain, expected.reshape(NH, B * T, G * DH))
    with_x = launchers.recurrent_preactivations(R, entering, slice(0, B), x)
    added = expected + x.permute(3, 0, 1, 2, 4).reshape(NH, B * T, G, DH)
    torch.testing.assert_close(with_x, added.reshape(NH, B * T, G * DH))
