#!/usr/bin/env bash
# Everything that waits for the lent GPU, in phases that each fit one device
# call (< 10 minutes). Run from the repository root through the device tool:
#   bash tools/gpu_session.sh PHASE [ARGS]
# PHASE: check    GPU tests of every backend, then the Triton and cluster variants
#        tests    the GPU tests only (ARGS: pytest selection, default tests)
#        tune     the tuner's check: every plan timed, pick and rule vs best (ARGS: batch sizes)
#        sweep    the head sweep (bench) and the streaming latency
#        perf     alternating bench, tuner table, the head, batch and length
#                 sweeps, numerics over time (NUMERICS=0 skips it), streaming latency
#        release  check's tests, then perf without numerics (one call, ~8 minutes)
#        verify   check's tests, the head sweep, streaming latency (~5 minutes)
#        scale    the batch axis: bench, module memory, tuner, kernel breakdown (ARGS: batch sizes)
#        resets   `resets` on the GPU: the cuda_fused, cuda_alternating and Triton tests, what resets cost
#                 (tools/resets_cost.py), the language model on packed and padded documents
#        batch    the batch axis (B = 1..256) at 64x12 and 768x1, forward and forward+backward, every
#                 provider of ours beside cuDNN fp16 and SDPA, with auto's pick (the README's sweep)
#        lm-batch tokens/s of the three mixers at B=16 and B=128 (bf16; cuDNN in fp16 too), one GPU
#        verify16 one call (< 10 minutes) after a session without a GPU: the GPU tests of the backward
#                 paths (dR and R h without a copy of h) and of the stepwise kernels replayed from graphs,
#                 the module's memory at B=256, the step probe (the stepwise kernels' tiles too)
#        sanitize-stepwise  compute-sanitizer (memcheck, racecheck) on the Triton stepwise kernels
#        step-probe  768x1 as one fused GEMM+cell kernel a step (tools/fused_step_probe.py: a design's
#                 step time at B=64 and 256 beside cuDNN, cuda_fused and cuda_alternating)
#        lm       the language model: tokens/s of the three mixers (bf16, fp16),
#                 DDP/FSDP2 on 1 and 2 GPUs, the 2-GPU equivalence check (run it
#                 on a 2-GPU kind; on one GPU the 2-GPU parts are skipped)
# Every phase writes its logs and result files into $OUT/PHASE.tgz (the device
# tool returns at most 8 files) and prints a short summary last.
# python-constraint2 (the tuner) is not on the GPU image: carry its wheel in
# .whl/ (ignored by git; see /work/.library/device/README.md), fetched with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 -d .whl python-constraint2==2.9.0
# and it is installed first.
set -u
phase=${1:?usage: bash tools/gpu_session.sh check|tests|tune|sweep|perf|release|verify|scale|resets|batch|lm-batch|step-probe|sanitize-stepwise|verify16|lm [ARGS]}
shift
export PYTHONPATH=src PYTHONUNBUFFERED=1
# the cubin cache inside the checkout (ignored by git): a warm machine keeps it between calls
export FUSEDRNN_CACHE_DIR=${FUSEDRNN_CACHE_DIR:-$PWD/.cache/fusedrnn}
OUT=${OUT:-/tmp/out}
work=$(mktemp -d)/$phase
mkdir -p "$work" "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=src:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee "$work/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$work/gpu.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $work/NAME.txt
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$work/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$work/steps.txt"
}

tests() { step pytest 300 python3 -m pytest -q -m gpu -n 8 -p no:cacheprovider "${@:-tests}"; }
variants() {
  step triton-variants 150 python3 tools/triton_variants.py --out "$work"
  step triton-stacked 90 python3 tools/triton_stacked_check.py
  step cluster-variants 150 python3 tools/cluster_variants.py --out "$work"
}
perf() {
  step alternating 90 python3 tools/alternating_bench.py
  step tune-table 30 python3 -m fusedrnn.cli tune --table
  step bench 200 python3 -m fusedrnn.cli bench --out "$work"
  for sweep in batch length; do
    step "bench-$sweep" 60 python3 -m fusedrnn.cli bench --sweep $sweep --passes fwd+bwd \
      --providers cuda_fused cuda_alternating triton cudnn_fp16 sdpa --out "$work"
  done
  [ "${NUMERICS:-1}" = 1 ] && step numerics 90 python3 -m fusedrnn.cli numerics --out "$work"
  step streaming 60 python3 tools/streaming_latency.py --profile --out "$work"
}

case $phase in
  check) tests; variants ;;
  tests) tests "$@" ;;
  tune) step plan-report 120 python3 tools/plan_report.py
        step tune-check 500 python3 tools/tune_check.py "$work" "${@:-16}" ;;
  sweep)
    step bench 300 python3 -m fusedrnn.cli bench --out "$work"
    step streaming 60 python3 tools/streaming_latency.py --profile --out "$work" ;;
  perf) perf ;;
  release) tests; NUMERICS=0 perf ;;  # the GPU tests, then the measurements, in one call
  verify)  # the GPU tests, the head sweep and the streaming latency (~5 minutes)
    tests
    step bench 200 python3 -m fusedrnn.cli bench --out "$work"
    step streaming 60 python3 tools/streaming_latency.py --profile --out "$work" ;;
  lm) step lm 540 bash examples/lm/measure_gpu.sh "$work" ;;
  batch)
    # at 768x1 also the grid's forward (tiles of up to 32 sequences) with the cluster's backward
    for split in 64x12 768x1; do
      plans=(); [ "$split" = 768x1 ] && plans=(--plan grid/cluster)
      step "batch-$split" 280 python3 -m fusedrnn.cli bench --sweep batch --splits "$split" --passes fwd fwd+bwd \
        --providers cuda_fused cuda_alternating triton cudnn_fp16 sdpa "${plans[@]}" --out "$work/$split"
    done ;;
  verify16)
    step pytest-backward 260 python3 -m pytest -q -m gpu -n 8 -p no:cacheprovider tests/test_cuda_fused.py \
      tests/test_cuda_alternating.py tests/test_cuda_alternating_resets.py tests/test_triton.py tests/test_triton_stepwise.py
    step memory-B256 60 python3 tools/module_memory.py --batch 256
    step fused-step-probe 240 python3 tools/fused_step_probe.py --B 64 256 ;;
  sanitize-stepwise)  # issue 16's item 8 for the Triton stepwise kernels: memcheck and racecheck on
    # the LSTM's forward and backward (fp32, DH 130, lengths, resets), launched and replayed
    for tool in memcheck racecheck; do
      step "sanitize-stepwise-$tool" 280 compute-sanitizer --tool "$tool" --error-exitcode 1 python3 -m pytest -q \
        -m gpu -p no:cacheprovider tests/test_triton_stepwise.py -k "gradients_match_the_reference and lstm and not slstm"
    done ;;
  step-probe) step fused-step-probe 500 python3 tools/fused_step_probe.py --B ${@:-64 256} ;;
  lm-batch)
    for B in 16 128; do
      for dtype in bf16 fp16; do
        step "lm-B$B-$dtype" 240 python3 examples/lm/train.py --compare --device cuda --dtype "$dtype" --width 768 \
          --heads 12 --layers 4 --seq 1024 --batch "$B" --steps 35 --warmup 5 --log-every 10 \
          --backend cuda_fused --out "$work/lm-B$B-$dtype.json"
      done
    done ;;
  resets)  # issue 18: correctness of every kernel family with resets, their cost, the packed layout
    step resets-tests 280 python3 -m pytest -q -n 8 -p no:cacheprovider -m "gpu or not gpu" tests/test_resets_cuda.py \
      tests/test_resets.py tests/test_cuda_alternating_resets.py
    step resets-cost 200 python3 tools/resets_cost.py --backends cuda_fused triton cuda_alternating --splits 64x12 768x1 \
      --batch 16 256
    step resets-lm 150 python3 examples/lm/train.py --model fused --layouts packed padded --device cuda --dtype bf16 \
      --width 768 --heads 12 --layers 4 --seq 1024 --batch 16 --steps 40 --warmup 5 --backend cuda_fused \
      --out "$work/layouts-fused.json" ;;
  scale)  # the batch axis (issue 16) at the batch sizes given (default 256): ours (and the grid's plans)
    # beside cuDNN fp16 at 64x12 and 768x1, a module's training-step memory, the tuner's top plans at
    # 64x12, where a forward+backward's time goes. SCALE_STEPS picks some (default all).
    want() { case " ${SCALE_STEPS:-bench memory tune breakdown} " in *" $1 "*) return 0 ;; esac; return 1; }
    for B in "${@:-256}"; do
      want bench && step "bench-B$B" 240 python3 -m fusedrnn.cli bench --splits 64x12 768x1 --batch "$B" \
        --passes fwd fwd+bwd --providers cuda_fused cuda_alternating cudnn_fp16 --plan grid/grid --out "$work/B$B"
      want memory && step "memory-B$B" 120 python3 tools/module_memory.py --batch "$B"
      want tune && step "tune-B$B" 150 python3 -m fusedrnn.cli tune --dh 64 --nh 12 --batch "$B" --top-k 6
      want breakdown && step "breakdown-B$B" 120 python3 tools/kernel_breakdown.py 64x12 768x1 --batch "$B"
    done ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac

tar czf "$OUT/$phase.tgz" -C "$(dirname "$work")" "$phase"
echo "== steps"; cat "$work/steps.txt"
for log in "$work"/*.txt; do
  case $(basename "$log") in gpu.txt|steps.txt) continue ;; esac
  echo "== $(basename "$log" .txt)"
  grep -E "passed|failed|error|Error|^\|" "$log" | tail -30 | cut -c1-160
done
