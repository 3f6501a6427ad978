#!/usr/bin/env bash
# The GPU checks in one script, for a GPU machine lent for minutes (under 8 minutes on one GPU):
#   1. the tests marked gpu (the trial's GPU from Ray, fp16 with GradScaler, bf16 autocast, four trials at
#      gpu 0.25), with a JUnit file;
#   2. benchmarks/gpu_check.py: P1 (epoch time in a trial against a bare loop on the same batches), trials
#      per GPU 1/2/4/8 with throughput and nvidia-smi's utilization, mixed precision on and off.
# Writes gpu_check.json and gpu_check.md (and the tests' gpu_tests.xml and the log) to --out, default $OUT
# (where the device tool collects files) else ./gpu-check.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, in the repository with its venv
#   bash benchmarks/gpu_check.sh --dry-run       # on a CPU: the gpu tests skip, tiny sizes (CI runs this)
#
# The Python is $PYTHON, else .venv/bin/python, else python3; on a GPU it needs torch's CUDA build.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=()
out="${OUT:-gpu-check}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=(--dry-run) ;;
        --out) out="$2"; shift ;;
        *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1

# Each step has its own limit so that one stuck step leaves time, and output, for the others.
echo "== gpu tests" | tee "$out/gpu_check.log"
timeout 180 "$python" -m pytest -q -rs -m gpu tests/training/test_gpu.py -p no:cacheprovider \
    --junitxml="$out/gpu_tests.xml" 2>&1 | tee -a "$out/gpu_check.log"
tests_rc=${PIPESTATUS[0]}

echo "== measurements" | tee -a "$out/gpu_check.log"
timeout 300 "$python" benchmarks/gpu_check.py --out "$out" --junit "$out/gpu_tests.xml" "${dry_run[@]}" 2>&1 \
    | tee -a "$out/gpu_check.log"
bench_rc=${PIPESTATUS[0]}

[ -f "$out/gpu_check.md" ] && cat "$out/gpu_check.md"
echo "gpu tests: exit $tests_rc; measurements: exit $bench_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
