#!/usr/bin/env bash
# One call on the lent GPU: environment, GPU tests, benchmark. Results under $OUT.
# Usage (from the repository root, through the device tool):
#   bash scripts/device_run.sh "<pytest selection>" "<bench arguments>"
set -u
export PYTHONPATH=src
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tests=${1:-tests}
bench=${2:-"--providers triton torch cudnn_fp16 cudnn_bf16 sdpa --splits 64x12 128x6"}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
if [ "$tests" != "none" ]; then
  timeout 400 python3 -m pytest -q -m gpu -n 8 -p no:cacheprovider $tests > "$OUT/pytest.txt" 2>&1
  echo "pytest exit $?" >> "$OUT/pytest.txt"
fi
if [ "$bench" != "none" ]; then
  timeout 300 python3 -m fusedrnn.cli bench $bench --out "$OUT" > "$OUT/bench.txt" 2>&1
fi
echo "== pytest"; grep -E "passed|failed|error|Error|exit" "$OUT/pytest.txt" 2>/dev/null | tail -25
echo "== bench"; grep -E "^\|" "$OUT/bench.txt" 2>/dev/null | cut -c1-150
