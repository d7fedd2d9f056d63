"""`fusedrnn demo`: state tracking, where recurrence beats attention.

The task is the running product in a finite group: parity (Z2) by default, or
composition of permutations (S3). At every position the model must name the
product of all tokens so far. A multi-head fusedrnn LSTM and a causal-attention
Transformer with no more parameters train the same way on sequences of
`train_len`; both are then scored at that length and at 4x that length.
"""
from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

import fusedrnn

from .ops import registry
from .arguments import UsageError, positive_float, positive_int, seed_int
from .nn import LSTM


def group_table(task: str) -> torch.Tensor:
    """Multiplication table [n, n] of the group the task composes."""
    if task == "parity":
        return torch.tensor([[0, 1], [1, 0]])
    if task == "s3":
        perms = list(itertools.permutations(range(3)))
        index = {p: i for i, p in enumerate(perms)}
        return torch.tensor([[index[tuple(a[j] for j in b)] for b in perms] for a in perms])
    raise ValueError(f"task: expected 'parity' or 's3', got {task!r}")


def make_batch(table: torch.Tensor, batch: int, length: int, generator: torch.Generator):
    tokens = torch.randint(0, table.shape[0], (batch, length), generator=generator)
    labels = torch.empty_like(tokens)
    state = torch.zeros(batch, dtype=torch.long)  # the identity is element 0 in both tables
    for t in range(length):
        state = table[state, tokens[:, t]]
        labels[:, t] = state
    return tokens, labels


class RecurrentModel(nn.Module):
    def __init__(self, vocab: int, hidden: int, heads: int, backend: str):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = LSTM(hidden, hidden, batch_first=True, num_heads=heads, backend=backend)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        return self.head(self.rnn(self.embed(tokens))[0])


class AttentionModel(nn.Module):
    """A causal Transformer (SDPA inside) with sinusoidal positions, so it can
    at least be run past its training length."""

    def __init__(self, vocab: int, width: int, heads: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)
        self.width = width

    def positions(self, length: int, device) -> torch.Tensor:
        pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, self.width, 2, device=device) * (-math.log(10000.0) / self.width))
        table = torch.zeros(length, self.width, device=device)
        table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        return table

    def forward(self, tokens):
        length = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        h = self.embed(tokens) + self.positions(length, tokens.device)
        return self.head(self.encoder(h, mask=mask, is_causal=True))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _attention_like(reference: nn.Module, vocab: int, args) -> AttentionModel:
    """The widest attention model with no more parameters than `reference`."""
    budget, width, step = _count(reference), 2 * args.heads, 2 * args.heads
    while _count(AttentionModel(vocab, width + step, args.heads, args.layers)) <= budget:
        width += step
    return AttentionModel(vocab, width, args.heads, args.layers)


@dataclass
class Result:
    name: str
    params: int
    accuracy: dict
    seconds: float


def _accuracy(model, table, length, device, generator, batches=4, batch=64) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for _ in range(batches):
            tokens, labels = make_batch(table, batch, length, generator)
            pred = model(tokens.to(device)).argmax(-1).cpu()
            correct += (pred == labels).sum().item()
            total += labels.numel()
    model.train()
    return correct / total


def train(name, model, table, args, device) -> Result:
    generator = torch.Generator().manual_seed(args.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    bar = tqdm(range(args.steps), desc=f"{name:>18}", leave=True, dynamic_ncols=True)
    for step in bar:
        tokens, labels = make_batch(table, args.batch, args.train_len, generator)
        logits = model(tokens.to(device))
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.to(device).reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - start
    evaluation = torch.Generator().manual_seed(args.seed + 1)
    accuracy = {n: _accuracy(model, table, n, device, evaluation) for n in (args.train_len, 4 * args.train_len)}
    return Result(name, _count(model), accuracy, seconds)


def check(args, device: torch.device) -> None:
    """What parsing cannot see: heads that divide the width, and a --backend
    that runs the demo's LSTM on `device` (one tiny call of its head shape); a
    UsageError if not."""
    if args.hidden % args.heads:
        raise UsageError(f"--heads: expected a divisor of --hidden={args.hidden}, got {args.heads}")
    DH = args.hidden // args.heads
    x = torch.zeros(1, 1, 4, args.heads, DH, device=device, requires_grad=True)
    R = torch.zeros(4, args.heads, DH, DH, device=device)
    b = torch.zeros(4, args.heads, DH, device=device)
    try:
        fusedrnn.rnn(x, R, b, cell="lstm", backend=args.backend)
    except ValueError as error:
        raise UsageError(f"--backend: {args.backend} cannot run the demo's LSTM on {device}: {error}") from None


def run(args) -> list[Result]:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    check(args, device)
    torch.manual_seed(args.seed)
    table = group_table(args.task)
    vocab = table.shape[0]
    print(f"task: running product in {args.task} ({vocab} elements), train length {args.train_len}, "
          f"{args.steps} steps of batch {args.batch}, device {device}")
    recurrent = RecurrentModel(vocab, args.hidden, args.heads, args.backend)
    models = [("fusedrnn LSTM", recurrent), ("causal attention", _attention_like(recurrent, vocab, args))]
    results = [train(name, model.to(device), table, args, device) for name, model in models]
    long = 4 * args.train_len
    print(f"\n| model | parameters | accuracy at T={args.train_len} | accuracy at T={long} | train time |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r.name} | {r.params:,} | {r.accuracy[args.train_len]:.1%} | {r.accuracy[long]:.1%} "
              f"| {r.seconds:.0f} s |")
    chance = 1 / vocab
    print(f"\nchance is {chance:.1%}. The recurrence tracks the state at any length; attention, with no "
          "state to carry, has to recompute the whole prefix at every position.")
    return results


def device_name(text: str) -> str:
    """--device: auto, cpu, or a CUDA (or MPS) device this machine has."""
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"got {text!r}, but there is no CUDA GPU here; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"got {text!r}, but there are {torch.cuda.device_count()} CUDA GPUs here")
        return text
    if device.type == "mps" and torch.backends.mps.is_available():
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")


def backend_name(text: str) -> str:
    """--backend: auto or a fusedrnn backend that is available here."""
    if text == "auto":
        return text
    report = fusedrnn.backends()
    if text not in report:
        raise argparse.ArgumentTypeError(f"expected auto or one of {', '.join(report)}, got {text!r}")
    if not report[text].available:
        raise argparse.ArgumentTypeError(f"{text} is not available here: {report[text].reason}")
    return text


def add_arguments(parser) -> None:
    parser.add_argument("--task", default="parity", choices=["parity", "s3"])
    parser.add_argument("--train-len", type=positive_int, default=64)
    parser.add_argument("--steps", type=positive_int, default=600)
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--hidden", type=positive_int, default=64)
    parser.add_argument("--heads", type=positive_int, default=4, help="LSTM and attention heads; divides --hidden")
    parser.add_argument("--layers", type=positive_int, default=2, help="attention layers")
    parser.add_argument("--lr", type=positive_float, default=3e-3)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--device", type=device_name, default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--backend", type=backend_name, default="auto",
                        help=f"fusedrnn backend for the LSTM: auto (default) or one of {', '.join(registry.names())}")
