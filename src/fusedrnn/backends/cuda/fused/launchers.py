"""Run a Plan: the buffers around each kernel family's launch, the launch
arguments from the kernel's contract (cxx.Kernel), and the dR / db
reductions after the backward. No choices: what runs is the plan's.

Inputs are contiguous, `lengths` int64 or None (forward_inputs does both), `resets`
[B, T] bool or None, packed into bits for the kernels (reset_words; csrc/resets.cuh: every
kernel family runs them)."""
from __future__ import annotations

import math

import torch

from ....cells import get_cell
from ....ops import outputs
from ....problem import checked_resets
from ...weight_gradient import EnteringStates, bias_gradient, drec_steps, dx_steps, entering_states, entering_view
from ..runtime.launch import launch
from .cluster import SPREAD_CELLS, ClusterConfig
from .cluster_backward import BATCH_TILE as CLUSTER_BACKWARD_TILE
from .cluster_backward import ClusterBackwardConfig
from .grid import SplitConfig
from .plan import Plan


def contiguous_inputs(x, R, b, states, lengths):
    lengths = None if lengths is None else lengths.to(device=x.device, dtype=torch.int64).contiguous()
    return x.contiguous(), R.contiguous(), b.contiguous(), states.contiguous(), lengths


def run_kernel(config, grid, x, /, cooperative: bool = False, cluster: int | None = None, **arguments):
    # x positional-only: the kernels' own argument named x comes in `arguments`
    launch(config.name_expression, config.source, grid, config.threads, config.shared_memory, x.device,
           *config.kernel.arguments(**arguments), cooperative=cooperative, cluster=cluster)


def kernel_resets(plan: Plan, resets, B: int, T: int, device):
    """resets [B, T] bool as the kernels read them (reset_words; None stays None). A kernel
    built without resets would run as if there were none: refused, never run."""
    if resets is None:  # a kernel built for resets reads them unconditionally: none are zeros
        return torch.zeros(reset_word_count(B), T, dtype=torch.int32, device=device) if plan.config.resets else None
    if not plan.config.resets:
        raise ValueError(f"resets: the plan's kernel does not read them ({plan}); plan.with_resets builds the one "
                         "that does")
    # the explicit path (planned.with_plans) skips rnn()'s checks
    return reset_words(checked_resets(resets, B, T, device))


def reset_word_count(B: int) -> int:
    return (B + 31) // 32


def reset_words(resets: torch.Tensor) -> torch.Tensor:
    """[B, T] flags (bool or uint8) as csrc/resets.cuh reads them: int32 [ceil(B / 32), T], the flag
    of sequence b at step t in bit b % 32 of word [b // 32, t] (bits past B zero). Device ops only,
    no copy from the host, so that a CUDA graph can capture it (bit 31 wraps to int32's sign bit;
    a sum of distinct bits never overflows). Three ops where B <= 32 or B % 32 == 0, four else: a
    call with resets at B=16 is bound by the host's time (docs/perf-notes.md, 2026-12-07), and
    the flags shift as bytes, promoted to int32 by the shift (no cast of their own)."""
    B, T = resets.shape
    W = reset_word_count(B)
    rows = min(B, 32)  # the sequences of a word: all of them where one word holds the batch
    flags = resets.view(torch.uint8)
    if B > 32 and B % 32:
        flags = torch.nn.functional.pad(flags, (0, 0, 0, 32 * W - B))
    shifts = torch.arange(rows, dtype=torch.int32, device=resets.device).view(1, rows, 1)
    return (flags.view(W, rows, T) << shifts).sum(1, dtype=torch.int32)


def forward(plan: Plan, x, R, b, states, lengths, cell: str, need_saved: bool, resets=None):
    """y, the final states and the states saved for the backward."""
    if plan.direction != "forward":
        raise ValueError(f"forward needs a forward plan, got {plan}")
    x, R, b, states, lengths = contiguous_inputs(x, R, b, states, lengths)
    config = plan.config
    B, T, _, NH, DH = x.shape
    y = outputs.empty((B, T, NH, DH), like=x)
    final = outputs.empty(states.shape, like=states)
    saved = outputs.empty(outputs.saved_states_shape(x, states, need_saved), like=x, dtype=torch.float32)
    common = dict(x=x, b=b, states=states, lengths=lengths, resets=kernel_resets(plan, resets, B, T, x.device), y=y,
                  final=final, B=B, T=T, NH=NH, DH=DH,
                  saved=saved if need_saved and get_cell(cell).num_states > 1 else None)
    if isinstance(config, ClusterConfig):
        if config.reg_tiles and DH % 2:  # register fragments load R a pair of columns (one word) at a time
            R = torch.nn.functional.pad(R, (0, 1, 0, 1))
        sequences = config.cluster_sequences
        if sequences != config.batch_tile and not config.options & SPREAD_CELLS:
            raise ValueError(f"{config}: a cluster runs fewer sequences than its batch tile only with SPREAD_CELLS")
        if sequences > config.most_sequences:
            raise ValueError(f"{config}: sequences={sequences} > {config.most_sequences}, the most its kernel holds")
        run_kernel(config, (NH, math.ceil(B / sequences), 1), x, cluster=config.parts, R=R, ldr=R.shape[-1],
                   sequences=sequences, **common)
    elif isinstance(config, SplitConfig):
        tiles = math.ceil(B / config.batch_tile)
        exchange = torch.empty((2, B, NH, DH), dtype=x.dtype, device=x.device)
        run_kernel(config, (NH * config.parts, tiles, 1), x, cooperative=True, R=R, exchange=exchange,
                   arrivals=arrival_flags(tiles, NH, config.parts, x.device), **common)
    else:
        run_kernel(config, (NH, math.ceil(B / config.batch_tile), 1), x, R=R, **common)
    return y, final, saved


def backward(plan: Plan, dy, dfinal, x, R, b, states, lengths, y, final, saved, cell: str, resets=None):
    """dx, dR, db and the gradient of the initial states (with resets: from every start)."""
    if plan.direction != "backward":
        raise ValueError(f"backward needs a backward plan, got {plan}")
    x, R, b, states, lengths = contiguous_inputs(x, R, b, states, lengths)
    dy, dfinal = dy.contiguous().to(x.dtype), dfinal.contiguous().to(x.dtype)
    config, spec = plan.config, get_cell(cell)
    B, T, _, NH, DH = x.shape
    dx = outputs.empty(x.shape, like=x)
    dstates = outputs.empty(states.shape, like=states)
    entering = entering_states(states, y, resets)  # dR reads it; the cluster's recompute of R h too
    # with resets, the kernels read h entering each step from its copy (csrc/resets.cuh)
    common = dict(x=x, R=R, b=b, states=states, lengths=lengths, resets=kernel_resets(plan, resets, B, T, x.device),
                  y=y, h_entering=None if resets is None else entering_view(entering.copy, B, T), saved=saved, dy=dy,
                  dfinal=dfinal, dx=dx, dstates=dstates, B=B, T=T, NH=NH, DH=DH)
    # drec in the storage type where the cell's gates are not sums; where they are, drec is dx (null here)
    drec = None if spec.gates_are_sums else outputs.empty((NH, B * T, spec.gates_r * DH), like=x)
    if isinstance(config, ClusterBackwardConfig):
        tiles = math.ceil(B / CLUSTER_BACKWARD_TILE)
        db_partial = outputs.empty((tiles, spec.gates_b, NH, DH), like=x, dtype=torch.float32)
        per_launch = config.launch_tiles or tiles
        for first in range(0, tiles, per_launch):  # a wave of clusters a launch (with_sequences)
            count = min(per_launch, tiles - first)
            sequences = slice(first * CLUSTER_BACKWARD_TILE, min(B, (first + count) * CLUSTER_BACKWARD_TILE))
            rh = recurrent_preactivations(R, entering, sequences, x[sequences] if config.x_in_rh else None)
            run_kernel(config, (NH, count, 1), x, cluster=config.parts, rh=rh, first_tile=first,
                       drec=drec, db_partial=db_partial, **common)
            del rh  # before the next launch's: one wave's R h held at a time
    else:
        tiles = math.ceil(B / config.batch_tile)
        db_partial = outputs.empty((tiles, spec.gates_b, NH, DH), like=x, dtype=torch.float32)
        if isinstance(config, SplitConfig):
            partials = torch.empty((2, config.parts, B, NH, config.DHP), dtype=torch.float32, device=x.device)
            run_kernel(config, (NH * config.parts, tiles, 1), x, cooperative=True, drec=drec, db_partial=db_partial,
                       partials=partials, arrivals=arrival_flags(tiles, NH, config.parts, x.device), **common)
        else:
            run_kernel(config, (NH, tiles, 1), x, drec=drec, db_partial=db_partial, **common)
    dR = entering.weight_gradient(dx_steps(dx) if drec is None else drec_steps(drec, DH), R.dtype)
    return dx, dR, bias_gradient(db_partial, b.dtype), dstates


def arrival_flags(tiles: int, NH: int, parts: int, device) -> torch.Tensor:
    """One flag a CTA, each on its own 128-byte line (csrc/grid_barrier.cuh), zeroed."""
    return torch.zeros((tiles, NH, parts, 32), dtype=torch.int32, device=device)


def recurrent_preactivations(R: torch.Tensor, entering: EnteringStates, sequences: slice,
                             x: torch.Tensor | None = None) -> torch.Tensor:
    """R h_{t-1} of every step of `sequences` (a slice of the batch) as the forward's product saw it,
    plus x [n, T, G, NH, DH] of those sequences where given (a cell whose gates are sums: the cluster
    backward then reads no x), fp32: [NH, n * T, G * DH] (the layout of drec). One batched GEMM
    with fp32 accumulation and output: rounded to bf16 (half the memory), the backward's
    pre-activations differ from the forward's near a kink, and elman_relu's gradient broke the
    2x rule on the H100 (2026-12-07: dx 0.012 against torch's 0.0003)."""
    G, NH, DH, _ = R.shape
    weights = R.permute(1, 3, 0, 2).reshape(NH, DH, G * DH)  # [n, k, g * DH + i] = R[g, n, i, k]
    rh = entering.times(weights, sequences)
    if x is not None:
        n, T = x.shape[:2]
        rh.add_(x.permute(3, 0, 1, 2, 4).reshape(NH, n * T, G * DH))
    return rh
