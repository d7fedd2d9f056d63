"""What do Nsight Compute, Nsight Systems and compute-sanitizer see when one call
of cuda_fused runs these plans? One small call (forward, and the backward unless
BWD is `none`) on explicit plans, each direction's planner narrowed to a kernel
family as `fusedrnn bench --plan FWD/BWD` narrows it (one_sm, grid, cluster, or
auto for the planner's own choice), run through planned.with_plans; nothing is
timed (`fusedrnn bench --plan` times families side by side). --form runs the
cluster forward or backward in another form of its step (FORMS), --probe the
cluster forward as a timing probe of csrc/cluster_probes.cu (wrong results).
The plans go to stderr. tools/ncu.sh and tools/sanitize_cuda.sh drive it.

  python tools/cuda_profile.py [DHxNH] [T] [--plan FWD/BWD] [--form FORM] [--probe PROBE]
      [--batch B] [--cell CELL] [--dtype DTYPE] [--lengths] [--resets P] [--repeat N]
  bash tools/ncu.sh 64x12 256 auto/auto --batch 16 --resets 0.004   (the kernels built for resets)
  nsys profile -o /tmp/fused python tools/cuda_profile.py 768x1 1024 --plan cluster/cluster
"""
import argparse
import dataclasses
import sys

import torch

from fusedrnn.backends.cuda.fused import cluster
from fusedrnn.backends.cuda.fused.cluster import ClusterConfig
from fusedrnn.backends.cuda.fused.cluster_backward import ClusterBackwardConfig
from fusedrnn.backends.cuda.fused.plan import STRATEGIES, Plan, plan
from fusedrnn.backends.cuda.fused.planned import with_plans
from fusedrnn.backends.cuda.runtime.device import device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from fusedrnn.testing import random_problem

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def owners(config: ClusterConfig, options: int) -> ClusterConfig:
    """The cluster forward with the cell on the first K slice's warps (no spread cells:
    a cluster runs its whole batch tile) and the exchange `options`."""
    return dataclasses.replace(config, options=options, sequences=0, elements=0)


# forms of the step, each a correct kernel (tests/test_cuda_fused.py checks them): the cluster
# forward's exchange of h (ClusterOptions, csrc/cluster_options.cuh) and the cluster backward's R^T
FORMS = {
    "plan": ("any", lambda c: c),
    "barrier": ("forward", lambda c: owners(c, 0)),  # the cluster barrier, DSMEM stores
    "async": ("forward", lambda c: owners(c, cluster.ASYNC_PUSH)),  # st.async, one mbarrier a buffer
    "per-source": ("forward", lambda c: owners(c, cluster.ASYNC_PUSH | cluster.PER_SOURCE)),  # one a sender
    "shared-r": ("backward", lambda c: dataclasses.replace(c, reg_blocks=0)),  # all of R^T in shared memory
}


def plan_spec(text: str) -> tuple:
    """FWD/BWD -> (forward strategy, backward strategy); None for auto, 'none' for no backward."""
    parts = text.split("/")
    if len(parts) != 2 or parts[0] not in ("auto",) + STRATEGIES or parts[1] not in ("auto", "none") + STRATEGIES:
        raise argparse.ArgumentTypeError(f"expected FWD/BWD of {', '.join(('auto',) + STRATEGIES)} "
                                          f"(BWD also none), got {text!r}")
    return tuple(None if p == "auto" else p for p in parts)


def shape(text: str) -> tuple:
    DH, NH = (int(v) for v in text.split("x"))
    return DH, NH


def plans(cell, dtype, B, T, NH, DH, spec, form="plan", probe="", resets=False):
    """(forward plan, backward plan or None) of the call for a plan spec, in `form`, the forward as `probe`;
    `resets`: the kernels of a call with resets (plan.with_resets)."""
    forward, backward = spec
    problem = Problem(get_cell(cell), B, T, NH, DH, dtype, torch.device("cuda"), False, backward != "none",
                      has_resets=resets)
    limits = device_limits()
    chosen = [plan(problem, limits, "forward", strategy=forward),
              None if backward == "none" else plan(problem, limits, "backward", strategy=backward)]
    if form != "plan":
        direction, change = FORMS[form]
        index = 0 if direction == "forward" else 1
        kind = ClusterConfig if direction == "forward" else ClusterBackwardConfig
        if chosen[index] is None or not isinstance(chosen[index].config, kind):
            raise SystemExit(f"--form {form}: needs a cluster {direction} plan, got {chosen[index]}")
        config = change(chosen[index].config)
        if config.shared_memory > limits.shared_memory_per_block:
            raise SystemExit(f"--form {form}: {config.name_expression} needs {config.shared_memory} B of shared "
                             f"memory, over {limits.shared_memory_per_block}")
        chosen[index] = Plan(direction, config, f"form {form}")
    if probe:
        if chosen[1] is not None:
            raise SystemExit(f"--probe {probe}: a probe's forward is wrong; run it with BWD none")
        if not isinstance(chosen[0].config, ClusterConfig):
            raise SystemExit(f"--probe {probe}: needs a cluster forward plan, got {chosen[0]}")
        chosen[0] = Plan("forward", dataclasses.replace(chosen[0].config, probe=probe), f"probe {probe}")
    return tuple(chosen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", nargs="?", type=shape, default=(64, 12), metavar="DHxNH")
    parser.add_argument("T", nargs="?", type=int, default=256)
    parser.add_argument("--plan", type=plan_spec, default=(None, None), metavar="FWD/BWD")
    parser.add_argument("--form", choices=list(FORMS), default="plan")
    parser.add_argument("--probe", choices=cluster.PROBES, default="")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bfloat16")
    parser.add_argument("--lengths", action="store_true", help="random lengths in [1, T]")
    parser.add_argument("--resets", type=float, default=0.0, metavar="P",
                        help="a reset a step with probability P (the kernels built for resets)")
    parser.add_argument("--repeat", type=int, default=2, help="calls (the first loads the kernels)")
    args = parser.parse_args()
    (DH, NH), B, T, dtype = args.shape, args.batch, args.T, DTYPES[args.dtype]
    forward, backward = plans(args.cell, dtype, B, T, NH, DH, args.plan, args.form, args.probe, args.resets > 0)
    print(forward, file=sys.stderr)
    if backward is not None:
        print(backward, file=sys.stderr)
    torch.manual_seed(0)
    x, R, b, states = random_problem(args.cell, B, T, NH, DH, dtype=dtype, device="cuda")
    lengths = torch.randint(1, T + 1, (B,), device="cuda") if args.lengths else None
    resets = torch.rand(B, T, device="cuda") < args.resets if args.resets > 0 else None
    run = with_plans(forward, backward)
    for _ in range(args.repeat):
        if backward is None:
            with torch.no_grad():
                run(x, R, b, states, cell=args.cell, lengths=lengths, resets=resets)
            continue
        leaves = [t.detach().requires_grad_() for t in (x, R, b, states)]
        y, final = run(*leaves, cell=args.cell, lengths=lengths, resets=resets)
        torch.autograd.grad((y, final), leaves, (torch.randn_like(y), torch.randn_like(final)))
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
