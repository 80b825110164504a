#!/usr/bin/env bash
# Compile-checks the CUDA backend without a GPU: every cuda/*.cu and
# cuda/kernels/*.cu is compiled with the nvcc on PATH for sm_90 and sm_80 into
# object files in a temp dir (warnings as errors for our code), and the
# backend files are checked to need no Node/N-API headers (only cpp/ and cuda/
# are on the include path). Used by .ci/run when nvcc exists.
#
#   scripts/cuda-compile-check.sh            # backend + kernels (objects only)
#   scripts/cuda-compile-check.sh --dev [DIR] # also build the cuda/dev harnesses
#                                            # as executables into DIR (default
#                                            # .tmp/cuda-dev) to run on a GPU
# The dev harnesses are always compiled (as objects) too, so they cannot rot.
# Environment: NVCC (default nvcc), CUDA_ARCHS (default "90 80"), JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC=${NVCC:-nvcc}
ARCHS=${CUDA_ARCHS:-"90 80"}
JOBS=${JOBS:-1}
DEV=0
DEV_OUT=.tmp/cuda-dev
if [ "${1:-}" = "--dev" ]; then
  DEV=1
  [ -n "${2:-}" ] && DEV_OUT=$2
fi

if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "cuda-compile-check: $NVCC not found" >&2
  exit 1
fi
echo "cuda-compile-check: $("$NVCC" --version | tail -1), archs: $ARCHS"

gencode=()
for a in $ARCHS; do gencode+=("-gencode=arch=compute_${a},code=sm_${a}"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c++17 -O3 "${gencode[@]}" -Icpp -Icuda
       -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-Werror
       -Werror all-warnings --expt-relaxed-constexpr)

mapfile -t sources < <(ls cuda/*.cu cuda/kernels/*.cu 2>/dev/null | sort)
if [ ${#sources[@]} -eq 0 ]; then
  echo "cuda-compile-check: no CUDA sources" >&2
  exit 1
fi

# The backend must be compilable without Node headers: fail if any CUDA file
# (or header it pulls from cuda/) mentions napi.
if grep -l -E '#include *[<"](napi|node_api|node)\.h' cuda/*.cu cuda/*.h cuda/kernels/* 2>/dev/null; then
  echo "cuda-compile-check: the files above include Node headers; the CUDA backend must not" >&2
  exit 1
fi

start=$(date +%s)
fails=0
compile() {
  local src=$1 obj="$tmp/$(echo "$1" | tr '/' '_').o"
  local t0; t0=$(date +%s)
  if "$NVCC" "${flags[@]}" -c "$src" -o "$obj" 2>"$obj.log"; then
    echo "  ok   $src ($(( $(date +%s) - t0 ))s)"
  else
    echo "  FAIL $src"
    sed 's/^/       /' "$obj.log"
    return 1
  fi
}
export -f compile 2>/dev/null || true

if [ "$JOBS" -le 1 ]; then
  for s in "${sources[@]}"; do compile "$s" || fails=$((fails + 1)); done
else
  # Bounded parallelism on machines that have cores to spare.
  pids=()
  for s in "${sources[@]}"; do
    compile "$s" > "$tmp/$(echo "$s" | tr '/' '_').out" 2>&1 &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
  done
  i=0
  for p in "${pids[@]}"; do
    wait "$p" || fails=$((fails + 1))
    cat "$tmp/$(echo "${sources[$i]}" | tr '/' '_').out"
    i=$((i + 1))
  done
fi

if [ "$DEV" = 0 ]; then
  # Objects only, so that the harnesses cannot rot unnoticed.
  for h in cuda/dev/*.cu; do
    [ -e "$h" ] || continue
    compile "$h" || fails=$((fails + 1))
  done
else
  mkdir -p "$DEV_OUT"
  # Harnesses link the objects compiled above. A harness names the production
  # files it needs on a line "// deps: a.cu b.cu" ("all" = every backend file);
  # cuda_errors.cu (launch checks) always comes along. cudart is static; -ldl
  # for the cuBLAS loader.
  build_dev() {
    local h=$1 name line t0 d
    name=$(basename "$h" .cu)
    line=$(grep -m1 '^// deps:' "$h" || true)
    local deps=(cuda/cuda_errors.cu)
    if [ "${line#// deps:}" = " all" ]; then
      deps=("${sources[@]}")
    else
      for d in ${line#// deps:}; do deps+=("$d"); done
    fi
    local objs=()
    for d in "${deps[@]}"; do objs+=("$tmp/$(echo "$d" | tr '/' '_').o"); done
    t0=$(date +%s)
    if "$NVCC" "${flags[@]}" "$h" "${objs[@]}" -o "$DEV_OUT/$name" -ldl 2>"$tmp/$name.log"; then
      echo "  ok   $h -> $DEV_OUT/$name ($(( $(date +%s) - t0 ))s)"
    else
      echo "  FAIL $h"
      sed 's/^/       /' "$tmp/$name.log"
      return 1
    fi
  }
  dev_pids=()
  for h in cuda/dev/*.cu; do
    if [ "$JOBS" -le 1 ]; then
      build_dev "$h" || fails=$((fails + 1))
    else
      build_dev "$h" > "$tmp/$(basename "$h").dev.out" 2>&1 &
      dev_pids+=("$!:$h")
    fi
  done
  for ph in "${dev_pids[@]}"; do
    wait "${ph%%:*}" || fails=$((fails + 1))
    cat "$tmp/$(basename "${ph#*:}").dev.out"
  done
fi

echo "cuda-compile-check: ${#sources[@]} sources, $fails failed, $(( $(date +%s) - start ))s"
[ "$fails" -eq 0 ]
