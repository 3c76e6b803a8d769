#!/usr/bin/env bash
# One prepared GPU check (issue 19): the CUDA-only tests, then every paper-scale experiment for
# 20 timed training steps in bf16 with channels-last (images/s, peak memory, achieved TFLOP/s and
# the share of the device's bf16 peak), written as a markdown table for docs/benchmarks.md.
#
#   benchmarks/gpu_check.sh                          # on the GPU machine (< 8 min on one H200)
#   benchmarks/gpu_check.sh --device cpu --steps 2 --quick   # the same path end to end on a CPU
#
# Options: --device cuda|cpu (cuda), --steps N timed steps (20), --warmup N untimed steps (5; the
# profile takes 2 of them), --quick (tiny inputs: a smoke test, not a measurement),
# --peak TFLOPS (790: the bf16 peak the issue measures against for an H100/H200; the data-sheet
# dense figure is 989), --out DIR (benchmarks/results). Environment: PYTHON (.venv/bin/python),
# GPU_CHECK_BUDGET seconds for tests + methods (460 on cuda, 3600 on cpu; rows finished before the
# limit are kept).
#
# Writes DIR/methods_<device>[_quick].{json,md} (after every method), DIR/profile_<method>.txt
# (torch.profiler top operators of 2 warm-up steps, for the rows under 15 % of peak) and
# DIR/gpu_table_<device>[_quick].md: the table with the command, the device and the test result,
# ready to paste into docs/benchmarks.md ("GPU table"). Exit status: non-zero if the tests fail
# or a method row is an error (the table is still written).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

device=cuda steps=20 warmup=5 quick="" peak=790 out=benchmarks/results
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --quick) quick="--quick"; shift ;;
    --peak) peak="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "gpu_check.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$warmup" -lt 3 ]; then
  echo "gpu_check.sh: --warmup must be >= 3 (2 warm-up steps are profiled after the first)" >&2
  exit 2
fi
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
suffix="${device}${quick:+_quick}"
start=$(date +%s)

# 1. CUDA-only tests: every test that skips without CUDA (skipif(not torch.cuda.is_available()))
cuda_files=$(grep -l "cuda.is_available" tests/test_*.py | tr '\n' ' ')
echo "[gpu_check] CUDA-only tests in: $cuda_files" >&2
test_log="$out/gpu_check_tests_${suffix}.log"
# shellcheck disable=SC2086
timeout 120 "$py" -m pytest $cuda_files -q -k cuda -p no:cacheprovider >"$test_log" 2>&1
test_rc=$?
test_line=$(grep -E "passed|failed|skipped|error" "$test_log" | tail -1)
echo "[gpu_check] tests (rc $test_rc): $test_line" >&2

# 2. the paper-scale experiments, bf16 + channels-last, 20 timed steps each
methods=supervised-city,s4mc-city,byol,ssenet,depthmix,s5
cmd=("$py" benchmarks/methods.py --device "$device" --amp bf16 --channels-last
     --iters "$steps" --warmup "$warmup" --methods "$methods" --peak-tflops "$peak" --profile
     --out "$out" $quick)
echo "[gpu_check] ${cmd[*]}" >&2
# the 8-minute budget of the GPU machine (tests included); a CPU smoke run gets an hour
budget=${GPU_CHECK_BUDGET:-$([ "$device" = cuda ] && echo 460 || echo 3600)}
timeout $((budget - ($(date +%s) - start))) "${cmd[@]}"
bench_rc=$?

# 3. the table for docs/benchmarks.md
table="$out/methods_${suffix}.md"
dest="$out/gpu_table_${suffix}.md"
{
  echo "Measured with \`benchmarks/gpu_check.sh --device $device --steps $steps --warmup $warmup${quick:+ --quick}\`"
  echo "on $(date -u '+%Y-%m-%d %H:%M UTC') in $(( $(date +%s) - start )) s; CUDA-only tests:"
  echo "${test_line:-no result} (exit $test_rc). Share of peak = train TFLOP/s / $peak TFLOP/s"
  echo "(bf16); TFLOP/s count convolutions and matrix products only (a lower bound). Rows under"
  echo "15 % name their profile (top operators of 2 warm-up steps)."
  echo
  if [ -f "$table" ]; then cat "$table"; else echo "No table: benchmarks/methods.py wrote none (exit $bench_rc)."; fi
} >"$dest"
cat "$dest"
grep -q "| error:" "$table" 2>/dev/null && bench_rc=${bench_rc/#0/1}
[ "$test_rc" -eq 0 ] || [ "$test_rc" -eq 5 ] || exit "$test_rc"
exit "$bench_rc"
