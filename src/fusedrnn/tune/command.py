"""`fusedrnn tune`: tune call shapes on the GPU and print the timed
configurations, fastest first, or print the largest head dim per cell and
dtype (`--table`). With `--device PRESET` nothing runs on a GPU: the recorded
limits of that GPU are used and the shapes get the cost model's ranking
instead of timings."""
from __future__ import annotations

import torch

from ..arguments import UsageError, positive_int
from ..backends.cuda.fused.plan import strategy_of
from ..backends.cuda.runtime.device import PRESETS, device_limits, preset
from ..cells import CELLS
from .search import model_ranking, to_time, tune
from .table import largest_head_dims

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def add_arguments(parser) -> None:
    parser.add_argument("--cell", choices=list(CELLS), default="lstm")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bfloat16")
    parser.add_argument("--dh", type=positive_int, nargs="+", default=[64, 128, 768],
                        help="head dims, one per shape (default: 64 128 768)")
    parser.add_argument("--nh", type=positive_int, nargs="+", default=[12, 6, 1],
                        help="heads, one per head dim of --dh (default: 12 6 1)")
    parser.add_argument("--batch", type=positive_int, default=16)
    parser.add_argument("--top-k", type=positive_int, default=3,
                        help="configurations timed per kernel, best by the model")
    parser.add_argument("--exhaustive", action="store_true", help="time every feasible configuration")
    parser.add_argument("--table", action="store_true", help="print the largest head dim per cell and dtype")
    parser.add_argument("--device", choices=sorted(PRESETS),
                        help="a recorded GPU instead of the current one (model only, runs on a CPU)")


def describe(config) -> str:
    """A configuration in a few words."""
    strategy = strategy_of(config)
    if strategy == "cluster":
        registers = getattr(config, config.REGISTER_FIELD)
        return f"cluster of {config.parts} CTAs a head: {config.ROWS} rows, {registers} register tiles, depth {config.depth}"
    if strategy == "grid":
        return (f"grid, {config.parts} CTAs a head: {config.ROWS} rows x {config.KSPLIT} K slices, "
                f"NT={config.NT}, depth {config.depth}")
    registers = ", R in registers" if config.r_in_registers else ""
    return f"one SM a head: NT={config.NT}, WN={config.WN}, depth {config.depth}{registers}"


def run(args) -> None:
    if len(args.dh) != len(args.nh) and not args.table:
        raise UsageError(f"--nh: expected one head count per head dim of --dh ({len(args.dh)}: "
                         f"{' '.join(map(str, args.dh))}), got {len(args.nh)}: {' '.join(map(str, args.nh))}")
    if not args.device and not torch.cuda.is_available():
        raise UsageError(f"no CUDA GPU here; --device {'|'.join(sorted(PRESETS))} uses a recorded one")
    limits = preset(args.device) if args.device else device_limits()
    if args.table:
        print_table(limits)
        return
    dtype = DTYPES[args.dtype]
    print(f"{limits.name}: {args.cell} {args.dtype}, B={args.batch}")
    print("| DH x NH | kernel | configuration | model ms | measured ms |\n|---|---|---|---|---|")
    for DH, NH in zip(args.dh, args.nh):
        try:
            shape_rankings = rankings(args, limits, dtype, DH, NH)
        except ValueError as error:  # no configuration fits this shape on this GPU
            raise UsageError(f"--dh {DH} --nh {NH}: {error}") from None
        for ranking in shape_rankings:
            shown = to_time(ranking.candidates, args.top_k) if args.device else ranking.timed + ranking.failed
            for candidate in shown:
                measured = "—" if candidate.measured_ms is None else f"{candidate.measured_ms:.3f}"
                if candidate.failed_check is not None:
                    measured = "failed the correctness check"
                print(f"| {DH}x{NH} | {'backward' if ranking.backward else 'forward'} | {describe(candidate.config)} "
                      f"| {candidate.estimated_ms:.3f} | {measured} |")


def rankings(args, limits, dtype, DH, NH):
    """Timed on the GPU, or (with a preset) the model's ranking alone."""
    if args.device:
        return [model_ranking(args.cell, dtype, DH, NH, args.batch, backward, limits) for backward in (False, True)]
    result = tune(args.cell, dtype, DH, NH, args.batch, top_k=args.top_k, exhaustive=args.exhaustive, limits=limits)
    return [result.forward, result.backward]


def print_table(limits) -> None:
    print(f"Largest head dim of the cuda_fused kernels on {limits.name} ({limits.arch}, "
          f"{limits.shared_memory_per_block // 1024} KiB shared memory a block), B=16:")
    print("| cell | dtype | one SM a head | split, forward | split, training |\n|---|---|---|---|---|")
    for row in largest_head_dims(limits):
        print(f"| {row.cell} | {str(row.dtype)[6:]} | {row.one_sm} | {row.split_forward} | {row.split_training} |")
