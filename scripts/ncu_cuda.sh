#!/usr/bin/env bash
# Profile the cuda_fused kernels with ncu; reports under $OUT. Usage: bash scripts/ncu_cuda.sh [DHxNH] [T]
export PYTHONPATH=src
OUT=${OUT:-/tmp/out}
python3 scripts/cuda_profile.py "$@" > /dev/null 2>&1  # warm the compile cache
ncu --kernel-name regex:fused_ --launch-skip 1 --launch-count 1 --section SpeedOfLight --section WarpStateStats \
    --section SchedulerStats --section LaunchStats --section MemoryWorkloadAnalysis --section SourceCounters \
    python3 scripts/cuda_profile.py "$@" > "$OUT/ncu.txt" 2>&1
grep -E "fused_|Duration|Stall|Warp Cycles Per Issued|Issued Ipc|Registers|L1/TEX Hit|Mem Busy|Max Bandwidth|One or More|Achieved Occ|Local" "$OUT/ncu.txt" | head -60
