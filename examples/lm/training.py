"""The training step and the timed training loop shared by train.py,
train_distributed.py and check_distributed.py."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from data import IGNORE

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def autocast(device: torch.device, dtype: str):
    """torch.autocast to `dtype` ("bf16" | "fp16"); nothing for "fp32"."""
    low = AUTOCAST_DTYPES[dtype]
    return contextlib.nullcontext() if low is None else torch.autocast(device.type, dtype=low)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU and, when distributed, for every rank (for timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over every position of the batch with a target (not IGNORE)."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def train_step(model: nn.Module, optimiser: torch.optim.Optimizer, inputs: Tensor, targets: Tensor,
               device: torch.device, dtype: str, scaler: Optional[torch.amp.GradScaler] = None,
               clip: Optional[float] = None, resets: Optional[Tensor] = None) -> Tensor:
    """One optimiser step on the mean loss of (inputs, targets); returns the loss."""
    with autocast(device, dtype):
        loss = next_token_loss(model(inputs) if resets is None else model(inputs, resets), targets)
    optimiser.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimiser)
    if clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    if scaler is None:
        optimiser.step()
    else:
        scaler.step(optimiser)
        scaler.update()
    return loss.detach()


@dataclass
class TrainResult:
    losses: list[float]
    tokens_per_second: float  # over all ranks, after the warm-up steps: every position of every row
    timed_seconds: float
    targets_per_second: float  # ... the positions with a target: bytes of documents, not padding


def train(model: nn.Module, sampler, optimiser: torch.optim.Optimizer, *, steps: int, warmup: int,
          device: torch.device, dtype: str, clip: Optional[float] = 1.0, log_every: int = 0,
          log: Callable[[str], None] = print) -> TrainResult:
    """`steps` training steps; the clock starts after `warmup` of them (compiles,
    caches) and covers the global batch of every rank."""
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup: expected 0 <= warmup < steps={steps}, got {warmup}")
    scaler = torch.amp.GradScaler(device.type) if dtype == "fp16" else None
    model.train()
    losses = []
    targets_timed = torch.zeros((), dtype=torch.int64, device=device)
    for step in range(steps):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        inputs, targets, resets = sampler.next_rows()
        losses.append(train_step(model, optimiser, inputs, targets, device, dtype, scaler, clip, resets))
        if step >= warmup:
            targets_timed += (targets != IGNORE).sum()
        if log_every and (step + 1) % log_every == 0:
            log(f"step {step + 1:5d}  loss {losses[-1].item():.4f}")
    synchronize(device)
    seconds = time.perf_counter() - start
    tokens = (steps - warmup) * sampler.global_batch * sampler.seq_len
    if dist.is_initialized():
        dist.all_reduce(targets_timed)
    return TrainResult(torch.stack(losses).float().cpu().tolist(), tokens / seconds, seconds,
                       targets_timed.item() / seconds)


@torch.no_grad()
def evaluate(model: nn.Module, sampler, batches: int, device: torch.device, dtype: str) -> float:
    """Mean next-byte loss over `batches` batches (averaged over ranks when distributed)."""
    model.eval()
    total = torch.zeros((), device=device)
    for _ in range(batches):
        inputs, targets, resets = sampler.next_rows()
        with autocast(device, dtype):
            total += next_token_loss(model(inputs) if resets is None else model(inputs, resets), targets)
    model.train()
    if dist.is_initialized():
        dist.all_reduce(total)
        total /= dist.get_world_size()
    return total.item() / batches
