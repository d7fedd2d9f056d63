"""Quick GPU check of the cuda_fused backend: one case per cell, max errors vs
the torch backend, and compile times cold and warm. Prints a short table."""
import sys
import time

import torch

sys.path.insert(0, "tests")
import fusedrnn  # noqa: E402
from kernel_check import check_backend  # noqa: E402

rows = []
for cell in fusedrnn.CELLS:
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for DH in (16, 48, 64, 128):
            try:
                start = time.perf_counter()
                report = check_backend("cuda_fused", cell, dtype, B=5, T=37, NH=3, DH=DH, device="cuda")
                worst = max(report.items(), key=lambda kv: kv[1][0] / (kv[1][1] + 1e-12))
                rows.append(f"{cell:11s} {str(dtype)[6:]:9s} {DH:4d} ok   {time.perf_counter() - start:5.1f}s "
                            f"worst {worst[0]} {worst[1][0]:.2e} vs torch {worst[1][1]:.2e}")
            except Exception as error:  # report and go on: one table for all
                if not any("FAIL" in r for r in rows):
                    import traceback
                    traceback.print_exc()
                rows.append(f"{cell:11s} {str(dtype)[6:]:9s} {DH:4d} FAIL {str(error).splitlines()[0][:150]}")
print("\n".join(rows))
