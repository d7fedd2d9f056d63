#!/usr/bin/env bash
# Nsight Compute of the cluster forward at 768x1 and 256x3 (one device call; reports under $OUT)
export PYTHONPATH=src FUSEDRNN_SPLIT=cluster
python3 scripts/ncu_cluster.py 768 1 || exit 1
for DH in 768 256; do
  NH=$([ $DH = 768 ] && echo 1 || echo 3)
  timeout 200 ncu -k regex:fused_cluster --launch-count 1 --section WarpStateStats --section MemoryWorkloadAnalysis_Tables --section SourceCounters --section LaunchStats --section Occupancy --section SpeedOfLight \
    --metrics l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,smsp__inst_executed_op_ldsm.sum,smsp__inst_executed_op_shared_ld.sum,smsp__inst_executed_op_generic_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum \
    -o $OUT/cluster-$DH --import-source no python3 scripts/ncu_cluster.py $DH $NH > $OUT/ncu-$DH.log 2>&1
  ncu -i $OUT/cluster-$DH.ncu-rep --page details --print-details all > $OUT/details-$DH.txt 2>&1
  grep -E "bank_conflicts|wavefronts|ldsm|shared_ld|generic_ld|Stall|stall|Duration|Warp Cycles|Issued" $OUT/details-$DH.txt | head -60
done
