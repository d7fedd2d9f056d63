#!/usr/bin/env bash
# Tokens/s of the examples/lm models on NVIDIA GPUs, and the distributed
# equivalence check on them. Usage: bash examples/lm/measure_gpu.sh OUT_DIR
# Each run prints a markdown table and writes its JSON under OUT_DIR.
set -uo pipefail  # no -e: one failing run must not hide the others' results
failed=0
OUT=${1:?usage: bash examples/lm/measure_gpu.sh OUT_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$HERE/../../src${PYTHONPATH:+:$PYTHONPATH}"  # this tree's fusedrnn
SIZE=(--width 768 --heads 12 --layers 4 --seq 1024)  # fused LSTM heads: 12 x DH 64
RUN=(--steps 60 --warmup 10 --log-every 20 --backend cuda_fused)
BATCH_PER_GPU=16
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
[ "$GPUS" -ge 1 ] || { echo "no CUDA GPU visible" >&2; exit 1; }

# 1. the three models on one GPU; cuDNN's LSTM is far faster in fp16 than in bf16, so both
for dtype in bf16 fp16; do
  "$PYTHON" "$HERE/train.py" --compare --device cuda --dtype "$dtype" "${SIZE[@]}" "${RUN[@]}" \
    --batch "$BATCH_PER_GPU" --out "$OUT/compare-$dtype.json" || failed=1
done

# 1b. documents packed with resets against one document a row (padded), fused LSTM and attention
for model in fused attention; do
  "$PYTHON" "$HERE/train.py" --model "$model" --layouts packed padded --device cuda --dtype bf16 "${SIZE[@]}" \
    "${RUN[@]}" --batch "$BATCH_PER_GPU" --out "$OUT/layouts-$model.json" || failed=1
done

# 2. DDP and FSDP2 on 1 and 2 GPUs, the same batch per GPU; then the scaling table
for strategy in ddp fsdp2; do
  for n in 1 2; do
    if [ "$n" -gt "$GPUS" ]; then echo "skipping $strategy on $n GPUs: $GPUS visible"; continue; fi
    "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$n" "$HERE/train_distributed.py" \
      --strategy "$strategy" --dtype bf16 "${SIZE[@]}" "${RUN[@]}" --batch $((BATCH_PER_GPU * n)) \
      --out "$OUT/$strategy-${n}gpu.json" || failed=1
  done
done
"$PYTHON" "$HERE/scaling.py" "$OUT" || failed=1

# 3. one step on 2 GPUs equals one step on the whole batch on one (exits non-zero if not)
if [ "$GPUS" -ge 2 ]; then
  for dtype in fp32 bf16; do
    "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node 2 "$HERE/check_distributed.py" \
      --backend cuda_fused --dtype "$dtype" --width 128 --heads 2 || failed=1
  done
fi
exit $failed
