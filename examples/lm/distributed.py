"""torch.distributed plumbing for the example: start-up from torchrun's
environment and a clean shut-down, wrapping with DDP or FSDP2, and reading the
full parameters back."""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import warnings
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

STRATEGIES = ("ddp", "fsdp2")
# The meshes wrap() made: DTensor's caches keep them alive, and each holds its process groups.
_MESHES: list[DeviceMesh] = []


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


@contextlib.contextmanager
def process_group() -> Iterator[torch.device]:
    """torchrun's process group (init_from_torchrun) for the body of a `with`,
    yielding this rank's device; shut down on the way out, however it is left.

    On a normal exit every rank first meets at a barrier, so that no rank tears
    its connections down while another is still in a collective."""
    device = init_from_torchrun()
    completed = False
    try:
        yield device
        dist.barrier()
        completed = True
    finally:
        shutdown(check=completed)


def shutdown(check: bool = True) -> None:
    """Destroy the process group so that none of its threads outlives it.

    destroy_process_group() only unregisters the group; the group itself, and
    with it gloo's worker threads and its socket loop, lives on for as long as
    anything holds it. FSDP2 holds it through its DeviceMesh, and DTensor's
    sharding caches keep every mesh alive to the end of the interpreter. A gloo
    worker that then drops its last collective's tensors has to take the GIL to
    do so; if the interpreter is already finalising, Python ends that thread
    with pthread_exit, whose unwinding through the (noexcept) destructor of the
    work calls std::terminate: "terminate called without an active exception",
    SIGABRT, at exit, after a run that succeeded. So: collect the wrapped models
    (FSDP2's state is a cycle), make the meshes let go of their groups, then
    destroy, which joins the threads. With `check`, warn if gloo's are left."""
    if not dist.is_initialized():
        return
    gc.collect()
    for mesh in _MESHES:
        getattr(mesh, "_pg_registry", {}).clear()  # the only strong reference a mesh has to a group
    _MESHES.clear()
    dist.destroy_process_group()
    left = gloo_threads()
    if check and left:
        warnings.warn(f"threads of a destroyed process group still running: {', '.join(left)} "
                      "(something still holds the group; the process may abort at exit)", RuntimeWarning)


def gloo_threads() -> list[str]:
    """The names of this process's gloo threads: its socket loop and the process
    groups' workers (Linux; none elsewhere)."""
    if not sys.platform.startswith("linux"):
        return []
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if "gloo" in name:
            names.append(name)
    return sorted(names)


def wrap(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    """DDP around the model, or FSDP2 on a 1-D mesh of every rank: each block
    sharded on its own, then the root."""
    if strategy == "ddp":
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp2":
        # the logits are a view of the head's output; we never modify them in place
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        _MESHES.append(mesh)  # for shutdown()
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        return fully_shard(model, mesh=mesh)
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
