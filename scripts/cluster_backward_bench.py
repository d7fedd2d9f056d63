"""The cluster backward (csrc/cluster_backward.cuh) against the cooperative grid's, in one
process: LSTM bf16, B=16, T=1024, hidden 768 split as 256x3, 384x2 and 768x1, forward and
forward+backward through the bench harness (the forward is the cluster's in both rows; the
backward follows FUSEDRNN_SPLIT: `auto` takes the cluster, `grid` the grid), beside cuDNN
fp16 and bf16. First a check of each cluster backward against the float64 reference on a
short sequence (a wrong one is reported and not timed). Writes cluster-backward.json into the
folder given (default $OUT, else /tmp) and prints a table last.
Usage: python scripts/cluster_backward_bench.py [OUT_DIR]"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from kernel_check import check_backend  # noqa: E402

from fusedrnn.backends.cuda.cluster_backward import choose_cluster_backward  # noqa: E402
from fusedrnn.bench.harness import as_dict, measure  # noqa: E402
from fusedrnn.bench.providers import Case  # noqa: E402

B, T = 16, 1024
SPLITS = [(256, 3), (384, 2), (768, 1)]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp")
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    rows, wrong = [], set()
    for DH, NH in SPLITS:
        config = choose_cluster_backward("lstm", torch.bfloat16, DH, B, NH, sm_count)
        print(DH, NH, config, flush=True)
        os.environ["FUSEDRNN_SPLIT"] = "cluster"
        try:
            check_backend("cuda_fused", "lstm", torch.bfloat16, B=B, T=40, NH=NH, DH=DH, device="cuda")
        except Exception as error:  # a mismatch, or a launch that failed
            print("WRONG", DH, NH, str(error)[:400], flush=True)
            wrong.add((DH, NH))
    for DH, NH in SPLITS:
        for backward in (False, True):
            case = Case("lstm", torch.bfloat16, B, T, NH, DH, backward)
            for split in (("auto", "grid") if backward else ("auto",)):
                if split == "auto" and (DH, NH) in wrong and backward:
                    continue
                os.environ["FUSEDRNN_SPLIT"] = split
                m = as_dict(measure("cuda_fused", case))
                m["split"] = split
                rows.append(m)
                print(m, flush=True)
    for provider in ("cudnn_fp16", "cudnn_bf16"):
        for backward in (False, True):
            m = as_dict(measure(provider, Case("lstm", torch.bfloat16, B, T, 1, 768, backward)))
            m["split"] = "-"
            rows.append(m)
    with open(os.path.join(out, "cluster-backward.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(0), "rows": rows, "wrong": sorted(wrong)}, f, indent=1)
    print(f"\n{torch.cuda.get_device_name(0)}, LSTM bf16 B={B} T={T}")
    print("| provider | split | DHxNH | passes | median ms | note |\n|---|---|---|---|---|---|")
    for m in rows:
        ms = f"{m['median_ms']:.3f}" if m["median_ms"] is not None else "-"
        print(f"| {m['provider']} | {m['split']} | {m['DH']}x{m['NH']} | {m['passes']} | {ms} | {m['note'][:60]} |")


if __name__ == "__main__":
    main()
