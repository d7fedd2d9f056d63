"""torch.distributed plumbing for the example: start-up from torchrun's
environment, wrapping with DDP or FSDP2, and reading the full parameters back."""
from __future__ import annotations

import os
import warnings

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

STRATEGIES = ("ddp", "fsdp2")


def init_from_torchrun() -> torch.device:
    """Join the process group torchrun describes: nccl with one GPU per process
    when CUDA is here, gloo on CPU otherwise. Returns this rank's device."""
    if "RANK" not in os.environ or "LOCAL_RANK" not in os.environ:
        raise SystemExit("launch this script with torchrun (or python -m torch.distributed.run), "
                         "e.g. torchrun --standalone --nproc-per-node 2 ...")
    if torch.cuda.is_available():
        local_rank = int(os.environ["LOCAL_RANK"])
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(f"local rank {local_rank} has no GPU: only {torch.cuda.device_count()} visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return device


def wrap(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    """DDP around the model, or FSDP2: each block sharded on its own, then the root."""
    if strategy == "ddp":
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp2":
        # the logits are a view of the head's output; we never modify them in place
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        for block in model.blocks:
            fully_shard(block)
        return fully_shard(model)
    raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")


def unwrap(model: nn.Module) -> nn.Module:
    """The model a wrapper holds (FSDP2 wraps in place, so it is the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def full_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Every parameter, whole, on every rank (FSDP2's shards are all-gathered)."""
    return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
            for name, p in unwrap(model).named_parameters()}


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0
