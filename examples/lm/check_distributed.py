"""Check that one data-parallel optimiser step equals one step on the whole
global batch in a single process, for DDP and for FSDP2.

  torchrun --standalone --nproc-per-node 2 examples/lm/check_distributed.py          # CPU, gloo
  torchrun --standalone --nproc-per-node 2 examples/lm/check_distributed.py --backend cuda_fused --dtype bf16

For each strategy: the model is built from a fixed seed; each rank steps it on
its rows of the global batch (DDP and FSDP2 average the gradients); the full
parameters are gathered and compared with a copy of the model stepped in this
process on the whole batch (mean loss over the global batch). Every rank
computes that reference, so every rank reaches the same verdict. The error is
measured on the update (after - before) relative to the largest update of each
tensor, so a gradient off by a factor cannot hide behind a small step. The
default step is plain SGD with a large learning rate, so that the update stands
far above the rounding of the stored parameters (an fp32 ulp of 0.2 is 1.5e-8);
the equivalence of a single step does not depend on the step being a good one.
Exits 1 on a mismatch.
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.distributed as dist

from data import VOCAB_SIZE, WindowSampler, load_corpus, split_corpus
from distributed import STRATEGIES, full_parameters, is_main_process, process_group, wrap
from model import build_model
from options import (add_model_choice, add_model_options, check_model_options, non_negative_int, positive_float,
                     positive_int)
from report import markdown_table
from training import train_step

DEFAULT_TOLERANCE = {"fp32": 1e-5, "bf16": 2e-2}
OPTIMISERS = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


def parse_args(argv=None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_choice(parser)
    add_model_options(parser)
    parser.set_defaults(backend="torch", width=32, layers=2, heads=4)
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--optimizer", choices=OPTIMISERS, default="sgd",
                        help="sgd (default): the update is proportional to the gradient. adamw's first step "
                        "divides each gradient by its own size, which magnifies fp32 noise where a gradient is "
                        "near zero: give it --tolerance 1e-3")
    parser.add_argument("--lr", type=positive_float, default=10.0)
    parser.add_argument("--batch", type=positive_int, default=4, help="global batch (default: 4)")
    parser.add_argument("--seq", type=positive_int, default=16)
    parser.add_argument("--dtype", choices=DEFAULT_TOLERANCE, default="fp32", help="autocast dtype (default: fp32)")
    parser.add_argument("--tolerance", type=positive_float,
                        help=f"largest relative update error (default: {DEFAULT_TOLERANCE})")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    check_model_options(parser, args, (args.model,))
    args.tolerance = args.tolerance or DEFAULT_TOLERANCE[args.dtype]
    return parser, args


def step_both_ways(strategy: str, args, device: torch.device) -> dict:
    """One step data-parallel and one on the whole batch here; their differences."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)
    model = build_model(args.model, VOCAB_SIZE, args.width, args.layers, args.heads, args.mlp_ratio, args.backend)
    model.to(device)
    reference = copy.deepcopy(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    tokens = split_corpus(load_corpus())[0]
    shard = WindowSampler(tokens, args.seq, args.batch, args.seed, rank, world, device).next_batch()
    whole = WindowSampler(tokens, args.seq, args.batch, args.seed, device=device).next_batch()

    model = wrap(model, strategy, device)
    loss = train_step(model, OPTIMISERS[args.optimizer](model.parameters(), lr=args.lr), *shard, device, args.dtype)
    dist.all_reduce(loss)  # equal shards: the mean of their mean losses is the global mean
    reference_loss = train_step(reference, OPTIMISERS[args.optimizer](reference.parameters(), lr=args.lr),
                                *whole, device, args.dtype)

    gathered, expected = full_parameters(model), dict(reference.named_parameters())
    worst_abs, worst_rel, worst_update, worst_name = 0.0, 0.0, 0.0, ""
    for name, start in before.items():
        got, want = gathered[name], expected[name].detach()
        difference = (got - want).abs().max().item()
        worst_abs = max(worst_abs, difference)
        worst_rel = max(worst_rel, difference / want.abs().max().item())
        update_error = difference / max((want - start).abs().max().item(), 1e-30)  # relative to the step
        if update_error >= worst_update:
            worst_update, worst_name = update_error, name
    return {"strategy": strategy, "loss": loss.item() / world, "reference_loss": reference_loss.item(),
            "max_abs_param_diff": worst_abs, "max_rel_param_diff": worst_rel, "max_rel_update_diff": worst_update,
            "worst_tensor": worst_name, "passed": worst_update <= args.tolerance}


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    with process_group() as device:
        main_process = is_main_process()
        if args.batch % dist.get_world_size():
            parser.error(f"--batch {args.batch} must be a multiple of the {dist.get_world_size()} processes")
        results = [step_both_ways(strategy, args, device) for strategy in args.strategies]
    if main_process:
        print(f"{args.model} model, backend {args.backend}, {args.dtype}, {args.optimizer}, "
              f"global batch {args.batch} x {args.seq}, tolerance {args.tolerance:g}")
        print(markdown_table(
            ["strategy", "loss (ranks)", "loss (one process)", "max abs param diff", "max rel param diff",
             "max rel update diff", "worst tensor", "result"],
            [[r["strategy"], f"{r['loss']:.6f}", f"{r['reference_loss']:.6f}", f"{r['max_abs_param_diff']:.2e}",
              f"{r['max_rel_param_diff']:.2e}", f"{r['max_rel_update_diff']:.2e}", r["worst_tensor"],
              "PASS" if r["passed"] else "FAIL"]
             for r in results]))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
