"""One-SM tiles at large B (issue 16), LSTM 64x12 bf16 T=1024: the rule's plans against
wider tiles (NT column tiles of 8 a warp, WN warps along the batch, input ring depth d) for
the forward and the backward, each with the other direction's rule plan; forward and
forward+backward ms (do_bench medians), y and dx compared with the rule's.
Usage: python tools/one_sm_tiles.py [B ...]   (default 64 128 256)"""
import sys
import torch
import triton.testing
from fusedrnn.backends.cuda.fused.one_sm import FusedConfig
from fusedrnn.backends.cuda.fused.plan import Plan, plan
from fusedrnn.backends.cuda.fused.planned import with_plans
from fusedrnn.backends.cuda.runtime.device import device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from fusedrnn.testing import random_problem

DH, NH, T, CELL = 64, 12, 1024, "lstm"
dev = device_limits(0)


def cfg(bwd, NT, WN, depth):
    return FusedConfig(cell=CELL, dtype=torch.bfloat16, DHP=64, backward=bwd, NT=NT, WN=WN, depth=depth, vec=8,
                       r_in_registers=not bwd, fast_math=True)


def short(p):
    c = p.config
    return f"{p.strategy} NT{getattr(c, 'NT', '-')} WN{getattr(c, 'WN', '-')} d{getattr(c, 'depth', '-')}"


FWD = [(3, 1, 3), (3, 1, 4), (2, 1, 4), (2, 2, 4), (1, 4, 4)]
BWD = [(2, 2, 2), (2, 1, 3), (1, 4, 2), (3, 1, 2)]
print("| B | forward plan | backward plan | fwd ms | fwd+bwd ms | max diff y | max diff dx |")
print("|---|---|---|---|---|---|---|")
for B in [int(b) for b in sys.argv[1:]] or [64, 128, 256]:
    problem = Problem(get_cell(CELL), B, T, NH, DH, torch.bfloat16, torch.device("cuda"), False, True)
    rule = (plan(problem, dev, "forward"), plan(problem, dev, "backward"))
    x, R, b, s = (t.cuda().to(torch.bfloat16) for t in random_problem(CELL, B, T, NH, DH))
    dy = torch.randn(B, T, NH, DH, device="cuda", dtype=torch.bfloat16)
    pairs = [rule] + [(Plan("forward", cfg(False, *f), "probe"), rule[1]) for f in FWD] + \
            [(rule[0], Plan("backward", cfg(True, *g), "probe")) for g in BWD]
    ref = None
    for fp, bp in pairs:
        try:
            run = with_plans(fp, bp)
            leaves = [t.clone().requires_grad_() for t in (x, R, b, s)]
            y, _ = run(*leaves, cell=CELL)
            grads = torch.autograd.grad(y, leaves, dy)
            if ref is None:
                ref = (y.float(), grads[0].float())
            dyv = (y.float() - ref[0]).abs().max().item()
            dxv = (grads[0].float() - ref[1]).abs().max().item()

            def fwd():
                with torch.no_grad():
                    run(x, R, b, s, cell=CELL)

            def both():
                yy, _ = run(*leaves, cell=CELL)
                torch.autograd.grad(yy, leaves, dy)
            f_ms = triton.testing.do_bench(fwd, warmup=20, rep=200, return_mode="median")
            b_ms = triton.testing.do_bench(both, warmup=10, rep=300, return_mode="median")
            print(f"| {B} | {short(fp)} | {short(bp)} "
                  f"| {f_ms:.3f} | {b_ms:.3f} | {dyv:.2e} | {dxv:.2e} |", flush=True)
        except Exception as e:
            print(f"| {B} | {fp} | {bp} | {type(e).__name__}: {str(e)[:120]} | | | |", flush=True)
