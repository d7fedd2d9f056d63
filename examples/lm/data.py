"""A byte-level corpus that ships with Python itself, so the example needs no
download: the help topics of the standard library's `pydoc_data` (about 460 KB
of English prose and code on CPython 3.11/3.12)."""
from __future__ import annotations

import pydoc_data.topics
import torch
from torch import Tensor

VOCAB_SIZE = 256  # bytes


def load_corpus() -> Tensor:
    """The topics, in sorted order, as a 1-D uint8 tensor of UTF-8 bytes."""
    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[name] for name in sorted(topics))
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)


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
        last_start = len(self.tokens) - self.seq_len - 1
        starts = torch.randint(0, last_start + 1, (self.global_batch,), generator=self.generator)
        starts = starts[self.rows].to(self.tokens.device)
        windows = self.tokens[starts[:, None] + self.offsets].long()
        return windows[:, :-1], windows[:, 1:]
