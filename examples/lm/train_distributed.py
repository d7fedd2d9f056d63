"""Train the byte-level language model data-parallel, with DDP or FSDP2.

  torchrun --standalone --nproc-per-node 2 examples/lm/train_distributed.py --strategy fsdp2

nccl with one GPU per process when CUDA is here, gloo on CPU otherwise. --batch
is the global batch: each rank trains on its own rows of it. Rank 0 prints the
loss (of its rows) and the global tokens/s, and writes the JSON.
"""
from __future__ import annotations

import argparse

import torch
import torch.distributed as dist

from data import VOCAB_SIZE, WindowSampler, load_corpus, split_corpus
from distributed import STRATEGIES, is_main_process, process_group, wrap
from model import build_model, count_parameters
from options import add_model_choice, add_model_options, add_training_options, check_options
from report import markdown_table, mean_tail, write_run
from training import evaluate, train


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=STRATEGIES, required=True)
    add_model_choice(parser)
    add_model_options(parser)
    add_training_options(parser, dtypes=("bf16", "fp32"))
    args = parser.parse_args(argv)
    with process_group() as device:
        return run(parser, args, device)


def run(parser: argparse.ArgumentParser, args, device: torch.device) -> dict:
    check_options(parser, args, device, (args.model,))
    if args.layouts != ["windows"]:
        parser.error(f"--layouts {' '.join(args.layouts)}: train_distributed.py trains on random windows only "
                     "(train.py runs the packed and padded layouts)")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch % world:
        parser.error(f"--batch {args.batch} (the global batch) must be a multiple of the {world} processes")
    log = print if is_main_process() else (lambda line: None)
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = build_model(args.model, VOCAB_SIZE, args.width, args.layers, args.heads, args.mlp_ratio, args.backend)
    parameters = count_parameters(model)
    model = wrap(model.to(device), args.strategy, device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr)
    train_tokens, val_tokens = split_corpus(load_corpus())
    sampler = WindowSampler(train_tokens, args.seq, args.batch, args.seed, rank, world, device)
    log(f"{args.strategy} on {world} x {device.type}, {args.model} model ({parameters:,} parameters), "
        f"global batch {args.batch} x {args.seq}, {args.dtype}")
    result = train(model, sampler, optimiser, steps=args.steps, warmup=args.warmup, device=device,
                   dtype=args.dtype, log_every=args.log_every, log=log)
    val_sampler = WindowSampler(val_tokens, args.seq, args.batch, args.seed + 1, rank, world, device)
    val_loss = evaluate(model, val_sampler, args.eval_batches, device, args.dtype) if args.eval_batches else None
    summary = {"strategy": args.strategy, "world_size": world, "model": args.model, "parameters": parameters,
               "tokens_per_second": result.tokens_per_second, "timed_seconds": result.timed_seconds,
               "train_loss_rank0": mean_tail(result.losses), "val_loss": val_loss, "losses_rank0": result.losses}
    if is_main_process():
        print(markdown_table(
            ["strategy", "processes", "model", "global tokens/s", "train loss (rank 0, last 10)", "val loss"],
            [[args.strategy, world, args.model, f"{result.tokens_per_second:,.0f}",
              f"{summary['train_loss_rank0']:.3f}", "-" if val_loss is None else f"{val_loss:.3f}"]]))
        if args.out:
            write_run(args, device, result=summary)
    return summary


if __name__ == "__main__":
    main()
