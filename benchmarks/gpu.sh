#!/usr/bin/env bash
# The serving benchmark on a CUDA machine: fp16 variant, IO binding, one batch at a time.
# Needs onnxruntime-gpu importable as `onnxruntime`, torch + transformers (to build the
# benchmark bundle), and a text file: benchmarks/gpu.sh CORPUS OUT_DIR
set -euo pipefail
corpus=${1:?corpus file}
out=${2:?output dir}
mkdir -p "$out"
python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m training demo-bundle --out runs/bench-minilm --name bench-minilm --preset minilm \
    --corpus "$corpus" --variants fp32,fp16 | tail -n 25
for spec in "1 64" "1 256" "8 64"; do
    set -- $spec
    python3 benchmarks/serving.py --bundle runs/bench-minilm --data "$corpus" --providers cuda,cpu \
        --texts-per-request "$1" --concurrency "$2" --seconds "${BENCH_SECONDS:-10}" --warmup 3 \
        --json "$out/gpu-t$1-c$2.json"
done
