"""The call block through which the stepwise kernels (stepwise.py) reach a call's tensors,
and the loops that keep one with its CUDA graphs between calls.

A block is one int64 tensor on the device: each tensor's address in the order of FORWARD or
BACKWARD, then T and the steps done. `set_call`, a kernel, writes it at the start of a call
(so a caller's own graph capture records it too); a launch reads its tensors and its step,
done + its position in the chunk, from it. A chunk's launches captured once (step_graphs)
then serve every call of the same shape, whatever its tensors and T.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .. import step_graphs
from ..step_graphs import StepGraphs

# the tensors of a call, in the block's order (h_even and h_odd: h entering even and odd steps)
# (h_odd right after h_even: a launch finds the h of its step's parity at slot h_even + t % 2)
FORWARD = ("x", "R", "b", "initial", "lengths", "resets", "h_even", "h_odd", "states", "y", "saved")
BACKWARD = ("x", "R", "b", "lengths", "resets", "y", "h0", "saved", "dy", "carried", "dinitial", "drec", "dx", "db")
MAX_TENSORS = 14  # set_call's pointer arguments
CHUNK = 64  # steps a graph captures
MAX_LOOPS = 8  # loops kept at once: each pins its block and its graphs


def fields(names: tuple[str, ...]) -> dict[str, int]:
    """Each tensor's slot in the block, then those of T and the steps done."""
    slots = {name: i for i, name in enumerate(names)}
    slots.update(T=len(names), done=len(names) + 1)
    return slots


@triton.jit
def address(call_ptr, slot, DT: tl.constexpr, ALIGNED: tl.constexpr):
    """The tensor at `slot` of the block, as a pointer to DT; ALIGNED: every tensor of the call
    starts on 16 bytes (what Triton assumes of an argument it specialised), so loads vectorize."""
    pointer = tl.load(call_ptr + slot).to(tl.pointer_type(DT), bitcast=True)
    if ALIGNED:
        pointer = tl.multiple_of(pointer, 16)
    return pointer


@triton.jit
def _store_address(call_ptr, slot: tl.constexpr, pointer, COUNT: tl.constexpr):
    if slot < COUNT:
        tl.store(call_ptr + slot, pointer.to(tl.int64, bitcast=True))


@triton.jit(do_not_specialize=["T"])
def set_call_kernel(call_ptr, T, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, COUNT: tl.constexpr):
    _store_address(call_ptr, 0, p0, COUNT)
    _store_address(call_ptr, 1, p1, COUNT)
    _store_address(call_ptr, 2, p2, COUNT)
    _store_address(call_ptr, 3, p3, COUNT)
    _store_address(call_ptr, 4, p4, COUNT)
    _store_address(call_ptr, 5, p5, COUNT)
    _store_address(call_ptr, 6, p6, COUNT)
    _store_address(call_ptr, 7, p7, COUNT)
    _store_address(call_ptr, 8, p8, COUNT)
    _store_address(call_ptr, 9, p9, COUNT)
    _store_address(call_ptr, 10, p10, COUNT)
    _store_address(call_ptr, 11, p11, COUNT)
    _store_address(call_ptr, 12, p12, COUNT)
    _store_address(call_ptr, 13, p13, COUNT)
    tl.store(call_ptr + COUNT, T.to(tl.int64))
    tl.store(call_ptr + COUNT + 1, tl.zeros((), tl.int64))


@dataclass(frozen=True)
class LoopKey:
    """What a loop's graphs bake: the device and stream, and every compile-time choice of its kernel."""
    device: torch.device
    stream: int  # the caller's stream: two streams must not share a block
    backward: bool
    B: int
    constants: tuple  # the kernel's constexprs and launch options, sorted (name, value) pairs


@dataclass
class Loop:
    key: LoopKey
    call: torch.Tensor  # the block, int64
    steps: StepGraphs


_LOOPS: collections.OrderedDict[LoopKey, Loop] = collections.OrderedDict()
# the loops of calls inside a caller's own graph capture: that graph bakes its block's address and
# may replay at any time, so each such call gets a block of its own, never released
_CAPTURED: list[Loop] = []


def loop(key: LoopKey) -> Loop:
    """The loop of `key`, most recently used last; the least recently used beyond MAX_LOOPS go.
    Inside a caller's capture, a loop of its own (kept for good; nothing is released there:
    releasing a loop waits for the device)."""
    slots = len(BACKWARD if key.backward else FORWARD) + 2
    if step_graphs.capturing(key.device):
        _CAPTURED.append(Loop(key, torch.zeros(slots, dtype=torch.int64, device=key.device), StepGraphs(CHUNK)))
        return _CAPTURED[-1]
    found = _LOOPS.pop(key, None)
    if found is None:
        found = Loop(key, torch.zeros(slots, dtype=torch.int64, device=key.device), StepGraphs(CHUNK))
    _LOOPS[key] = found
    while len(_LOOPS) > MAX_LOOPS:
        dropped = _LOOPS.popitem(last=False)[1]
        if dropped.steps.graphs:
            torch.cuda.synchronize(dropped.key.device)  # a replay may still run on its block
    return found


def aligned(tensors) -> bool:
    """Whether every tensor starts on 16 bytes."""
    return all(t.data_ptr() % 16 == 0 for t in tensors)


def set_call(block: torch.Tensor, T: int, tensors: list[torch.Tensor]) -> None:
    """Point `block` at `tensors` (in FORWARD's or BACKWARD's order), T, and no steps done."""
    count = len(tensors)
    if count != block.shape[0] - 2 or count > MAX_TENSORS:
        raise ValueError(f"set_call: expected {block.shape[0] - 2} tensors (at most {MAX_TENSORS}), got {count}")
    padded = list(tensors) + [tensors[0]] * (MAX_TENSORS - count)
    set_call_kernel[(1,)](block, T, *padded, COUNT=count, num_warps=1)
