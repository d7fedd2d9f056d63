"""Command-line options shared by train.py, train_distributed.py and
check_distributed.py, checked up front so a bad value fails with a clear
message before any work starts."""
from __future__ import annotations

import argparse

import torch

import fusedrnn

from data import LAYOUTS, VOCAB_SIZE
from model import KINDS, build_model


def _int_at_least(text: str, lowest: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < lowest:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "positive")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "non-negative")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_model_choice(container, default="fused") -> None:
    """--model, on a parser or a group (train.py makes it exclusive with --compare)."""
    container.add_argument("--model", choices=KINDS, default=default,
                           help="mixer: fusedrnn LSTM, torch.nn.LSTM (cuDNN on a GPU) or causal attention "
                           "(default: fused)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model's sizes and fusedrnn backend (not --model: see add_model_choice)."""
    group = parser.add_argument_group("model")
    group.add_argument("--backend", default="auto", choices=["auto", *fusedrnn.backends()],
                       help="fusedrnn backend of the fused LSTM (default: auto)")
    group.add_argument("--width", type=positive_int, default=256, help="model width (default: 256)")
    group.add_argument("--layers", type=positive_int, default=4, help="blocks (default: 4)")
    group.add_argument("--heads", type=positive_int, default=4,
                       help="fused LSTM heads and attention heads; must divide --width (default: 4)")
    group.add_argument("--mlp-ratio", type=positive_int, default=4,
                       help="MLP width of the fused model / --width; the others match its parameters (default: 4)")


def add_training_options(parser: argparse.ArgumentParser, dtypes: tuple[str, ...]) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--steps", type=positive_int, default=100, help="optimiser steps (default: 100)")
    group.add_argument("--warmup", type=non_negative_int, default=10,
                       help="steps before the clock starts (default: 10)")
    group.add_argument("--batch", type=positive_int, default=16,
                       help="global batch in sequences, split across processes (default: 16)")
    group.add_argument("--seq", type=positive_int, default=256, help="sequence length in bytes (default: 256)")
    group.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=["windows"],
                       help="how rows are cut from the corpus: random windows, documents packed with resets, "
                       "or one document a row, padded (default: windows)")
    group.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    group.add_argument("--dtype", choices=dtypes, help="autocast dtype (default: bf16 on a GPU, fp32 on CPU)")
    group.add_argument("--seed", type=non_negative_int, default=0)
    group.add_argument("--log-every", type=non_negative_int, default=20, help="0: no loss log (default: 20)")
    group.add_argument("--eval-batches", type=non_negative_int, default=4,
                       help="validation batches at the end; 0 skips it (default: 4)")
    group.add_argument("--out", help="write the results as JSON to this file")


def check_model_options(parser: argparse.ArgumentParser, args: argparse.Namespace, kinds) -> None:
    """Builds each model of `kinds` on the meta device (no memory), so a bad
    combination of sizes fails now with the model's own message (through
    parser.error); checks that --backend can run here."""
    info = fusedrnn.backends().get(args.backend)
    if info is not None and not info.available:
        parser.error(f"--backend {args.backend} is not available here: {info.reason}")
    for kind in kinds:
        try:
            with torch.device("meta"):
                build_model(kind, VOCAB_SIZE, args.width, args.layers, args.heads, args.mlp_ratio, args.backend)
        except ValueError as error:
            parser.error(f"model {kind!r}: {error}")


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace, device, kinds) -> None:
    """check_model_options, the training checks, and the default of --dtype
    (bf16 on a GPU, fp32 on CPU)."""
    check_model_options(parser, args, kinds)
    if args.warmup >= args.steps:
        parser.error(f"--warmup {args.warmup} must be less than --steps {args.steps}")
    if args.dtype is None:
        args.dtype = "bf16" if device.type == "cuda" else "fp32"
    if args.dtype == "fp16" and device.type != "cuda":
        parser.error("--dtype fp16 needs a GPU (torch.nn.LSTM has no fp16 kernel on CPU)")
