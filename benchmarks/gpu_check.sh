#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU: build with its own Python packages (sm_90 plus the
# portable targets), run the GPU tests and the GPU benchmarks, write everything under $OUT.
# Usage: OUT=/some/dir bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  nvidia-smi || true
  python3 -c "import cupy; print('cupy', cupy.__version__)" || true
} > "$OUT/env.txt" 2>&1
export USFAST_CUDA=ON
export USFAST_CUDA_ARCHITECTURES="${USFAST_CUDA_ARCHITECTURES:-75-real;80-real;86-real;89-real;90-real;90-virtual}"
python3 -m pip install --no-build-isolation --no-deps . > "$OUT/build.log" 2>&1 \
  || { echo "build failed"; tail -40 "$OUT/build.log"; exit 1; }
usfast info | tee "$OUT/info.txt"
usfast doctor 2>&1 | tee "$OUT/doctor.txt"
python3 -m pytest -m gpu -q -x --timeout=300 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -20
python3 benchmarks/gpu_bench.py --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/gpu_bench.txt"
