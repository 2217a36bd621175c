#!/usr/bin/env bash
# One device call that measures everything the kernel targets need (issue 14, item 5):
#   1. the GPU tests (pytest -m gpu), 2. the kernel benchmark (benchmarks/bench_kernels.py),
#   3. the whole-model timing (benchmarks/bench_models_gpu.py: VisNet paper order / fast fusion,
#      ResNet50, fp16, batch 1 and 128),
# each under its own time limit (140 + 250 + 80 s: within 8 minutes on an H100/H200), logs and
# JSON under the output folder, then one table (also written to gpu_check.md there).
#
#   benchmarks/gpu_check.sh [OUT_DIR]      (default: $OUT, else runs/gpu_check)
#
# Without a CUDA GPU it says so in one sentence and exits 2.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-runs/gpu_check}}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
  echo "No CUDA GPU is visible on this machine, so the GPU check cannot run."
  exit 2
fi
mkdir -p "$OUT_DIR"
: > "$OUT_DIR/steps.txt"
# Masked attention: the dispatcher's timed choices (path and per-path ms per shape class) land in
# the output folder, so the run brings them back (kernels/masked_attention/dispatch_timing.py).
export EDGE_REID_DISPATCH_CACHE="$OUT_DIR/attention_dispatch.json"

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to NAME.log, record rc and seconds
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  rc=$?
  echo "$name $rc $(( $(date +%s) - start )) $limit" >> "$OUT_DIR/steps.txt"
}

# (tests/test_bench_kernels.py's GPU test is left out: the benchmark step below runs the full benchmark)
step gpu_tests 150 python -m pytest -m gpu tests/test_kernels_gpu.py tests/test_kernels_dispatch.py \
  tests/test_kernels_host_work.py tests/test_kernels_linear_masked.py -q \
  -p no:cacheprovider --junitxml="$OUT_DIR/gpu_tests.xml"
step bench_kernels 250 python benchmarks/bench_kernels.py --out "$OUT_DIR"
step bench_models 80 python benchmarks/bench_models_gpu.py --out "$OUT_DIR"
python benchmarks/gpu_check_table.py "$OUT_DIR" | tee "$OUT_DIR/gpu_check.md"
