"""The Triton backend's planner: the one place that chooses what a call runs.

A TritonPlan is what one kernel launch, forward or backward, runs beyond the
call's shapes and cell: the batch tile, warps, pipelining, the kernel's
switches, and whether the forward saves the recurrent products R h for the
backward (saved.py). `plan(problem, backward, variant)` computes it from the
call; the backend's ops (__init__.py) plan every call as "shipped", and tests,
probes and scripts that compare the variants of variants.py (or plans of their
own, by dataclasses.replace) pass plans to the launchers explicitly
(explicit.py). Nothing else picks an option, and no state outside the
arguments changes the choice.

Imports no triton: the custom op's fake kernel plans a call too (saved_like).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...cells import Cell
from ...problem import Problem
from .shapes import padded_head_dim, tile_width
from .variants import VARIANTS

# fused multiply-adds, as every kernel was measured with: Triton's default until 3.9, which
# warns that 3.10 turns it off unless asked for (TRITON_DEFAULT_FP_FUSION); so asked for
FP_FUSION = dict(enable_fp_fusion=True)

# Per padded head dim, the products the forward saves ("fp32") for the backward
# unless a variant says otherwise. None: measured slower than recomputing them
# (docs/perf-notes.md, 2026-11-26).
SAVED_PRODUCTS: dict[int, str] = {}


@dataclass(frozen=True)
class TritonPlan:
    """What one launch of the forward (backward=False) or backward kernel runs.
    Names in capitals are the kernel's compile-time constants of the same name."""

    backward: bool
    BLOCK_B: int  # sequences per program; the grid is (NH, ceil(B / BLOCK_B))
    num_warps: int
    num_stages: int
    STACK_GATES: bool  # one product for all gates (stacked.py)
    FAST_MATH: bool  # MUFU tanh (tanh.approx.f32)
    PRECISION: str  # tl.dot's input_precision
    WIDE_OFFSETS: bool  # int64 offsets: some tensor of the call has 2**31 elements
    products: str  # R h the forward saves and the backward reads: "none" or "fp32"
    # the backward kernel's own switches (False in a forward plan; backward.py says what they do)
    PREFETCH: bool = False
    DB_EACH_STEP: bool = False
    DX_DB_FROM_DREC: bool = False

    def constants(self) -> dict:
        """The kernel's compile-time constants this plan sets."""
        chosen = dict(BLOCK_B=self.BLOCK_B, STACK_GATES=self.STACK_GATES, FAST_MATH=self.FAST_MATH,
                      PRECISION=self.PRECISION, WIDE_OFFSETS=self.WIDE_OFFSETS)
        if self.backward:
            chosen.update(PREFETCH=self.PREFETCH, DB_EACH_STEP=self.DB_EACH_STEP,
                          DX_DB_FROM_DREC=self.DX_DB_FROM_DREC)
        return chosen

    def options(self) -> dict:
        """Triton's compile options for the launch."""
        return dict(num_warps=self.num_warps, num_stages=self.num_stages, **FP_FUSION)


def plan(problem: Problem, backward: bool, variant: str = "shipped") -> TritonPlan:
    """The plan of one direction of `problem`: what ships, or the named variant of variants.py."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    chosen = VARIANTS[variant]
    spec = problem.cell
    fp32 = problem.dtype == torch.float32
    DH_P = padded_head_dim(problem.head_dim)
    options = launch_options(DH_P, backward, spec.gates_r, chosen.get("backward" if backward else "forward", {}))
    options["STACK_GATES"] = stacks_gates(options["STACK_GATES"], spec, fp32)
    if backward:  # only where dx and db equal drec gate by gate
        options["DX_DB_FROM_DREC"] = options["DX_DB_FROM_DREC"] and spec.gates_are_sums
    return TritonPlan(
        backward=backward, BLOCK_B=batch_tile(problem.batch, DH_P), WIDE_OFFSETS=wide_offsets(problem),
        FAST_MATH=problem.dtype == torch.bfloat16,  # MUFU tanh for bf16 only; tools/triton_probe.py plans it off
        # fp32 inputs get true fp32 products, not tf32: the backend must match torch's fp32
        PRECISION="ieee" if fp32 else "tf32",
        products=chosen.get("products") or SAVED_PRODUCTS.get(DH_P, "none"), **options)


def wide_offsets(problem: Problem) -> bool:
    """Whether a buffer a kernel indexes may reach 2**31 elements (x, dx, the recurrent products or
    drec, the saved states: each at most (T + 1) x B x NH x DH x the most gates or states): int64
    offsets then (int32 else)."""
    spec = problem.cell
    largest = ((problem.steps + 1) * problem.batch * problem.heads * problem.head_dim
               * max(spec.gates_x, spec.gates_r, spec.num_states))
    return largest >= 2**31


def batch_tile(B: int, DH_P: int) -> int:
    """Sequences per program: 16 (the tensor cores' smallest N) and up while a
    [DH_P, BLOCK_B] fp32 tile stays within 512 elements (2 registers a thread
    with 8 warps: a step holds ~25 live tiles; wider tiles spilled). Smaller tiles mean more
    programs for the SMs. A few buckets, so a new batch size rarely recompiles."""
    return min(max(16, 512 // DH_P), tile_width(B))


def launch_options(DH_P: int, backward: bool, gates_r: int = 4, overrides: dict | None = None) -> dict:
    """Warps, pipelining depth and kernel switches per padded head dim, checked against
    the register and shared memory budget of an H100 by tests/test_triton_compile.py;
    `overrides` (a variant's, variants.py) replace them. plan() then applies
    DX_DB_FROM_DREC only to cells whose gates are sums, STACK_GATES as stacks_gates says."""
    if backward and gates_r == 1 and DH_P >= 64:
        # Triton 3.6 on sm_90 computes a wrong dx (or faults) for single-gate cells
        # with these tile shapes under one warpgroup, or two with prefetch;
        # tools/triton_probe.py reproduces it. These options measured correct; no variant overrides them.
        return dict(num_warps=8, num_stages=1, PREFETCH=DH_P <= 64, DB_EACH_STEP=False, DX_DB_FROM_DREC=False,
                    STACK_GATES=False)
    if backward:
        # measured on the H100 (docs/perf-notes.md), 64x12 / 128x6: one warpgroup beats
        # two up to DH=64 (3.0 vs 4.4 ms); prefetching the next step's loads beats
        # loading late (3.0 vs 3.1; 4.9 vs 5.4); reducing db every step frees registers
        # and pays with one warpgroup (2.6 vs 3.0), not with two (5.1 vs 4.9)
        # 2026-11-26, LSTM bf16 fwd+bwd: stacked gates with dx, db derived from drec run
        # 128x6 in 5.72 ms (7.01 before), 64x12 in 3.69 (3.86); variants.py, perf-notes.md
        small = DH_P <= 64
        options = dict(num_warps=4 if small else 8, num_stages=1, PREFETCH=True, DB_EACH_STEP=small,
                       DX_DB_FROM_DREC=DH_P >= 64, STACK_GATES=DH_P >= 64)
    else:
        # a stacked forward is faster at 128x6 (1.68 vs 1.86 ms) and slower at 64x12 (1.22 vs 0.92)
        options = dict(num_warps=4 if DH_P <= 64 else 8, num_stages=1, STACK_GATES=DH_P >= 128)
    return {**options, **(overrides or {})}


def stacks_gates(requested: bool, spec: Cell, fp32: bool) -> bool:
    """Whether a kernel stacks the gates as asked: not for one gate (one product
    anyway), nor for fp32, whose stacked tiles take twice the room: GRU's backward
    at DH=128 asked for 272 KiB of shared memory on the H100, LSTM's at DH=64
    spills to an 8.5 KB stack (the measured gains were in bf16)."""
    return requested and spec.gates_r > 1 and not fp32


@dataclass(frozen=True)
class StepwisePlan:
    """What one direction of the stepwise kernels (stepwise.py: heads whose R is not held on chip,
    a launch a step) runs: a program's tile of BLOCK_U units by BLOCK_B sequences, the K tile of
    its products, its warps, and whether the launches replay from CUDA graphs (step_graphs.py;
    launched one by one where not, as on a CPU). Capitals: the kernels' constants of that name."""
    backward: bool
    BLOCK_U: int
    BLOCK_B: int
    BLOCK_K: int
    num_warps: int
    FAST_MATH: bool
    PRECISION: str
    WIDE_OFFSETS: bool
    graphs: bool = True

    def constants(self) -> dict:
        return dict(BLOCK_U=self.BLOCK_U, BLOCK_B=self.BLOCK_B, BLOCK_K=self.BLOCK_K, FAST_MATH=self.FAST_MATH,
                    PRECISION=self.PRECISION, WIDE_OFFSETS=self.WIDE_OFFSETS)

    def options(self) -> dict:
        return dict(num_warps=self.num_warps, **FP_FUSION)


def stepwise_plan(problem: Problem, backward: bool) -> StepwisePlan:
    """Tiles of 64 units by 32 sequences (no wider than the call: tl.dot takes 16 at least), K in
    tiles of 64, 4 warps; 8 for the backward of a cell of more than two states (sLSTM's spills
    464 bytes with 4). The fastest of nine tiles at 768x1, B=64 and B=256, forward and backward
    (H100, 2026-12-08, tools/fused_step_probe.py: 9.9 / 36.0 ms and 11.8 / 41.5 ms against 10.7 /
    42.6 and 15.3 / 78.5 with 32 x 32); each compiles for sm_90 without spills for every cell
    under Triton 3.6 (tests/test_triton_stepwise.py)."""
    DH_P = padded_head_dim(problem.head_dim)
    return StepwisePlan(
        backward=backward, BLOCK_U=min(64, DH_P), BLOCK_B=min(32, tile_width(problem.batch)), BLOCK_K=min(64, DH_P),
        num_warps=8 if backward and problem.cell.num_states > 2 else 4, FAST_MATH=problem.dtype == torch.bfloat16,
        PRECISION="ieee" if problem.dtype == torch.float32 else "tf32", WIDE_OFFSETS=wide_offsets(problem))
