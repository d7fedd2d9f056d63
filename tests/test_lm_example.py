"""The byte-level language-model example in examples/lm: its data, the sizes of
its three models, and a few training steps of each on CPU."""
import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "lm"))

import train as train_script  # noqa: E402
from data import VOCAB_SIZE, WindowSampler, load_corpus, split_corpus  # noqa: E402
from model import KINDS, build_model, count_parameters  # noqa: E402
from training import train  # noqa: E402

TINY = {"width": 32, "layers": 2, "heads": 4}


def test_corpus_is_deterministic_and_split_in_order():
    tokens = load_corpus()
    assert tokens.dtype == torch.uint8 and len(tokens) > 100_000
    assert torch.equal(tokens, load_corpus())
    train_tokens, val_tokens = split_corpus(tokens)
    assert torch.equal(torch.cat((train_tokens, val_tokens)), tokens)
    assert len(val_tokens) == pytest.approx(0.1 * len(tokens), abs=1)


def test_rank_shards_stack_into_the_global_batch():
    tokens = split_corpus(load_corpus())[0]
    whole = WindowSampler(tokens, seq_len=12, global_batch=6, seed=5)
    shards = [WindowSampler(tokens, seq_len=12, global_batch=6, seed=5, rank=r, world_size=3) for r in range(3)]
    for _ in range(2):
        inputs, targets = whole.next_batch()
        pieces = [s.next_batch() for s in shards]
        assert torch.equal(torch.cat([p[0] for p in pieces]), inputs)
        assert torch.equal(torch.cat([p[1] for p in pieces]), targets)
        assert inputs.shape == (6, 12) and torch.equal(inputs[:, 1:], targets[:, :-1])


@pytest.mark.parametrize("kwargs, match", [
    ({"global_batch": 3, "world_size": 2}, "multiple of the number of processes"),
    ({"seq_len": 10**7}, "seq_len"),
    ({"rank": 2, "world_size": 2}, "rank"),
])
def test_sampler_rejects_bad_sizes(kwargs, match):
    options = {"seq_len": 8, "global_batch": 4, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        WindowSampler(split_corpus(load_corpus())[0], **options)


@pytest.mark.parametrize("sizes", [TINY, {"width": 768, "layers": 4, "heads": 12}])
def test_the_three_models_have_about_the_same_parameters(sizes):
    with torch.device("meta"):
        counts = {kind: count_parameters(build_model(kind, **sizes)) for kind in KINDS}
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts


@pytest.mark.parametrize("kind", KINDS)
def test_every_model_runs_a_few_training_steps(kind):
    torch.manual_seed(0)
    model = build_model(kind, backend="torch", **TINY)
    sampler = WindowSampler(split_corpus(load_corpus())[0], seq_len=16, global_batch=4, seed=0)
    assert model(sampler.next_batch()[0]).shape == (4, 16, VOCAB_SIZE)
    result = train(model, sampler, torch.optim.AdamW(model.parameters(), lr=3e-3), steps=3, warmup=1,
                   device=torch.device("cpu"), dtype="fp32", log_every=0)
    assert len(result.losses) == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.tokens_per_second > 0


def test_fused_model_loss_decreases():
    torch.manual_seed(0)
    model = build_model("fused", backend="torch", **TINY)
    sampler = WindowSampler(split_corpus(load_corpus())[0], seq_len=32, global_batch=8, seed=0)
    losses = train(model, sampler, torch.optim.AdamW(model.parameters(), lr=3e-3), steps=20, warmup=0,
                   device=torch.device("cpu"), dtype="fp32", log_every=0).losses
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 1.0, losses


def test_compare_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "results" / "compare.json"
    train_script.main(["--compare", "--backend", "torch", "--width", "32", "--layers", "1", "--heads", "4",
                       "--seq", "8", "--batch", "2", "--steps", "2", "--warmup", "1", "--eval-batches", "1",
                       "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| fusedrnn LSTM |" in printed and "| causal attention (SDPA) |" in printed
    results = json.loads(out.read_text())["results"]
    assert [r["model"] for r in results] == list(KINDS)
    assert all(r["tokens_per_second"] > 0 and r["val_loss"] > 0 for r in results)


@pytest.mark.parametrize("argv, message", [
    (["--width", "30", "--heads", "4"], "heads: expected a divisor of width=30"),
    (["--steps", "5", "--warmup", "5"], "--warmup 5 must be less than --steps 5"),
    (["--batch", "0"], "expected a positive integer"),
    (["--compare", "--model", "fused"], "not allowed with argument"),
])
def test_bad_command_line_input_fails_clearly(argv, message, capsys):
    tiny = ["--backend", "torch", "--width", "32", "--layers", "1", "--heads", "4", "--seq", "8", "--batch", "2",
            "--steps", "2", "--warmup", "1", "--eval-batches", "0"]  # small, should a check ever let it run
    with pytest.raises(SystemExit) as exit_info:
        train_script.main(tiny + argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
