"""A byte-level corpus that ships with Python itself, so the example needs no
download: the help topics of the standard library's `pydoc_data` (about 460 KB
of English prose and code on CPython 3.11/3.12)."""
from __future__ import annotations

import pydoc_data.topics
import torch
from torch import Tensor

VOCAB_SIZE = 256  # bytes
IGNORE = -100  # a target the loss skips (F.cross_entropy's ignore_index)
LAYOUTS = ("windows", "packed", "padded")


def load_corpus() -> Tensor:
    """The topics, in sorted order, as a 1-D uint8 tensor of UTF-8 bytes."""
    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[name] for name in sorted(topics))
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)


def load_documents() -> list[Tensor]:
    """The topics, in sorted order, each its own document: 1-D uint8 tensors of UTF-8 bytes."""
    topics = pydoc_data.topics.topics
    texts = (topics[name].encode("utf-8") for name in sorted(topics))
    return [torch.frombuffer(bytearray(text), dtype=torch.uint8) for text in texts if text]


def split_documents(documents: list[Tensor], val_fraction: float = 0.1) -> tuple[list[Tensor], list[Tensor]]:
    """(train, val): the first documents train, the last `val_fraction` of them validate."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
    boundary = int(len(documents) * (1 - val_fraction))
    return documents[:boundary], documents[boundary:]


def split_corpus(tokens: Tensor, val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """(train, val): the first bytes train, the last `val_fraction` validate."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
    boundary = int(len(tokens) * (1 - val_fraction))
    return tokens[:boundary], tokens[boundary:]


class WindowSampler:
    """Random contiguous windows of `seq_len + 1` bytes: inputs and next-byte targets.

    Every rank draws the same global batch from a generator seeded alike and
    keeps its own contiguous block of rows, so the ranks' shards, stacked in
    rank order, are exactly the batch one process would draw.
    """

    def __init__(self, tokens: Tensor, seq_len: int, global_batch: int, seed: int,
                 rank: int = 0, world_size: int = 1, device="cpu"):
        if seq_len < 1 or seq_len + 1 > len(tokens):
            raise ValueError(f"seq_len: expected 1 <= seq_len < {len(tokens)} (the corpus size), got {seq_len}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
        if global_batch < 1 or global_batch % world_size:
            raise ValueError(
                f"global_batch: expected a positive multiple of the number of processes ({world_size}), "
                f"got {global_batch}")
        self.tokens = tokens.to(device)
        self.seq_len, self.global_batch = seq_len, global_batch
        self.local_batch = global_batch // world_size
        self.rows = slice(rank * self.local_batch, (rank + 1) * self.local_batch)
        self.generator = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(seq_len + 1, device=device)

    def next_batch(self) -> tuple[Tensor, Tensor]:
        """(inputs, targets), each [local_batch, seq_len] int64 on the sampler's device."""
        windows = self.tokens[self.next_positions()].long()
        return windows[:, :-1], windows[:, 1:]

    def next_positions(self) -> Tensor:
        """The next batch's windows as positions in the corpus, [local_batch, seq_len + 1]."""
        last_start = len(self.tokens) - self.seq_len - 1
        starts = torch.randint(0, last_start + 1, (self.global_batch,), generator=self.generator)
        return starts[self.rows].to(self.tokens.device)[:, None] + self.offsets

    def next_rows(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """(inputs, targets, resets): the form every sampler gives training.py (no resets here)."""
        return (*self.next_batch(), None)


class PackedSampler(WindowSampler):
    """Documents packed end to end: each row a random window of their concatenation, with
    `resets` [local_batch, seq_len] True at each document's first byte, where the model's
    recurrence starts afresh (fusedrnn's `resets`; attention masks across documents), and
    the target before it ignored (a document's first byte cannot be told from the last
    one's end). Every position is a real byte: no padding."""

    def __init__(self, documents: list[Tensor], seq_len: int, global_batch: int, seed: int,
                 rank: int = 0, world_size: int = 1, device="cpu"):
        super().__init__(torch.cat(documents), seq_len, global_batch, seed, rank, world_size, device)
        starts = torch.zeros(len(self.tokens), dtype=torch.bool)
        starts[torch.tensor([0] + [len(d) for d in documents[:-1]]).cumsum(0)] = True
        self.starts = starts.to(device)

    def next_rows(self) -> tuple[Tensor, Tensor, Tensor]:
        positions = self.next_positions()
        windows, starts = self.tokens[positions].long(), self.starts[positions]
        targets = windows[:, 1:].masked_fill(starts[:, 1:], IGNORE)
        return windows[:, :-1], targets, starts[:, :-1]


class PaddedSampler:
    """One document a row, as a model without resets needs them: a random document from a
    random offset (a whole window where it is longer), zero bytes after its end, whose
    targets are ignored. `resets` is None: every row starts afresh at its first byte."""

    def __init__(self, documents: list[Tensor], seq_len: int, global_batch: int, seed: int,
                 rank: int = 0, world_size: int = 1, device="cpu"):
        self.packed = PackedSampler(documents, seq_len, global_batch, seed, rank, world_size, device)
        self.lengths = torch.tensor([len(d) for d in documents])
        self.first = (self.lengths.cumsum(0) - self.lengths).to(device)
        self.seq_len, self.global_batch = seq_len, global_batch

    def next_rows(self) -> tuple[Tensor, Tensor, None]:
        p = self.packed
        chosen = torch.randint(0, len(self.lengths), (self.global_batch,), generator=p.generator)
        spare = (self.lengths[chosen] - self.seq_len - 1).clamp(min=0)  # where a long document may start
        offset = (torch.rand(self.global_batch, generator=p.generator) * (spare + 1)).long()
        chosen, offset = chosen[p.rows], offset[p.rows]
        begin = (self.first[chosen.to(self.first.device)] + offset.to(self.first.device))[:, None]
        end = (self.first + self.lengths.to(self.first.device))[chosen.to(self.first.device)][:, None]
        positions = begin + p.offsets
        inside = positions < end
        windows = p.tokens[positions.clamp(max=len(p.tokens) - 1)].long().masked_fill(~inside, 0)
        targets = windows[:, 1:].masked_fill(~inside[:, 1:], IGNORE)
        return windows[:, :-1], targets, None
