"""One-SM tiles at large B (issue 16), LSTM 64x12 bf16 T=1024: the rule's plans against
other tiles (NT column tiles of 8 a warp, WN warps along the batch, input ring depth d; the
forward's R in registers, r, or read from shared memory, s) for the forward and the
backward, each with the other direction's rule plan; forward and forward+backward ms
(do_bench medians), y and dx compared with the rule's, and the CTAs an SM holds (the
occupancy of the compiled kernel: several an SM run the call in one wave).
Usage: python tools/one_sm_tiles.py [B ...]   (default 64 128 256)"""
import sys
import torch
import triton.testing
from fusedrnn.backends.cuda.fused.one_sm import FusedConfig
from fusedrnn.backends.cuda.fused.plan import Plan, plan
from fusedrnn.backends.cuda.fused.planned import with_plans
from fusedrnn.backends.cuda.runtime.compile import compile_kernel
from fusedrnn.backends.cuda.runtime.device import device_limits
from fusedrnn.cells import get_cell
from fusedrnn.problem import Problem
from fusedrnn.testing import random_problem

DH, NH, T, CELL = 64, 12, 1024, "lstm"
dev = device_limits(0)


def cfg(bwd, NT, WN, depth, r_in_registers=False):
    return FusedConfig(cell=CELL, dtype=torch.bfloat16, DHP=64, backward=bwd, NT=NT, WN=WN, depth=depth, vec=8,
                       r_in_registers=r_in_registers, fast_math=True)


def per_sm(config):
    """CTAs of the compiled kernel an SM holds (its registers, shared memory and threads)."""
    return config.ctas_per_sm(dev, compile_kernel(config.name_expression, dev.arch, config.source).registers)


def short(p):
    c = p.config
    if not isinstance(c, FusedConfig):
        return f"{p.strategy}"
    return f"{p.strategy} NT{c.NT} WN{c.WN} d{c.depth}{' r' if c.r_in_registers else ' s'} ({per_sm(c)}/SM)"


# (NT, WN, depth, R in registers): several CTAs an SM in one wave (1,1: 3 or 4 an SM at B=256)
FWD = [(1, 1, 4, True), (1, 1, 3, False), (1, 2, 4, False), (2, 1, 4, True), (2, 2, 4, True)]
BWD = [(1, 1, 3), (1, 1, 2), (2, 1, 3), (2, 2, 2)]
print("| B | forward plan | backward plan | fwd ms | fwd+bwd ms | max diff y | max diff dx |")
print("|---|---|---|---|---|---|---|")
for B in [int(b) for b in sys.argv[1:]] or [64, 128, 256]:
    problem = Problem(get_cell(CELL), B, T, NH, DH, torch.bfloat16, torch.device("cuda"), False, True)
    rule = (plan(problem, dev, "forward"), plan(problem, dev, "backward"))
    x, R, b, s = (t.cuda().to(torch.bfloat16) for t in random_problem(CELL, B, T, NH, DH))
    dy = torch.randn(B, T, NH, DH, device="cuda", dtype=torch.bfloat16)
    pairs = [rule] + [(Plan("forward", cfg(False, *f), "probe"), rule[1]) for f in FWD] + \
            [(rule[0], Plan("backward", cfg(True, *g), "probe")) for g in BWD] + \
            [(Plan("forward", cfg(False, *FWD[0]), "probe"), Plan("backward", cfg(True, *BWD[0]), "probe"))]
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
