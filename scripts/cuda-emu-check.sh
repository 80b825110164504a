#!/usr/bin/env bash
# The CUDA backend on the CPU emulator (docs/cuda-emulation.md): builds the
# addon with -DBAYESLORA_CUDA_EMU=ON (cuda/ compiled as C++ against
# cuda/emu/include) and the cuBLAS emulator, under AddressSanitizer by default
# (device buffers are heap blocks, so a kernel that reads or writes past one
# is reported), then runs
#   1. the cuBLAS emulator's self-check against a float64 reference,
#   2. the GPU parity suite, node --test test/gpu/*.test.mjs (every op and the
#      whole model, cuda vs cpu), with BAYESLORA_REQUIRE_CUDA=1,
#   3. the 7B benchmark script end to end on a tiny shape (--device cuda),
#      and the cuda/dev kernel harnesses' checks (odd and 7B shapes),
#   4. the main job (bayeslora run) on a tiny model, cuda against cpu,
# and writes .tmp/cuda-emu.json {passed, failed, ...}; exit 0 only if all passed.
# This checks kernel logic, launch configurations, the backend's host code and
# its cuBLAS calls; it says nothing about speed, and a GPU's memory model and
# true concurrency are not emulated (see the doc).
# Options: --no-asan (plain -O3 build, faster to run), --build-dir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ASAN=1
BUILD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-asan) ASAN=0 ;;
    --build-dir) BUILD=$2; shift ;;
    *) echo "cuda-emu-check: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$BUILD" ] || BUILD=$([ $ASAN = 1 ] && echo build-emu-asan || echo build-emu)
mkdir -p .tmp
LOG=.tmp/cuda-emu.log
: > "$LOG"

flags=(--CDCMAKE_BUILD_TYPE=Release --CDBAYESLORA_CUDA_EMU=ON --CDBAYESLORA_CUBLAS_EMU=ON)
if [ $ASAN = 1 ]; then
  flags+=(--CDBAYESLORA_ASAN=ON)
fi
BLOG=.tmp/$(basename "$BUILD").build.log
echo "cuda-emu: building $BUILD (asan=$ASAN)"
CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-2} npx cmake-js compile "${flags[@]}" -O "$BUILD" > "$BLOG" 2>&1 || {
  grep -E 'error' "$BLOG" | head -20
  echo '{"passed": 0, "failed": 1, "error": "build failed"}' > .tmp/cuda-emu.json
  echo "cuda-emu: build failed (see $BLOG)"
  exit 1
}

export BAYESLORA_ADDON=$ROOT/$BUILD/Release/bayeslora.node
export BAYESLORA_CUBLAS=$ROOT/$BUILD/Release/libcublas_emu.so
export BAYESLORA_REQUIRE_CUDA=1
if [ $ASAN = 1 ]; then
  # node itself is not instrumented: the runtime is preloaded; leaks are the
  # native test's business (npm run test:native), not this check's.
  export LD_PRELOAD=$(g++ -print-file-name=libasan.so)
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1
fi

passed=0
failed=0
results=()
record() {  # name status
  results+=("\"$1\": \"$2\"")
  if [ "$2" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "cuda-emu: $1 $2"
}

# 1. cuBLAS emulator self-check (the library the backend dlopens here).
if "$BUILD/Release/cublas_emu_check" "$BAYESLORA_CUBLAS" >> "$LOG" 2>&1; then record cublas_emu_check ok; else record cublas_emu_check fail; fi

# 1b. The CUDA emulator's own self-test (cuda/emu/selftest): CUDA semantics it
# must compute exactly, and every bug class it claims to catch.
if "$BUILD/Release/cuda_emu_selftest" >> "$LOG" 2>&1; then record cuda_emu_selftest ok; else record cuda_emu_selftest fail; fi

# 2. GPU parity suite: each node:test counts.
set +e
node --test --test-reporter=tap test/gpu/*.test.mjs > .tmp/cuda-emu-tests.tap 2>> "$LOG"
set -e
cat .tmp/cuda-emu-tests.tap >> "$LOG"
tp=$(grep -E '^# pass ' .tmp/cuda-emu-tests.tap | awk '{print $3}' || true)
tf=$(grep -E '^# fail ' .tmp/cuda-emu-tests.tap | awk '{print $3}' || true)
ts=$(grep -E '^# skipped ' .tmp/cuda-emu-tests.tap | awk '{print $3}' || true)
tp=${tp:-0}; tf=${tf:-1}; ts=${ts:-0}
grep -E '^not ok|^# Subtest|error:' .tmp/cuda-emu-tests.tap | grep -B1 -A0 'not ok' | head -20 || true
passed=$((passed + tp)); failed=$((failed + tf))
[ "$ts" = 0 ] || { echo "cuda-emu: $ts parity tests skipped: the emulated device should be usable"; failed=$((failed + ts)); }
echo "cuda-emu: parity suite $tp passed, $tf failed, $ts skipped"

# 3. The 7B benchmark script on a tiny shape, on the emulated device.
if node test/gpu/bench7b.mjs --device cuda --layers 2 --hidden 64 --ffn 128 --heads 4 --vocab 256 --batch 2 \
     --seq 32 --batches 2 --predict-batches 1 --tf32 --out .tmp/cuda-emu-bench7b.json >> "$LOG" 2>&1 &&
   node -e 'const r=JSON.parse(require("fs").readFileSync(".tmp/cuda-emu-bench7b.json","utf8"));process.exit(r && typeof r === "object" ? 0 : 1)'; then
  record bench7b_smoke ok
else
  record bench7b_smoke fail
fi

# 3b. The cuda/dev kernel harnesses (CPU reference and checker per kernel, at
# odd and LLaMA2-7B shapes), checks only (BL_DEV_CHECK_ONLY=1: no timing).
for h in errors_dev rmsnorm_dev attention_dev pointwise_dev lora_dev lora_gemm_dev; do
  if [ -x "$BUILD/Release/${h}_emu" ] && BL_DEV_CHECK_ONLY=1 "$BUILD/Release/${h}_emu" >> "$LOG" 2>&1; then
    record "$h" ok
  else
    record "$h" fail
  fi
done

# 4. The main job end to end, --device cuda against --device cpu (tiny random
# model, small task slices): every report row must agree.
if node --import tsx test/gpu/main-job-e2e.mts >> "$LOG" 2>&1; then record main_job_e2e ok; else record main_job_e2e fail; fi
grep '^main-job-e2e:' "$LOG" | tail -1 || true

if grep -q 'ERROR: AddressSanitizer' "$LOG"; then
  echo "cuda-emu: AddressSanitizer reported errors (see $LOG)"
  grep -A12 'ERROR: AddressSanitizer' "$LOG" | head -40
  failed=$((failed + 1))
fi
emu_errors=$(grep -c '^bl-emu:' "$LOG" || true)
printf '{"passed": %d, "failed": %d, "asan": %s, "emulator_messages": %d, %s}\n' \
  "$passed" "$failed" "$([ $ASAN = 1 ] && echo true || echo false)" "$emu_errors" "$(IFS=,; echo "${results[*]}")" \
  > .tmp/cuda-emu.json
echo "cuda-emu: $passed passed, $failed failed (log: $LOG)"
[ "$failed" = 0 ]
