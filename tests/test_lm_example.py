"""The byte-level language-model example in examples/lm: its data, the sizes of
its three models, and a few training steps of each on CPU."""
import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "lm"))

import train as train_script  # noqa: E402
from data import (IGNORE, VOCAB_SIZE, PackedSampler, PaddedSampler, WindowSampler, load_corpus,  # noqa: E402
                  load_documents, split_corpus, split_documents)
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
    (["--model", "cudnn", "--layouts", "packed"], "cannot start a sequence afresh inside a row"),
    (["--layouts", "stacked"], "invalid choice: 'stacked'"),
])
def test_bad_command_line_input_fails_clearly(argv, message, capsys):
    tiny = ["--backend", "torch", "--width", "32", "--layers", "1", "--heads", "4", "--seq", "8", "--batch", "2",
            "--steps", "2", "--warmup", "1", "--eval-batches", "0"]  # small, should a check ever let it run
    with pytest.raises(SystemExit) as exit_info:
        train_script.main(tiny + argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# ---- documents packed with resets (issue 18), against one document a row

def _documents():
    return [torch.tensor(list(text), dtype=torch.uint8) for text in (b"abcde", b"XY", b"0123456789", b"pq")]


def test_packed_rows_reset_at_each_document_and_ignore_the_byte_across():
    documents = _documents()
    stream = torch.cat(documents)
    starts = {0, 5, 7, 17}
    sampler = PackedSampler(documents, seq_len=6, global_batch=50, seed=3)
    inputs, targets, resets = sampler.next_rows()
    seen = set()
    for row in range(50):
        # the row is a window of the stream: find where it begins
        begin = next(p for p in range(len(stream) - 6) if torch.equal(stream[p:p + 6].long(), inputs[row]))
        seen.add(begin)
        for i in range(6):
            assert bool(resets[row, i]) == (begin + i in starts)
            want = IGNORE if begin + i + 1 in starts else int(stream[begin + i + 1])
            assert int(targets[row, i]) == want
    assert len(seen) > 5


def test_padded_rows_hold_one_document_each_with_padding_ignored():
    documents = _documents()
    sampler = PaddedSampler(documents, seq_len=6, global_batch=40, seed=1)
    inputs, targets, resets = sampler.next_rows()
    assert resets is None and inputs.shape == targets.shape == (40, 6)
    texts = [bytes(d.tolist()) for d in documents]
    for row in range(40):
        real = int((targets[row] != IGNORE).sum())
        got = bytes(inputs[row, :real + 1].tolist())
        assert any(got in text for text in texts)  # a piece of one document, from its start or inside it
        assert (targets[row, real:] == IGNORE).all() and (targets[row, :real] != IGNORE).all()
        if real + 1 < 6:
            assert (inputs[row, real + 1:] == 0).all()  # padding after the document's end
            assert any(text.endswith(got) for text in texts)


def test_documents_are_the_corpus_topics():
    """The corpus is the topics joined by a blank line; the documents are those topics."""
    documents = load_documents()
    train_docs, val_docs = split_documents(documents)
    assert len(train_docs) + len(val_docs) == len(documents) > 50 and len(val_docs) > 0
    joined = b"\n\n".join(bytes(d.tolist()) for d in documents)
    assert joined == bytes(load_corpus().tolist())


@pytest.mark.parametrize("kind", ["fused", "attention"])
def test_resets_keep_documents_apart(kind):
    """A position's output depends on its own document's bytes only: change the bytes of the
    first document of a packed row and the second's outputs stay the same."""
    torch.manual_seed(0)
    model = build_model(kind, VOCAB_SIZE, backend="torch", **TINY).eval()
    tokens = torch.randint(0, VOCAB_SIZE, (2, 12))
    resets = torch.zeros(2, 12, dtype=torch.bool)
    resets[:, 5] = True
    changed = tokens.clone()
    changed[:, :5] = torch.randint(0, VOCAB_SIZE, (2, 5))
    with torch.no_grad():
        before, after = model(tokens, resets), model(changed, resets)
        without = model(changed)
    torch.testing.assert_close(before[:, 5:], after[:, 5:])
    assert not torch.allclose(before[:, 5:], without[:, 5:])


def test_train_script_compares_packed_and_padded_layouts(capsys):
    rows = train_script.main(["--model", "fused", "--layouts", "packed", "padded", "--backend", "torch",
                              "--width", "32", "--layers", "1", "--heads", "4", "--seq", "32", "--batch", "2",
                              "--steps", "3", "--warmup", "1", "--eval-batches", "1", "--log-every", "0"])
    assert [r["layout"] for r in rows] == ["packed", "padded"]
    for r in rows:
        assert r["targets_per_second"] <= r["tokens_per_second"] and r["val_loss"] > 0
    assert "| fusedrnn LSTM | packed |" in capsys.readouterr().out
