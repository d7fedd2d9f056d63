#!/usr/bin/env bash
# compute-sanitizer memcheck, racecheck and synccheck on a small forward+backward
# of the cuda_fused kernels (every cell is not needed: the skeleton is shared).
# Usage on the GPU machine: bash scripts/sanitize_cuda.sh [DHxNH] [T] [grid|cluster|auto]
# The third argument sets FUSEDRNN_SPLIT for heads over one SM: "cluster" runs
# the thread-block cluster forward (sm_90, DSMEM stores into other CTAs' shared
# memory and a cluster barrier a step), "grid" the cooperative grid's.
# API errors are not reported: cuda.core probes driver entry points with
# cuGetProcAddress, which fails by design for versions the driver lacks
# (34 such "errors" a run, none from a kernel).
export PYTHONPATH=src
shape=${1:-48x2}
steps=${2:-9}
export FUSEDRNN_SPLIT=${3:-grid}
python3 scripts/cuda_profile.py "$shape" "$steps" > /dev/null 2>&1  # compile outside the sanitizer
for tool in memcheck racecheck synccheck; do
  echo "== $tool ($shape, T=$steps, split $FUSEDRNN_SPLIT)"
  compute-sanitizer --tool "$tool" --kernel-name kns=fused_ --report-api-errors no --print-limit 20 \
      python3 scripts/cuda_profile.py "$shape" "$steps" 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Error|Hazard" | head -8
done
