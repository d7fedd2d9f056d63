"""Tuned winners in the backend's dispatch, on a CPU: `tune` (fake timer, fake
correctness check) caches winners that `choose_config` / `choose_split` pick up
with `tuned_for`; anything else in the cache (another kind, a configuration
that no longer fits, a corrupted file) falls back to the heuristic; the
timer's forcing wins over the cache; the correctness gate keeps failing
candidates from being timed or cached; and the host code passes the GPU's name."""
import contextlib
import os
import time

import pytest
import torch

pytest.importorskip("constraint")

from fusedrnn.backends.cuda import fused, split  # noqa: E402
from fusedrnn.backends.cuda.fused import FusedConfig  # noqa: E402
from fusedrnn.backends.cuda.split import SplitConfig  # noqa: E402
from fusedrnn.testing import MismatchError  # noqa: E402
from fusedrnn.tune import H100_SXM, cache, tune  # noqa: E402
from fusedrnn.tune.search import Call  # noqa: E402
from fusedrnn.tune.space import feasible_configs  # noqa: E402
from fusedrnn.tune.timing import forced  # noqa: E402
from tune_fakes import FakeCheck, FakeTimer  # noqa: E402

BF16 = torch.bfloat16
GPU = H100_SXM.name
SMS = H100_SXM.sm_count


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FUSEDRNN_SPLIT", raising=False)
    return tmp_path


def heuristic(DH, NH, B, backward):
    if fused.fits_one_sm("lstm", BF16, DH, B):
        return fused.choose_config("lstm", BF16, DH, B, backward, NH, SMS)
    return split.choose_split("lstm", BF16, DH, B, NH, SMS, backward)


def tuned(DH, NH, B, backward, gpu=GPU, sm_count=SMS):
    if fused.fits_one_sm("lstm", BF16, DH, B):
        return fused.choose_config("lstm", BF16, DH, B, backward, NH, sm_count, tuned_for=gpu)
    return split.choose_split("lstm", BF16, DH, B, NH, sm_count, backward, tuned_for=gpu)


def tune_against_the_heuristic(DH, NH, B=16):
    """Tune with the heuristic's own picks measuring slow, so the winners differ from them."""
    slow = {heuristic(DH, NH, B, backward): 10.0 for backward in (False, True)}
    return tune("lstm", BF16, DH, NH, B, limits=H100_SXM, timer=FakeTimer(scale=slow), check=FakeCheck(),
                exhaustive=True, progress=False)


@pytest.mark.parametrize("DH,NH", [(64, 12), (768, 1)], ids=["one SM", "split"])
def test_the_next_call_runs_the_tuned_winners(DH, NH):
    result = tune_against_the_heuristic(DH, NH)
    for ranking in (result.forward, result.backward):
        winner, backward = ranking.best.config, ranking.backward
        assert winner != heuristic(DH, NH, 16, backward)
        assert tuned(DH, NH, 16, backward) == winner
        assert tuned(DH, NH, 9, backward) == winner  # same batch bucket
        assert tuned(DH, NH, 17, backward) == heuristic(DH, NH, 17, backward)  # another bucket: not tuned
        assert tuned(DH, NH, 16, backward, gpu="NVIDIA A100-SXM4-80GB") == heuristic(DH, NH, 16, backward)
        # without tuned_for (shipped_configs, supports, CPU code): the heuristic, as before
        assert heuristic(DH, NH, 16, backward) != winner


def test_a_corrupted_or_missing_cache_falls_back_to_the_heuristic(cache_dir):
    tune_against_the_heuristic(64, 12)
    path = cache.cache_path()
    text = path.read_text()
    for broken in (text[: len(text) // 3], text.replace('"depth": ', '"depth": 1'), "", "{"):
        path.write_text(broken)
        assert tuned(64, 12, 16, False) == heuristic(64, 12, 16, False)
    path.unlink()
    assert tuned(64, 12, 16, True) == heuristic(64, 12, 16, True)


def test_only_a_winner_of_the_callers_kind_that_still_fits_is_run():
    one_sm = feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM)[0]
    head = feasible_configs("lstm", BF16, 768, 1, 16, False, H100_SXM)[0]

    def cached(DH, NH, config):
        cache.store(cache.cache_key(GPU, "lstm", BF16, DH, NH, 16, False), config, 1.0)

    cached(64, 12, head)  # a SplitConfig where choose_config asks
    assert fused.choose_config("lstm", BF16, 64, 16, False, 12, tuned_for=GPU) == heuristic(64, 12, 16, False)
    cached(768, 1, one_sm)  # and the other way round
    assert split.choose_split("lstm", BF16, 768, 16, 1, SMS, tuned_for=GPU) == heuristic(768, 1, 16, False)
    too_big = FusedConfig("lstm", BF16, 64, False, NT=2, WN=32, depth=4)  # 2048 threads a block
    cached(64, 12, too_big)
    assert not too_big.fits() and tuned(64, 12, 16, False) == heuristic(64, 12, 16, False)
    cached(768, 1, head)
    assert tuned(768, 1, 16, False) == head
    assert tuned(768, 1, 16, False, sm_count=head.parts - 1) != head  # its CTAs no longer all resident
    other_width = FusedConfig("lstm", BF16, 64, False, WN=1, depth=4, vec=8)
    cached(60, 12, other_width)  # a row-copy width of 8 does not divide DH=60
    assert fused.choose_config("lstm", BF16, 60, 16, False, 12, tuned_for=GPU).vec == 4


def test_the_timers_forcing_wins_over_the_cache():
    result = tune_against_the_heuristic(64, 12)
    cached_forward, cached_backward = result.forward.best.config, result.backward.best.config
    candidate = next(c.config for c in result.forward.candidates if c.config != cached_forward)
    with forced(candidate):
        assert fused.choose_config("lstm", BF16, 64, 16, False, 12, SMS, tuned_for=GPU) == candidate
        # the other direction runs as the backend picks it: the cached winner
        assert fused.choose_config("lstm", BF16, 64, 16, True, 12, SMS, tuned_for=GPU) == cached_backward
    assert fused.choose_config("lstm", BF16, 64, 16, False, 12, SMS, tuned_for=GPU) == cached_forward
    head = tune_against_the_heuristic(768, 1).forward
    candidate = next(c.config for c in head.candidates if c.config != head.best.config)
    with forced(candidate):
        assert split.choose_split("lstm", BF16, 768, 16, 1, SMS, tuned_for=GPU) == candidate


def test_a_candidate_that_fails_the_check_is_reported_never_timed_nor_cached(capsys):
    space = feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM)
    slow = {c: 10.0 for c in space[1:]}  # the failing favourite would otherwise win
    favourite = min(space, key=lambda c: FakeTimer(scale=slow)(c, Call("lstm", BF16, 64, 12, 16)))
    timer, check = FakeTimer(scale=slow), FakeCheck(fail=[favourite])
    result = tune("lstm", BF16, 64, 12, 16, limits=H100_SXM, timer=timer, check=check, exhaustive=True)
    assert set(check.calls) == set(timer.prepared[0]) and favourite not in timer.calls
    assert [c.config for c in result.forward.failed] == [favourite]
    assert "MismatchError" in result.forward.failed[0].failed_check
    assert favourite not in [c.config for c in result.forward.timed]
    assert result.forward.best.config != favourite and tuned(64, 12, 16, False) == result.forward.best.config
    assert f"failed the correctness check, not timed: {favourite.name_expression}" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"rejected .*: \d+ by the correctness check"):
        tune("lstm", BF16, 128, 6, 16, limits=H100_SXM, timer=FakeTimer(), progress=False,
             check=FakeCheck(fail=feasible_configs("lstm", BF16, 128, 6, 16, False, H100_SXM)))
    assert tuned(128, 6, 16, False) == heuristic(128, 6, 16, False)  # nothing cached


def test_gpu_check_forces_the_candidate_on_poisoned_outputs(monkeypatch):
    """The default check's control flow, with the kernel run replaced by a fake."""
    from fusedrnn.backends import outputs
    from fusedrnn.tune import correctness

    runs = []

    def fake_check_backend(backend, cell, dtype, B, T, NH, DH, device, with_grads):
        chosen = fused.choose_config(cell, dtype, DH, B, config.backward, NH)
        runs.append((backend, B, T, NH, DH, with_grads, chosen, outputs._poison))
        if with_grads and fail_training:
            raise MismatchError("dR: error 0.3 > 2 x torch's 0.01")

    monkeypatch.setattr(correctness, "check_backend", fake_check_backend)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(outputs, "_poison", False)
    check, call = correctness.GpuCheck("cuda:0"), Call("lstm", BF16, 64, 12, 16)
    config = feasible_configs("lstm", BF16, 64, 12, 16, False, H100_SXM)[-1]
    fail_training = False
    assert check(config, call) == ""
    assert runs == [("cuda_fused", 5, 37, 12, 64, with_grads, config, True) for with_grads in (False, True)]
    fail_training, runs[:] = True, []
    assert check(config, call) == "forward+backward: MismatchError: dR: error 0.3 > 2 x torch's 0.01"
    config = feasible_configs("lstm", BF16, 64, 12, 3, True, H100_SXM)[0]
    runs[:] = []
    assert check(config, Call("lstm", BF16, 64, 12, 3)).startswith("forward+backward: MismatchError")
    assert [(r[1], r[5]) for r in runs] == [(3, True)]  # a backward configuration: training only
    assert not outputs._poison


def test_host_code_runs_the_winner_for_the_gpu_it_is_on(monkeypatch):
    """fused.forward / backward and split_forward / split_backward look the winner up under
    the GPU's name (the launch replaced: CPU tensors; split heads on the grid, which the tuner covers)."""
    monkeypatch.setenv("FUSEDRNN_SPLIT", "grid")
    launched = []
    for module in (fused, split):
        monkeypatch.setattr(module, "launch", lambda name, *args, **kwargs: launched.append(name))
        monkeypatch.setattr(module, "gpu_name", lambda device: GPU)
    monkeypatch.setattr(fused, "_sm_count", lambda device: SMS)
    for DH, NH in ((64, 3), (768, 1)):
        result = tune_against_the_heuristic(DH, NH, B=5)
        x = torch.zeros(5, 7, 4, NH, DH, dtype=BF16)
        R, b = torch.zeros(4, NH, DH, DH, dtype=BF16), torch.zeros(4, NH, DH, dtype=BF16)
        states = torch.zeros(2, 5, NH, DH, dtype=BF16)
        y, final, saved = fused.forward(x, R, b, states, None, "lstm", True)
        fused.backward(y, final, x, R, b, states, None, y, final, saved, "lstm")
        winners = [result.forward.best.config, result.backward.best.config]
        assert all(w != heuristic(DH, NH, 5, w.backward) for w in winners)
        assert launched == [config.name_expression for config in winners]
        launched.clear()


def test_an_unchanged_cache_file_costs_one_stat(monkeypatch):
    tune_against_the_heuristic(64, 12)
    path = cache.cache_path()
    settled = time.time() - 10  # older than a timestamp tick: its stat identifies it
    os.utime(path, (settled, settled))
    reads, read_text = [], cache.Path.read_text
    monkeypatch.setattr(cache.Path, "read_text", lambda self: reads.append(self) or read_text(self))
    winner = tuned(64, 12, 16, False)
    assert len(reads) == 1
    for _ in range(3):
        assert tuned(64, 12, 16, False) == winner and tuned(64, 12, 16, True) is not None
    assert len(reads) == 1
    os.utime(path, (settled + 1, settled + 1))  # a changed stat: read again (same contents, same winner)
    assert tuned(64, 12, 16, False) == winner and len(reads) == 2


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
