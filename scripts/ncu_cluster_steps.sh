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
# per SASS instruction: stall samples of the forward and the backward (the hottest lines)
for kernel in forward backward; do
echo "== $kernel: the hottest SASS lines"
ncu -i "$OUT/cluster-steps.ncu-rep" -k "regex:cluster_$kernel" --page source --csv --print-source sass \
  > "$OUT/steps-source-$kernel.csv" 2>&1
python3 - "$OUT/steps-source-$kernel.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
header = next((i for i, r in enumerate(rows) if "Source" in r and any("Sampling" in c for c in r)), None)
if header is None:
    print("no source table:", rows[:3]); sys.exit()
names = rows[header]
src, samples = names.index("Source"), next(i for i, c in enumerate(names) if c.startswith("Warp Stall Sampling (All"))
body = [r for r in rows[header + 1:] if len(r) > samples and r[samples].replace(",", "").isdigit()]
total = sum(int(r[samples].replace(",", "")) for r in body) or 1
for r in sorted(body, key=lambda r: -int(r[samples].replace(",", "")))[:40]:
    print(f"{100 * int(r[samples].replace(',', '')) / total:5.1f}%  {r[src][:110]}")
PY
done
