"""Time launch variants of the Triton kernels on the GPU (one device call).

For LSTM bf16, B=16, T=1024 at 64x12 and 128x6: the forward (with and without
saving for backward) and the backward, for each (num_warps, num_stages,
PREFETCH). Also a profiler breakdown of one fwd+bwd. Prints a table.
"""
import itertools
import json
import os
import sys

import torch
import triton.testing

import fusedrnn
from fusedrnn.backends.triton import launch

OUT = os.environ.get("OUT", "/tmp")
B, T = 16, 1024
rows = []


def inputs(NH, DH):
    g = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, T, 4, NH, DH, generator=g, device="cuda").to(torch.bfloat16)
    R = (torch.randn(4, NH, DH, DH, generator=g, device="cuda") / DH**0.5).to(torch.bfloat16)
    b = torch.zeros(4, NH, DH, **kw)
    s = torch.zeros(2, B, NH, DH, **kw)
    return x, R, b, s


def bench(fn):
    return triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median")


default = launch.launch_options
for NH, DH in () if "--profile-only" in sys.argv else ((12, 64), (6, 128)):
    x, R, b, s = inputs(NH, DH)
    dy = torch.randn(B, T, NH, DH, device="cuda", dtype=torch.bfloat16)
    dfinal = torch.zeros_like(s)
    for warps, each, prefetch in itertools.product((4, 8) if DH <= 64 else (8,), (False, True), (True, False)):
        def options(DH_P, BLOCK_B, backward, gates_r=4, w=warps, e=each, p=prefetch):
            if backward:
                return dict(num_warps=w, num_stages=1, PREFETCH=p, DB_EACH_STEP=e)
            return dict(num_warps=w, num_stages=1)
        launch.launch_options = options
        name = f"{DH}x{NH} w{warps} {'db-each-step' if each else 'db-tiles'} {'prefetch' if prefetch else 'late'}"
        try:
            y, final, saved = launch.forward(x, R, b, s, None, "lstm", True)
            fwd = bench(lambda: launch.forward(x, R, b, s, None, "lstm", False)) if prefetch else float("nan")
            fwd_save = bench(lambda: launch.forward(x, R, b, s, None, "lstm", True)) if prefetch else float("nan")
            bwd = bench(lambda: launch.backward(dy, dfinal, x, R, b, s, None, y, final, saved, "lstm"))
            rows.append((name, fwd, fwd_save, bwd))
        except Exception as e:  # a variant that does not fit is a row, not a crash
            rows.append((name, str(e).splitlines()[0][:60], "", ""))
        print(rows[-1], flush=True)
launch.launch_options = default

# where the time of one default fwd+bwd goes
NH, DH = (6, 128) if "--128" in sys.argv else (12, 64)
x, R, b, s = inputs(NH, DH)
leaves = [t.requires_grad_() for t in (x, R, b)]
dy = torch.randn(B, T, NH, DH, device="cuda", dtype=torch.bfloat16)
step = lambda: torch.autograd.grad(fusedrnn.rnn(*leaves, cell="lstm", backend="triton")[0], leaves, dy)  # noqa: E731
step()
torch.cuda.synchronize()
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
    step()
    torch.cuda.synchronize()
table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=40)
open(os.path.join(OUT, "profile.txt"), "w").write(table)
print("\n".join(line[:40] + line[-60:] for line in table.splitlines()))
print("| variant | fwd ms | fwd+save ms | bwd ms |\n|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
json.dump(rows, open(os.path.join(OUT, "variants.json"), "w"))
