"""The fixed buffers the cuda_alternating step loop works in, how a call's T
steps are cut into chunks, and the bounded cache that keeps both (with the
CUDA graphs captured on them) between calls.

A CUDA graph bakes every kernel argument and GEMM pointer, so the loop runs
entirely on buffers that live as long as its graphs: R copied into a GEMM
layout, the states, the GEMM results, the per-chunk staging buffers, and the
call block (csrc/alternating_call.cuh) through which the caller's tensors are
reached. T is not part of a workspace: a chunk of c steps is one graph, and
any T is a run of chunks (64, ..., 64, then powers of two for the rest).
Device-agnostic (plain torch): the CPU tests run the same code.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import torch

from ....cells import get_cell
from ....ops import outputs
from ... import step_graphs
from ...step_graphs import StepGraphs

MAX_CHUNK = 64  # steps a graph captures: 2 * 64 + 2 nodes, captured in milliseconds
CHUNK_BUDGET = 64 * 2**20  # bytes of staging buffers a workspace may hold
MAX_WORKSPACES = 4  # kept at once (each pins its buffers and graphs) ...
WORKSPACE_BUDGET = 2**30  # ... and at most this many bytes of them, beyond the most recent one
# csrc/alternating_call.cuh, struct AlternatingCall: 10 pointers, then T and the steps done (last, where
# step_graphs.advance counts them)
CALL_FIELDS = ("x", "initial", "resets", "y_in", "dy", "saved_in", "y", "saved", "dx", "drec", "steps", "done")
DONE = CALL_FIELDS.index("done")


@dataclass(frozen=True)
class Shape:
    """What a workspace (and its graphs) serves; T, lengths and the saved states are per call."""
    device: torch.device
    stream: int  # the caller's stream: two streams must not share buffers
    backward: bool
    cell: str
    dtype: torch.dtype  # storage type of x, R, b, states
    product_dtype: torch.dtype  # what the GEMMs write: float32, or dtype where torch cannot
    B: int
    NH: int
    DH: int

    @property
    def elements(self) -> int:
        return self.B * self.NH * self.DH


def step_bytes(shape: Shape) -> int:
    """Staging-buffer bytes one step of a chunk takes."""
    spec, size, product = get_cell(shape.cell), shape.dtype.itemsize, shape.product_dtype.itemsize
    per_element = spec.gates_x * size  # x
    if shape.backward:  # dy, saved states, h, the recomputed products
        per_element += size + 4 * (spec.num_states - 1) + size + spec.gates_r * product
    return shape.elements * per_element + shape.B  # and a reset flag a sequence


def chunk_capacity(shape: Shape) -> int:
    """The largest chunk: a power of two up to MAX_CHUNK whose staging fits CHUNK_BUDGET."""
    capacity = MAX_CHUNK
    while capacity > 1 and capacity * step_bytes(shape) > CHUNK_BUDGET:
        capacity //= 2
    return capacity


@dataclass
class Workspace:
    shape: Shape
    buffers: dict[str, torch.Tensor]
    steps: StepGraphs  # the step loop's graphs, captured on these buffers; its capacity is the staging's
    pinned: bool = False  # a caller's own graph capture used it: that graph may replay on it any time

    @property
    def capacity(self) -> int:
        """The largest chunk of steps the staging buffers hold."""
        return self.steps.capacity

    def __getattr__(self, name):
        try:
            return self.__dict__["buffers"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.buffers.values())

    def chunk_view(self, name: str, shape: tuple) -> torch.Tensor:
        """The front of a staging buffer as a contiguous tensor of `shape` (a chunk smaller
        than the capacity uses the front, so every GEMM operand stays contiguous)."""
        flat = self.buffers[name]
        count = 1
        for n in shape:
            count *= n
        return flat[:count].view(shape)


def make_workspace(shape: Shape) -> Workspace:
    spec = get_cell(shape.cell)
    B, NH, DH, S = shape.B, shape.NH, shape.DH, spec.num_states
    capacity = chunk_capacity(shape)
    # NaN-filled under test (outputs.poisoned), like every output: nothing may read what no step wrote
    storage, fp32, product = (torch.empty(0, device=shape.device, dtype=d)
                              for d in (shape.dtype, torch.float32, shape.product_dtype))
    empty = outputs.empty
    buffers = dict(
        call=torch.zeros(len(CALL_FIELDS), device=shape.device, dtype=torch.int64),
        W=empty((NH, DH, spec.gates_r * DH), storage),  # W[n, j, g*DH + i] = R[g, n, i, j]
        bias=empty((spec.gates_b, NH, DH), storage),
        lengths=torch.zeros(B, device=shape.device, dtype=torch.int64),
        x_chunk=empty((capacity * B * spec.gates_x * NH * DH,), storage),
        # [chunk][B]: whether the step after each position's starts afresh (csrc/alternating_stage.cuh)
        reset_chunk=torch.zeros(capacity * B, device=shape.device, dtype=torch.uint8),
    )
    if not shape.backward:
        buffers.update(
            state=empty((S, B, NH, DH), fp32),
            h_operand=empty((NH, B, DH), storage),
            rec=empty((NH, B, spec.gates_r * DH), product),
        )
    else:
        buffers.update(
            dy_chunk=empty((capacity * B * NH * DH,), storage),
            saved_chunk=empty((max(1, capacity * (S - 1) * B * NH * DH),), fp32),
            h_chunk=empty((NH * capacity * B * DH,), storage),
            rec_chunk=empty((NH * capacity * B * spec.gates_r * DH,), product),
            d_state=empty((S, B, NH, DH), fp32),
            d_initial=empty((S, B, NH, DH), fp32),  # what the resets hand to the initial states, zeroed a call
            db_acc=empty((B, spec.gates_b, NH, DH), fp32),
            drec_step=empty((NH, B, spec.gates_r * DH), storage),
            dh=empty((NH, B, DH), product),
        )
    return Workspace(shape, buffers, StepGraphs(capacity))


_WORKSPACES: collections.OrderedDict[Shape, Workspace] = collections.OrderedDict()


def workspace(shape: Shape) -> Workspace:
    """The workspace of `shape`, most recently used last; the least recently used
    ones go beyond MAX_WORKSPACES or WORKSPACE_BUDGET bytes (not while the caller
    captures a graph: releasing one waits for the device), but never one a caller's
    own graph capture used."""
    found = _WORKSPACES.pop(shape, None) or make_workspace(shape)
    _WORKSPACES[shape] = found
    if step_graphs.capturing(shape.device):
        found.pinned = True  # kept for good: the caller's graph bakes its buffers
        return found  # inside a caller's capture nothing may wait; the next eager call trims
    while True:  # the bounds count the cache's own workspaces: pinned ones are the callers' graphs'
        kept = [w for w in _WORKSPACES.values() if not w.pinned]
        if len(kept) <= 1 or (len(kept) <= MAX_WORKSPACES and sum(w.nbytes for w in kept) <= WORKSPACE_BUDGET):
            return found
        _release(_WORKSPACES.pop(kept[0].shape))


def clear_workspaces() -> None:
    while _WORKSPACES:
        _release(_WORKSPACES.popitem()[1])


def _release(dropped: Workspace) -> None:
    if dropped.steps.graphs and dropped.shape.device.type == "cuda":
        torch.cuda.synchronize(dropped.shape.device)  # a replay may still run on its buffers
