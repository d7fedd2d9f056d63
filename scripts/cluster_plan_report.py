"""What the cluster forward runs at a few heads on this GPU, and how fast: the plan, as fitted
to the NVRTC in use (registers, spills), the clusters the GPU runs at once, the sequences a
cluster chosen at launch, and the forward's median ms (LSTM bf16, B=16, T=1024) through
fusedrnn.rnn and of the kernel's launch alone (cluster_forward).
Usage: python scripts/cluster_plan_report.py [DHxNH ...]"""
import sys

import torch
import triton.testing

import fusedrnn
from fusedrnn.backends.cuda.cluster import cluster_forward, clusters_resident
from fusedrnn.backends.cuda.compile import compile_kernel, nvrtc_version
from fusedrnn.backends.cuda.launch import device_arch
from fusedrnn.backends.cuda.split import _cluster_plan

B, T = 16, 1024


def main():
    shapes = [tuple(map(int, a.split("x"))) for a in sys.argv[1:]] or [(768, 1), (256, 3), (384, 2), (512, 1)]
    sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    print(torch.cuda.get_device_name(0), "NVRTC", nvrtc_version())
    print("| DHxNH | kernel | registers | spill B | clusters at once | sequences a cluster | fwd ms | kernel launch ms |")
    print("|---|---|---|---|---|---|---|---|")
    for DH, NH in shapes:
        kw = dict(device="cuda", dtype=torch.bfloat16)
        x = torch.randn(B, T, 4, NH, DH, **kw)
        R = torch.randn(4, NH, DH, DH, **kw) / DH**0.5
        b = torch.zeros(4, NH, DH, **kw)
        plan = _cluster_plan("lstm", x, sm_count)
        compiled = compile_kernel(plan.name_expression, device_arch(x.device))
        with torch.no_grad():
            ms = triton.testing.do_bench(lambda: fusedrnn.rnn(x, R, b, backend="cuda_fused"), warmup=50, rep=300,
                                         return_mode="median")
        states = torch.zeros(2, B, NH, DH, **kw)
        alone = triton.testing.do_bench(lambda: cluster_forward(plan, x, R, b, states, None, False), warmup=50,
                                        rep=300, return_mode="median")
        print(f"| {DH}x{NH} | {plan.name_expression} | {compiled.registers} | {compiled.spill_bytes} | "
              f"{clusters_resident(plan, 0)} | {plan.cluster_sequences} | {ms:.3f} | {alone:.3f} |")


if __name__ == "__main__":
    main()
