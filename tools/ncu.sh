#!/usr/bin/env bash
# Where do the cycles of each cuda_fused kernel of one call go, as Nsight Compute sees them?
# One call of tools/cuda_profile.py on explicit plans (FWD/BWD: one_sm, grid, cluster or auto
# each; BWD also none), its fused_* kernels profiled once each: speed of light, warp stall
# reasons, scheduler, occupancy, launch, shared-memory loads and bank conflicts, then the
# hottest SASS lines of each kernel by stall samples. Anything after the plan goes to
# cuda_profile.py (--form barrier, --probe NoPush, --batch 64, --cell gru, ...).
# Report, raw metrics and source tables under $OUT (default /tmp/ncu). Timing kernel families
# against each other is `fusedrnn bench --plan FWD/BWD`, not this.
# Usage on the GPU machine:
#   bash tools/ncu.sh [DHxNH] [T] [FWD/BWD] [cuda_profile.py options]
#   bash tools/ncu.sh 768x1 256 cluster/cluster
#   bash tools/ncu.sh 768x1 64 cluster/none --probe NoPush
export PYTHONPATH=src
OUT=${OUT:-/tmp/ncu}
mkdir -p "$OUT"
shape=${1:-64x12}
steps=${2:-256}
spec=${3:-auto/auto}
shift $(( $# < 3 ? $# : 3 ))
call=(python3 tools/cuda_profile.py "$shape" "$steps" --plan "$spec" --repeat 1 "$@")
"${call[@]}" || exit 1  # compiles outside the profiler; prints the plans
metrics=(  # shared-memory loads by kind, their wavefronts and bank conflicts
  l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum
  l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum smsp__inst_executed_op_ldsm.sum
  smsp__inst_executed_op_shared_ld.sum smsp__inst_executed_op_generic_ld.sum
)
name="ncu-${shape}-${steps}-${spec//\//-}"
[ $# -gt 0 ] && name+="$(echo " $*" | tr -cs 'A-Za-z0-9\n' '-')"
timeout 540 ncu --kernel-name regex:fused_ --section SpeedOfLight --section WarpStateStats \
  --section SchedulerStats --section LaunchStats --section Occupancy --section MemoryWorkloadAnalysis_Tables \
  --section SourceCounters \
  --metrics "$(IFS=,; echo "${metrics[*]}")" \
  -o "$OUT/$name" -f --import-source no "${call[@]}" > "$OUT/$name.log" 2>&1 || { tail -20 "$OUT/$name.log"; exit 1; }
ncu -i "$OUT/$name.ncu-rep" --page details --print-details all > "$OUT/$name-details.txt" 2>&1
ncu -i "$OUT/$name.ncu-rep" --page raw > "$OUT/$name-raw.txt" 2>&1
grep -E "fused_|Duration|Warp Cycles Per Issued|Issue Slots Busy|Issued Ipc|Registers Per|Achieved Occ|Local|Bank|bank_conflicts|wavefronts|ldsm|shared_ld|generic_ld" \
  "$OUT/$name-details.txt" | head -80
for kernel in forward backward; do  # fused_forward_kernel, fused_split_forward_kernel, fused_cluster_forward_kernel
  grep -q "_${kernel}_kernel" "$OUT/$name-raw.txt" || continue
  echo "== $kernel: time and the largest stall reasons"
  awk -v k="_${kernel}_kernel" '$0 ~ k {on=1} on && /fused_/ && $0 !~ k {on=0} on' "$OUT/$name-raw.txt" |
    grep -E "gpu__time_duration.sum|smsp__average_warp_latency_issue_stalled|smsp__pcsamp_warps_issue_stalled" |
    sort -k3 -g -r | head -14
  echo "== $kernel: the hottest SASS lines (share of stall samples)"
  ncu -i "$OUT/$name.ncu-rep" -k "regex:_${kernel}_kernel" --page source --csv --print-source sass \
    > "$OUT/$name-source-$kernel.csv" 2>&1
  python3 - "$OUT/$name-source-$kernel.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
header = next((i for i, r in enumerate(rows) if "Source" in r and any("Sampling" in c for c in r)), None)
if header is None:
    print("no source table:", rows[:3]); sys.exit()
names = rows[header]
src, samples = names.index("Source"), next(i for i, c in enumerate(names) if c.startswith("Warp Stall Sampling (All"))
count = lambda r: int(r[samples].replace(",", ""))
body = [r for r in rows[header + 1:] if len(r) > samples and r[samples].replace(",", "").isdigit()]
total = sum(count(r) for r in body) or 1
for r in sorted(body, key=lambda r: -count(r))[:40]:
    print(f"{100 * count(r) / total:5.1f}%  {r[src][:110]}")
PY
done
