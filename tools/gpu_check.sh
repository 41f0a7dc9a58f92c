#!/usr/bin/env bash
# One-shot GPU check of the thrust backend and of its cost inside a DPO step, for a session
# that has a GPU machine. Run from the repository root on that machine; results go to $OUT
# (default build-gpu/out):
#
#   bash tools/gpu_check.sh                  all phases below, in order
#   bash tools/gpu_check.sh build tests      only the named phases
#
# Phases (each logs to $OUT/<phase>.txt and a line to $OUT/summary.txt; a failed phase does
# not stop the next one), with the seconds each may take:
#   build     180  nvcc -arch=sm_90 (CCCL and cuBLAS from the toolkit): the two thrust test
#                  programs on the CUDA system, examples/cuda/scheduler_on_gpu and
#                  bench/bench_gpu_scheduler, in parallel; when libtorch is also asked for,
#                  examples/libtorch is configured and built at the same time
#   tests      40  test_thrust_backend_cuda (every op against the Eigen backend) and
#                  test_thrust_parity_cuda (30-step scheduler parity, staging, memory)
#   example    15  examples/cuda/scheduler_on_gpu
#   memcheck   40  compute-sanitizer --tool memcheck on the example (6 scheduler steps)
#   bench      50  bench_gpu_scheduler at the paper's shapes (B = 8 and 64, D = H = 4096,
#                  N = 16, P = 32): GEMM rate, training phase vs GEMM time, full step, TF32
#   torch      30  bench/torch_scheduler_step.py, the same step in PyTorch, fp32 and TF32
#   dpo        85  bench/dpo_step_cost.py on CUDA: one DPO step of a 1.24 B Llama-like model
#                  at B = 8 and 64 pairs of 1024 tokens (55 s), then 3.2 B at B = 8 (30 s,
#                  dpo_3b.txt); at B = 8 also the peak memory of the two ways of extracting
#                  contexts
#   share      10  tools/gpu_share.py: share.txt, a Markdown table of bench, torch and dpo
#                  against the targets (fp32 step within 1.2x of GEMM time, TF32 >= 2x the
#                  fp32 PyTorch step, scheduler <= 5 % of the 1 B DPO step, context
#                  extraction < 1 % of its peak memory); "not measured" where a file is missing
#   libtorch   20  examples/libtorch against PyTorch's bundled LibTorch with
#                  SAMS_LIBTORCH_CUDA=ON (built by the build phase, else here in up to
#                  150 s): the example with --device cuda --quick, and test_libtorch_thrust
#                  if it was built
# Total: 470 s. Every phase is also cut to what is left of GPU_CHECK_TOTAL_S (default 470),
# so the script ends within 8 minutes; set it higher to spend longer, or split the phases
# over two calls (binaries stay in build-gpu/, git-ignored, on a warm machine). The limits
# are estimates made without a GPU machine; a phase that hits one logs rc=124.
#
# Dependencies on the GPU machine: nvcc (PATH or /usr/local/cuda/bin), g++, CMake, python3
# with torch for CUDA (or GPU_CHECK_PYTHON), Eigen 3.4 and doctest headers. If the machine lacks Eigen or doctest, run
# `bash tools/gpu_check.sh pack` on a machine that has them: it copies both into
# build-gpu-deps/ (git-ignored), which the device run then needs carried along (run tool:
# carry ["build-gpu-deps"]). For the CMake build of examples/libtorch the script then writes
# minimal Eigen3 and doctest package configs over those headers (build-gpu/cmake-deps).
# Untried blind: whether PyTorch's wheel's CMake files accept the machine's nvcc (its CUDA
# version may differ from the wheel's); libtorch_build.txt has the configure log.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BUILD=${GPU_CHECK_BUILD:-$ROOT/build-gpu}
DEPS=$ROOT/build-gpu-deps
OUT=${OUT:-$BUILD/out}
TOTAL=${GPU_CHECK_TOTAL_S:-470}
PY=${GPU_CHECK_PYTHON:-python3}  # the interpreter with torch
mkdir -p "$BUILD" "$OUT"

phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build tests example memcheck bench torch dpo share libtorch)

log() { echo "[$(date +%T)] $*" | tee -a "$OUT/summary.txt"; }

if [ "${phases[0]}" = pack ]; then
    mkdir -p "$DEPS"
    rm -rf "$DEPS/eigen3" "$DEPS/doctest"
    mkdir -p "$DEPS/eigen3"
    cp -r /usr/include/eigen3/Eigen "$DEPS/eigen3/"
    cp -r /usr/include/doctest "$DEPS/"
    du -sh "$DEPS"
    exit 0
fi

NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
EIGEN_INC=/usr/include/eigen3
[ -f "$EIGEN_INC/Eigen/Core" ] || EIGEN_INC=$DEPS/eigen3
DOCTEST_INC=/usr/include
[ -f "$DOCTEST_INC/doctest/doctest.h" ] || DOCTEST_INC=$DEPS
DOCTEST_FLAGS=()
[ "$DOCTEST_INC" = /usr/include ] || DOCTEST_FLAGS=(-isystem "$DEPS")
# shellcheck disable=SC2054  # -Xcompiler takes a comma-separated list
COMMON=(-std=c++20 -arch=sm_90 -lineinfo -DEIGEN_NO_CUDA --diag-suppress=554 -Xcompiler=-Wall,-Wextra
        -I"$ROOT/include" -I"$ROOT/tests" -isystem "$EIGEN_INC" "${DOCTEST_FLAGS[@]}")

# Seconds a phase may take: its own limit, cut to what is left of the script's TOTAL.
budget() {
    local limit=$1 left=$((TOTAL - SECONDS))
    [ "$limit" -gt "$left" ] && limit=$left
    echo "$limit"
}

# Seconds until the deadline $1 (in $SECONDS), at least 1: `timeout 0` would mean no limit.
until_s() {
    local r=$(($1 - SECONDS))
    [ "$r" -lt 1 ] && r=1
    echo "$r"
}

run_phase() {  # name, timeout seconds, command...
    local name=$1 limit
    limit=$(budget "$2")
    shift 2
    if [ "$limit" -lt 5 ]; then
        log "$name: skipped (the ${TOTAL} s budget is spent)"
        return 124
    fi
    local start=$SECONDS
    timeout -k 5 "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    log "$name: rc=$rc ($((SECONDS - start)) s, limit $limit s)"
    return $rc
}

wants() {  # is phase $1 among those asked for?
    local p
    for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done
    return 1
}

# Package configs for CMake over the headers of build-gpu-deps, for machines without the
# Eigen or doctest packages (find_package(Eigen3 3.4 NO_MODULE) and find_package(doctest)).
cmake_dep_flags() {
    local dir=$BUILD/cmake-deps
    local found=0 c
    for c in /usr/share/eigen3/cmake /usr/lib/cmake/eigen3 /usr/local/share/eigen3/cmake; do
        [ -f "$c/Eigen3Config.cmake" ] && found=1
    done
    if [ $found = 0 ]; then
        local v
        v=$(awk '/#define EIGEN_(WORLD|MAJOR|MINOR)_VERSION/ {printf "%s%s", sep, $3; sep="."}' \
            "$EIGEN_INC/Eigen/src/Core/util/Macros.h")
        mkdir -p "$dir/eigen3"
        cat >"$dir/eigen3/Eigen3Config.cmake" <<CFG
if(NOT TARGET Eigen3::Eigen)
  add_library(Eigen3::Eigen INTERFACE IMPORTED)
  set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "$EIGEN_INC")
endif()
set(EIGEN3_INCLUDE_DIR "$EIGEN_INC")
CFG
        cat >"$dir/eigen3/Eigen3ConfigVersion.cmake" <<CFG
set(PACKAGE_VERSION "$v")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
CFG
        echo "-DEigen3_DIR=$dir/eigen3"
    fi
    found=0
    for c in /usr/lib/cmake/doctest /usr/local/lib/cmake/doctest /usr/lib/x86_64-linux-gnu/cmake/doctest; do
        [ -f "$c/doctestConfig.cmake" ] && found=1
    done
    if [ $found = 0 ] && [ -f "$DOCTEST_INC/doctest/doctest.h" ]; then
        mkdir -p "$dir/doctest"
        cat >"$dir/doctest/doctestConfig.cmake" <<CFG
if(NOT TARGET doctest::doctest)
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "$DOCTEST_INC")
endif()
CFG
        echo "-Ddoctest_DIR=$dir/doctest"
    fi
}

# examples/libtorch against PyTorch's LibTorch, with the thrust session for CUDA. Run under
# one outer timeout (bash -c, hence the exports) so that the whole build is one process group.
libtorch_build() {
    local prefix cuda_root flags=()
    prefix=$(timeout --foreground 60 "$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') ||
        { echo "$PY has no torch"; return 1; }
    cuda_root=$(dirname "$(dirname "$NVCC")")
    mapfile -t flags < <(cmake_dep_flags)
    echo "torch prefix: $prefix; CUDA: $cuda_root; extra: ${flags[*]}"
    # CMAKE_POLICY_VERSION_MINIMUM: CMake 4 refuses package files that ask for CMake < 3.5.
    cmake -S examples/libtorch -B "$BUILD/libtorch" \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release -DSAMS_LIBTORCH_CUDA=ON \
        -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 -DCUDAToolkit_ROOT="$cuda_root" \
        -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${flags[@]}" || return 1
    cmake --build "$BUILD/libtorch" -j "$(nproc)"
}
export -f libtorch_build cmake_dep_flags
export BUILD NVCC EIGEN_INC DOCTEST_INC PY

# Background jobs are timeouts, each leading its own process group: ended with the script.
BG=()
end_background() {
    local g
    for g in "${BG[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
}
trap end_background EXIT
trap 'exit 143' TERM INT

phase_build() {
    local end=$1
    {
        echo "nvcc: $NVCC"; "$NVCC" --version | tail -2
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
        echo "eigen: $EIGEN_INC"
    } >"$OUT/environment.txt" 2>&1
    local pids=() rc=0 torch_pid=""
    if wants libtorch; then  # alongside nvcc; its result is logged apart from the build's
        timeout -k 5 "$(until_s "$end")" bash -c libtorch_build >"$OUT/libtorch_build.txt" 2>&1 &
        torch_pid=$!
        BG+=("$torch_pid")
    fi
    timeout -k 5 "$(until_s "$end")" "$NVCC" -std=c++20 "${DOCTEST_FLAGS[@]}" -c tests/doctest_main.cpp \
        -o "$BUILD/doctest_main.o" || rc=1
    # name, optimisation, source, extra objects...: one nvcc per program, in parallel unless
    # GPU_CHECK_SERIAL=1 (to try the build on a small machine).
    compile() {
        local name=$1 opt=$2 src=$3
        shift 3
        timeout -k 5 "$(until_s "$end")" "$NVCC" "${COMMON[@]}" "$opt" "$src" "$@" -lcublas -o "$BUILD/$name" \
            >"$OUT/build_$name.txt" 2>&1 &
        BG+=($!)
        if [ "${GPU_CHECK_SERIAL:-0}" = 1 ]; then wait $! || rc=1; else pids+=($!); fi
    }
    compile test_thrust_backend_cuda -O2 tests/thrust/test_thrust_backend.cu "$BUILD/doctest_main.o"
    compile test_thrust_parity_cuda -O2 tests/thrust/test_thrust_parity.cu "$BUILD/doctest_main.o"
    compile scheduler_on_gpu -O2 examples/cuda/scheduler_on_gpu.cu
    compile bench_gpu_scheduler -O3 bench/bench_gpu_scheduler.cu
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    if [ -n "$torch_pid" ]; then
        wait "$torch_pid"
        log "libtorch_build: rc=$? (with the build)"
    fi
    BG=()
    for f in "$OUT"/build_*.txt; do [ -s "$f" ] && { echo "== $f"; cat "$f"; }; done
    return $rc
}

phase_libtorch() {
    local ex=$BUILD/libtorch/example_libtorch_dpo_sams rc=0
    [ -x "$ex" ] || run_phase libtorch_build 150 bash -c libtorch_build
    [ -x "$ex" ] || { log "libtorch: not built, see libtorch_build.txt"; return 1; }
    run_phase libtorch 20 "$ex" --device cuda --quick --quiet --methods dpo,sams || rc=1
    if [ -x "$BUILD/libtorch/test_libtorch_thrust" ]; then
        run_phase libtorch_thrust_test 20 "$BUILD/libtorch/test_libtorch_thrust" || rc=1
    else
        log "libtorch_thrust_test: test_libtorch_thrust not built"
    fi
    return $rc
}

for phase in "${phases[@]}"; do
    case $phase in
    build)
        start=$SECONDS
        limit=$(budget 180)
        phase_build $((SECONDS + limit)) >"$OUT/build.txt" 2>&1
        log "build: rc=$? ($((SECONDS - start)) s, limit $limit s)"
        ;;
    tests)
        run_phase test_thrust_backend 20 "$BUILD/test_thrust_backend_cuda"
        run_phase test_thrust_parity 20 "$BUILD/test_thrust_parity_cuda"
        ;;
    example) run_phase example 15 "$BUILD/scheduler_on_gpu" ;;
    memcheck)
        SANITIZER=$(command -v compute-sanitizer || true)
        for c in "$(dirname "$NVCC")/compute-sanitizer" /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
            [ -z "$SANITIZER" ] && [ -x "$c" ] && SANITIZER=$c
        done
        [ -z "$SANITIZER" ] && SANITIZER=$(find /usr/local /opt /usr/lib/python3* -name compute-sanitizer -type f \
            -perm -u+x 2>/dev/null | head -1)
        if [ -n "$SANITIZER" ]; then
            run_phase memcheck 40 "$SANITIZER" --tool memcheck --leak-check full --error-exitcode 1 \
                "$BUILD/scheduler_on_gpu"
        else
            # Second best: every launch synchronous, so a fault is reported at the kernel that made it.
            log "memcheck: compute-sanitizer not found; running the example with CUDA_LAUNCH_BLOCKING=1 instead"
            run_phase memcheck_fallback 20 env CUDA_LAUNCH_BLOCKING=1 "$BUILD/scheduler_on_gpu"
        fi
        ;;
    bench) run_phase bench 50 "$BUILD/bench_gpu_scheduler" --batches 8,64 --reps 5 ;;
    torch) run_phase torch 30 "$PY" bench/torch_scheduler_step.py --batches 8,64 --reps 5 ;;
    dpo)
        # 1 B first: the share table needs it; the 3 B point is the second, if time is left.
        run_phase dpo 55 "$PY" bench/dpo_step_cost.py --size 1b --pairs 8,64 --context-pairs 8 --reps 3 --warmup 1
        run_phase dpo_3b 30 "$PY" bench/dpo_step_cost.py --size 3b --pairs 8 --reps 3 --warmup 1
        ;;
    share)
        run_phase share 10 python3 tools/gpu_share.py "$OUT" && cat "$OUT/share.txt" >>"$OUT/summary.txt"
        ;;
    libtorch) phase_libtorch ;;
    *) log "unknown phase $phase" ;;
    esac
done
log "done in $SECONDS s; results in $OUT"
