"""Step loops replayed from CUDA graphs, shared by the backends that launch kernels every
time step (cuda_alternating; the Triton backend's stepwise form of large heads).

A launch costs the host 5-30 us, more than a step's kernel at small batches, so a loop of
T launches a step is host-bound. A graph bakes every launch argument, so the loop's kernels
reach the caller's tensors through a call block on the device (pointers, T and the steps
done so far) written at the start of each call, and run on buffers that outlive the graphs.
T is not part of a graph: a chunk of c steps is one graph, and any T is a run of chunks
(full ones, then powers of two for the rest), the step counter advanced after each.
Device-agnostic: on the CPU (and inside a caller's capture) the chunks are launched."""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Callable

import torch


def chunk_plan(T: int, capacity: int) -> list[int]:
    """T steps as full chunks, then the binary digits of the rest: every size a power
    of two, so a loop needs at most log2(capacity) + 1 graphs for any T."""
    if T < 0 or capacity < 1 or capacity & (capacity - 1):
        raise ValueError(f"chunk_plan: expected T >= 0 and a power-of-two capacity, got T={T}, {capacity}")
    plan = [capacity] * (T // capacity)
    rest = T % capacity
    size = capacity // 2
    while size:
        if rest & size:
            plan.append(size)
        size //= 2
    return plan


def chunk_sizes(capacity: int) -> list[int]:
    """Every chunk size chunk_plan can use: capacity, capacity / 2, ..., 1."""
    return [1 << j for j in reversed(range(capacity.bit_length()))]


_LOCKS: dict[torch.device, threading.RLock] = {}
_LOCKS_LOCK = threading.Lock()


def call_lock(device: torch.device) -> threading.RLock:
    """Held from a call's first write to its loop's buffers (the call block) to its last read of
    them: two host threads on one stream share a loop, and a call enqueued between another's
    writes and its replays would run on the other's tensors. One a device: threads driving other
    GPUs (DataParallel's) do not wait for each other."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(device, threading.RLock())


def serialized(function):
    """`function(tensor, ...)` (a call that writes its loop's buffers, launches, and reads them)
    under the call lock of its first argument's device."""
    @functools.wraps(function)
    def under_lock(first, *args, **kwargs):
        with call_lock(first.device):
            return function(first, *args, **kwargs)
    return under_lock


@dataclass
class StepGraphs:
    """The graphs of one loop's buffers: a graph a chunk size, captured at its first call."""
    capacity: int  # the largest chunk, a power of two
    graphs: dict[int, object] = field(default_factory=dict)  # chunk size -> torch.cuda.CUDAGraph
    warm: bool = False  # its first call ran (kernels loaded, libraries set up) and its graphs are captured
    pool: object = None  # the graphs' shared memory pool (they allocate next to nothing)


def capturing(device: torch.device) -> bool:
    """Whether the caller is capturing a CUDA graph on the current stream of `device`."""
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def graphs_enabled(device: torch.device, graphs: bool) -> bool:
    return device.type == "cuda" and graphs and not capturing(device)  # inside a caller's capture: launch into it


@functools.lru_cache(maxsize=None)
def capture_stream(device: torch.device):
    return torch.cuda.Stream(device)


def run_steps(graphs: StepGraphs, device: torch.device, T: int, run_chunk: Callable[[int], None],
              enabled: bool = True, warm_up: Callable[[int], None] | None = None) -> None:
    """All T steps as chunks (`run_chunk(c)` launches c steps and advances the step counter):
    replayed graphs, or launches where graphs are off. The first call launches its chunks on the
    capture stream (compiling and loading the kernels, setting cuBLAS up there), runs
    `warm_up(c)` for every chunk size (what a chunk size first needs outside a capture), then
    captures one graph per chunk size for the calls after. `run_chunk` must launch the same
    kernels on the same buffers at every call."""
    plan = chunk_plan(T, graphs.capacity)
    if not graphs_enabled(device, enabled):
        for chunk in plan:
            run_chunk(chunk)
        return
    if graphs.warm:
        for chunk in plan:
            graphs.graphs[chunk].replay()
        return
    side, current = capture_stream(device), torch.cuda.current_stream(device)
    sizes = chunk_sizes(graphs.capacity)
    side.wait_stream(current)
    try:
        with torch.cuda.stream(side):
            for chunk in plan:
                run_chunk(chunk)
            if warm_up is not None:
                for chunk in sizes:  # nothing reads what these write before a chunk rewrites it
                    warm_up(chunk)
    finally:  # (also where a launch failed: the caller's tensors are not freed under running kernels)
        current.wait_stream(side)
    for chunk in sizes:
        graphs.graphs[chunk] = capture(graphs, run_chunk, chunk, side)
    graphs.warm = True


def advance(block: torch.Tensor, steps: int) -> None:
    """A call block's count of steps done (its last word), after a chunk of `steps`: a device op,
    so a captured chunk advances it at each replay."""
    done = block.shape[0] - 1
    block[done:done + 1].add_(steps)


def capture(graphs: StepGraphs, run_chunk: Callable[[int], None], chunk: int, side):
    """One chunk as a graph; capture records, it runs nothing."""
    if graphs.pool is None:
        graphs.pool = torch.cuda.graph_pool_handle()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=graphs.pool, stream=side, capture_error_mode="thread_local"):
        run_chunk(chunk)
    return graph
