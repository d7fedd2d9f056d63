#!/usr/bin/env bash
# The GPU half of the edge-case tests (padding past lengths on every kernel
# backend, LSTM projections through torch's kernels), within a short device
# budget: bash scripts/gpu_edges.sh [SECONDS]
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=src:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
timeout "${1:-170}" python3 -m pytest -q -m gpu -n 8 -p no:cacheprovider -W ignore tests/test_padding.py tests/test_nn.py \
  2>&1 | tee "${OUT:-/tmp}/gpu_edges.txt" | grep -E "passed|failed|FAILED|Error" | tail -25
