"""Train the byte-level language model in one process; report loss and tokens/s.

  python examples/lm/train.py --model fused --steps 100
  python examples/lm/train.py --compare --out results/lm.json   # all three mixers, one table
  python examples/lm/train.py --model fused --layouts packed padded   # documents packed with resets, or padded

Tokens/s counts every position of every sequence, timed after --warmup steps
with the GPU synchronised at both ends; targets/s the positions with a target
(document bytes: padding excluded). Layouts: random windows of the corpus
(`windows`, the default), whole documents packed end to end with `resets` at
each one's start (`packed`), or one document a row, zero-padded (`padded`).
"""
from __future__ import annotations

import argparse

import torch

from data import (VOCAB_SIZE, PackedSampler, PaddedSampler, WindowSampler, load_corpus, load_documents,
                  split_corpus, split_documents)
from model import KINDS, build_model, count_parameters
from options import add_model_choice, add_model_options, add_training_options, check_options
from report import markdown_table, mean_tail, write_run
from training import evaluate, train

LABELS = {"fused": "fusedrnn LSTM", "cudnn": "torch.nn.LSTM", "attention": "causal attention (SDPA)"}


def pick_device(name: str, parser: argparse.ArgumentParser) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to torch")
    return torch.device(name)


SAMPLERS = {"windows": WindowSampler, "packed": PackedSampler, "padded": PaddedSampler}


def run_model(kind: str, args, device: torch.device, layout: str = "windows") -> dict:
    train_data, val_data = split_corpus(load_corpus()) if layout == "windows" else split_documents(load_documents())
    torch.manual_seed(args.seed)
    model = build_model(kind, VOCAB_SIZE, args.width, args.layers, args.heads, args.mlp_ratio, args.backend)
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sampler = SAMPLERS[layout](train_data, args.seq, args.batch, args.seed, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = train(model, sampler, optimiser, steps=args.steps, warmup=args.warmup, device=device,
                   dtype=args.dtype, log_every=args.log_every, log=lambda line: print(f"[{kind}] {line}"))
    val_sampler = SAMPLERS[layout](val_data, args.seq, args.batch, args.seed + 1, device=device)
    val_loss = evaluate(model, val_sampler, args.eval_batches, device, args.dtype) if args.eval_batches else None
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"model": kind, "layout": layout, "parameters": count_parameters(model),
            "tokens_per_second": result.tokens_per_second, "targets_per_second": result.targets_per_second,
            "timed_seconds": result.timed_seconds, "train_loss": mean_tail(result.losses), "val_loss": val_loss,
            "peak_memory_mib": peak, "losses": result.losses}


def table(rows: list[dict]) -> str:
    header = ["model", "layout", "parameters", "tokens/s", "targets/s", "train loss (last 10)", "val loss", "peak MiB"]
    cells = [[LABELS[r["model"]], r["layout"], f"{r['parameters']:,}", f"{r['tokens_per_second']:,.0f}",
              f"{r['targets_per_second']:,.0f}", f"{r['train_loss']:.3f}",
              "-" if r["val_loss"] is None else f"{r['val_loss']:.3f}",
              "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:,.0f}"] for r in rows]
    return markdown_table(header, cells)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    add_model_choice(which, default=None)  # argparse sees "--model fused" as unset if it is the default
    which.add_argument("--compare", action="store_true", help="train all three mixers, one after another")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    add_model_options(parser)
    add_training_options(parser, dtypes=("bf16", "fp16", "fp32"))
    args = parser.parse_args(argv)
    device = pick_device(args.device, parser)
    kinds = KINDS if args.compare else (args.model or "fused",)
    check_options(parser, args, device, kinds)
    if "packed" in args.layouts and "cudnn" in kinds:
        parser.error("--layouts packed: torch.nn.LSTM (--model cudnn) cannot start a sequence afresh inside a row")
    print(f"{len(split_corpus(load_corpus())[0]):,} training bytes; width {args.width}, {args.layers} layers, "
          f"{args.heads} heads, batch {args.batch} x {args.seq}, {args.dtype}, {device}")
    rows = [run_model(kind, args, device, layout) for kind in kinds for layout in args.layouts]
    print(f"\n{table(rows)}")
    if args.out:
        write_run(args, device, results=rows)
    return rows


if __name__ == "__main__":
    main()
