"""Heads that fit one SM (128x6, LSTM bf16, B=16, T=1024): the one-SM kernels against the
cluster kernels, forward and forward+backward, each forced in turn (one process).
Usage: python scripts/one_sm_vs_cluster.py [DHxNH ...]"""
import os
import sys

import torch

from fusedrnn.backends.cuda import cluster_backward, fused
from fusedrnn.bench.harness import measure
from fusedrnn.bench.providers import Case

one_sm = fused.fits_one_sm
os.environ["FUSEDRNN_SPLIT"] = "cluster"
for shape in sys.argv[1:] or ["128x6"]:
    DH, NH = (int(v) for v in shape.split("x"))
    for name, forward_split, backward_split in (("one SM", False, False), ("one-SM forward, cluster backward", False, True),
                                                ("cluster both", True, True)):
        for backward in (False, True):
            if not backward and name.startswith("one-SM forward"):
                continue
            # fused.forward and fused.backward each ask fused.fits_one_sm whether to split
            split = {"forward": forward_split, "backward": backward_split}
            fused.fits_one_sm = lambda *a: not split.get(sys._getframe(1).f_code.co_name, False)
            cluster_backward.fits_one_sm = lambda *a: not backward_split
            m = measure("cuda_fused", Case("lstm", torch.bfloat16, 16, 1024, NH, DH, backward))
            print(f"| {shape} | {name} | {'fwd+bwd' if backward else 'fwd'} | {m.median_ms} | {m.note[:80]} |", flush=True)
fused.fits_one_sm = one_sm
