#!/usr/bin/env bash
# Do the cuda_fused kernels read or write out of bounds, race on shared memory or misuse a
# barrier? compute-sanitizer's memcheck, racecheck and synccheck on small calls of each kernel
# family, each a forward and a backward on explicit plans (tools/cuda_profile.py --plan FWD/BWD,
# random lengths, LSTM bf16, B=16; every cell is not needed: the skeleton is shared): the one-SM
# kernels, the cooperative grid (its grid barrier), the cluster (DSMEM, mbarriers, the cluster
# barrier), and the cluster forward in each form of its exchange and the cluster backward with all
# of R^T in shared memory (cuda_profile.py FORMS). Each run compiles first, outside the sanitizer.
# API errors are not reported: cuda.core probes driver entry points with cuGetProcAddress, which
# fails by design for versions the driver lacks (34 such "errors" a run, none from a kernel).
# racecheck itself fails on the cluster backward ("Internal Sanitizer Error", docs/perf-notes.md).
# Usage on the GPU machine:
#   bash tools/sanitize_cuda.sh                      # every run of RUNS below
#   bash tools/sanitize_cuda.sh DHxNH T FWD/BWD [cuda_profile.py options]   # one run
#   bash tools/sanitize_cuda.sh 256x3 6 cluster/none --form barrier
export PYTHONPATH=src
RUNS=(
  "48x2 9 one_sm/one_sm"
  "20x3 7 one_sm/one_sm"     # odd rows: copied element by element
  "128x1 5 one_sm/one_sm"
  "48x2 9 grid/grid"
  "200x2 5 grid/grid"
  "48x2 9 cluster/cluster"   # all of R in registers: an mbarrier a sender, spread cells
  "256x3 6 cluster/cluster"
  "768x1 5 cluster/cluster"  # R partly in shared memory, a cluster of 16 backward
  "768x1 5 cluster/cluster --cell slstm"  # the backward with x added into rh (x_in_rh): no x ring
  "256x3 6 cluster/none --form barrier"
  "256x3 6 cluster/none --form async"
  "256x3 6 cluster/none --form per-source"
  "256x3 6 grid/cluster --form shared-r"
  "48x2 9 one_sm/one_sm --resets 0.3"      # resets: the words staged with each step's inputs
  "48x2 9 grid/grid --resets 0.3"
  "48x2 9 cluster/cluster --resets 0.3"
  "768x1 5 cluster/cluster --resets 0.3"
)
[ $# -gt 0 ] && RUNS=("$*")
for run in "${RUNS[@]}"; do
  read -r -a words <<< "$run"
  call=(python3 tools/cuda_profile.py "${words[0]}" "${words[1]}" --plan "${words[2]}" --lengths --repeat 1 "${words[@]:3}")
  echo "==== $run"
  if ! out=$("${call[@]}" 2>&1); then echo "$out" | tail -5; continue; fi
  echo "$out" | sed 's/^/  /'  # the plans
  for tool in memcheck racecheck synccheck; do
    echo "== $tool"
    compute-sanitizer --tool "$tool" --kernel-name kns=fused_ --report-api-errors no --print-limit 20 \
      "${call[@]}" 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Error|Hazard" | head -8
  done
done
