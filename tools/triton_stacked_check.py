"""Check the Triton variants that stack the gates (STACK_GATES, stacked.py) on the GPU, fast.

Every variant of fusedrnn.backends.triton.variants with STACK_GATES, for lstm,
gru and slstm, in bf16 and fp16, at DH=64 and 128 (B=16, T=64, NH=2, with
lengths), its plans passed explicitly (backends/triton/explicit.py): y, final
and every gradient against the float64 reference by fusedrnn.testing's rule
(the one tests/test_triton.py applies), outputs poisoned with NaN. One line per
case, "ok" or "FAIL" with the first error; a variant whose plans equal an
earlier one's for that case is reported as such and not run again. Exits 1 on
any failure. The (DH, cell, dtype) groups run in parallel processes so that
their ~100 kernels compile side by side: under a minute on an H100 host from a
cold Triton cache.

  python tools/triton_stacked_check.py [--dh 64,128] [--cells lstm,gru,slstm] [--dtypes bfloat16,float16]
                                         [--variants a,b] [--workers N]
(on CPU: TRITON_INTERPRET=1 ... --device cpu --dtypes float16, slowly)
"""
import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from fusedrnn.ops import outputs  # noqa: E402
from fusedrnn.backends.triton.explicit import variant_plans, with_variant  # noqa: E402
from fusedrnn.backends.triton.variants import VARIANTS  # noqa: E402

B, T, NH = 16, 64, 2
STACKED = [name for name, chosen in VARIANTS.items()
           if any(chosen.get(kernel, {}).get("STACK_GATES") for kernel in ("forward", "backward"))]


def _plans(cell: str, dtype: torch.dtype, DH: int, name: str):
    """Variant `name`'s forward and backward plans for this case: equal plans run the same kernels."""
    x = torch.empty(B, T, 4, NH, DH, dtype=dtype, device="meta")  # the planner reads shapes only
    return variant_plans(x, cell, None, name)


def run_group(DH: int, cell: str, dtype_name: str, names: list, device: str) -> list:
    """Check every variant of `names` for one (DH, cell, dtype): a list of report lines."""
    from kernel_check import check_backend

    dtype = getattr(torch, dtype_name)
    lines, seen = [], {}
    for name in names:
        case = f"DH={DH:<3} {cell:<5} {dtype_name:<8} {name}"
        key = _plans(cell, dtype, DH, name)
        if key in seen:
            lines.append(f"{case:<68} same kernels as {seen[key]}")
            continue
        seen[key] = name
        torch.manual_seed(0)
        started = time.perf_counter()
        try:
            with outputs.poisoned():
                errors = check_backend(with_variant(name), cell, dtype, B=B, T=T, NH=NH, DH=DH, device=device)
            worst = max(errors, key=lambda k: errors[k][0] / max(errors[k][1], 1e-12))
            line = "ok   (worst %s: %.2g vs torch %.2g)" % (worst, *errors[worst])
        except AssertionError as failure:
            line = "FAIL " + str(failure).splitlines()[0][:160]
        lines.append(f"{case:<68} {line}  [{time.perf_counter() - started:.1f} s]")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dh", default="64,128")
    parser.add_argument("--cells", default="lstm,gru,slstm")
    parser.add_argument("--dtypes", default="bfloat16,float16")
    parser.add_argument("--variants", default=",".join(STACKED))
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("needs a CUDA GPU (or TRITON_INTERPRET=1 with --device cpu --dtypes float16)")
        return 2
    names = args.variants.split(",")
    groups = [(int(DH), cell, dtype, names, args.device) for DH in args.dh.split(",")
              for cell in args.cells.split(",") for dtype in args.dtypes.split(",")]
    where = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"{where}, torch {torch.__version__}; B={B} T={T} NH={NH}; {len(groups)} groups on "
          f"{args.workers} processes; variants: {', '.join(names)}", flush=True)
    started = time.perf_counter()
    # spawn: a forked child must not inherit the parent's CUDA state
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        lines = []
        for group in pool.map(run_group, *zip(*groups)):  # in order, each as soon as it and those before are done
            for line in group:
                print(line, flush=True)
            lines += group
    failed = sum(" FAIL " in line for line in lines)
    print(f"{failed} failed of {sum(' ok ' in line for line in lines) + failed} run; "
          f"{time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
