"""Time cuda_fused launch variants (column tiles NT x warps along the batch WN,
ring depth) against the shipped choice, in one process. Prints a table;
writes JSON to $OUT/cuda-variants.json. Usage: python scripts/cuda_variants.py"""
import dataclasses
import json
import os

import torch
import triton.testing

import fusedrnn
from fusedrnn.backends.cuda import fused

B, T = 16, 1024
SHAPES = [(64, 12), (128, 6), (32, 24), (16, 48)]
VARIANTS = {"shipped": None, "NT2 WN1": dict(NT=2, WN=1), "NT1 WN1": dict(NT=1, WN=1), "NT2 WN2": dict(NT=2, WN=2)}
shipped_choose = fused.choose_config


def run(DH, NH, variant, backward):
    def forced(*args, **kwargs):  # choose_config's signature, whatever it grows
        config = shipped_choose(*args, **kwargs)
        if variant is None:
            return config
        changed = dataclasses.replace(config, **variant)
        return changed if changed.fits() else config

    fused.choose_config = forced
    try:
        kw = dict(device="cuda", dtype=torch.bfloat16)
        x = torch.randn(B, T, 4, NH, DH, **kw)
        R = torch.randn(4, NH, DH, DH, **kw) / DH**0.5
        b = torch.zeros(4, NH, DH, **kw)
        if not backward:
            def step():
                with torch.no_grad():
                    fusedrnn.rnn(x, R, b, backend="cuda_fused")
        else:
            leaves = [t.requires_grad_() for t in (x, R, b)]
            dy = torch.randn(B, T, NH, DH, **kw)

            def step():
                y, _ = fusedrnn.rnn(*leaves, backend="cuda_fused")
                torch.autograd.grad(y, leaves, dy)
        step()
        return triton.testing.do_bench(step, warmup=5, rep=50)
    finally:
        fused.choose_config = shipped_choose


results = []
for DH, NH in SHAPES:
    for name, variant in VARIANTS.items():
        for backward in (False, True):
            ms = run(DH, NH, variant, backward)
            results.append(dict(shape=f"{DH}x{NH}", variant=name, passes="fwd+bwd" if backward else "fwd", ms=ms))
out = os.environ.get("OUT", "/tmp")
with open(os.path.join(out, "cuda-variants.json"), "w") as f:
    json.dump(results, f, indent=1)
print("| shape | variant | fwd ms | fwd+bwd ms |\n|---|---|---|---|")
for DH, NH in SHAPES:
    for name in VARIANTS:
        fwd, both = (next(r["ms"] for r in results if r["shape"] == f"{DH}x{NH}" and r["variant"] == name
                          and r["passes"] == p) for p in ("fwd", "fwd+bwd"))
        print(f"| {DH}x{NH} | {name} | {fwd:.3f} | {both:.3f} |")
