#!/usr/bin/env bash
# Nsight Compute of the cluster forward and backward kernels of one 768x1 forward+backward
# (LSTM bf16, B=16, T=256): speed of light, warp stall reasons, the top stall sites.
# One device call (~2 minutes); reports and text dumps under $OUT.
export PYTHONPATH=src FUSEDRNN_SPLIT=cluster
OUT=${OUT:-/tmp}
python3 scripts/cuda_profile.py 768x1 256 || exit 1
timeout 300 ncu -k regex:fused_cluster --launch-count 2 --section SpeedOfLight --section WarpStateStats \
  --section SourceCounters --section MemoryWorkloadAnalysis_Tables --section LaunchStats \
  -o "$OUT/cluster-steps" --import-source no python3 scripts/cuda_profile.py 768x1 256 > "$OUT/ncu-steps.log" 2>&1
ncu -i "$OUT/cluster-steps.ncu-rep" --page details --print-details all > "$OUT/steps-details.txt" 2>&1
ncu -i "$OUT/cluster-steps.ncu-rep" --page raw > "$OUT/steps-raw.txt" 2>&1
for kernel in forward backward; do
  echo "== $kernel"
  awk -v k="fused_cluster_$kernel" '$0 ~ k {on=1} on && /fused_cluster_/ && $0 !~ k {on=0} on' "$OUT/steps-raw.txt" |
    grep -E "gpu__time_duration.sum|smsp__average_warp_latency_issue_stalled|smsp__pcsamp_warps_issue_stalled" |
    sort -k3 -g -r | head -14
done
grep -E "Duration|Warp Cycles Per Issued|Issue Slots Busy|Shared Memory|Bank" "$OUT/steps-details.txt" | head -30
