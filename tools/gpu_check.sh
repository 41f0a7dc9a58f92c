#!/usr/bin/env bash
# One-shot GPU check of the thrust backend (issue 5), for a session that has a GPU machine.
# Run from the repository root on that machine; results go to $OUT (default build-gpu/out):
#
#   bash tools/gpu_check.sh                  all phases below, in order
#   bash tools/gpu_check.sh build tests      only the named phases
#
# Phases (each logs to $OUT/<phase>.txt and a line to $OUT/summary.txt; a failed phase does
# not stop the next one):
#   build     nvcc -arch=sm_90 (CCCL and cuBLAS from the toolkit): the two thrust test
#             programs on the CUDA system, examples/cuda/scheduler_on_gpu and
#             bench/bench_gpu_scheduler, four translation units built in parallel
#   tests     test_thrust_backend_cuda (every op against the Eigen backend) and
#             test_thrust_parity_cuda (30-step scheduler parity, staging, memory)
#   example   examples/cuda/scheduler_on_gpu
#   memcheck  compute-sanitizer --tool memcheck on the example (6 scheduler steps)
#   bench     bench_gpu_scheduler at the paper's shapes (B = 8 and 64, D = H = 4096, N = 16,
#             P = 32): GEMM rate, training phase vs GEMM time, full step, TF32 accuracy
#   torch     bench/torch_scheduler_step.py, the same step in PyTorch, fp32 and TF32
#
# Dependencies on the GPU machine: nvcc (PATH or /usr/local/cuda/bin), g++, Eigen 3.4 and
# doctest headers. If the machine lacks Eigen or doctest, run `bash tools/gpu_check.sh pack`
# on a machine that has them: it copies both into build-gpu-deps/ (git-ignored), which the
# device run then needs carried along (run tool: carry ["build-gpu-deps"]).
# Budget: build ≈ 2–4 min on 16 cores, tests + example + memcheck ≈ 2 min, bench ≈ 2–3 min,
# torch ≈ 1–2 min. Binaries stay in build-gpu/ (git-ignored) between calls on a warm machine,
# so the phases can be split over two calls.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=${GPU_CHECK_BUILD:-$ROOT/build-gpu}
DEPS=$ROOT/build-gpu-deps
OUT=${OUT:-$BUILD/out}
mkdir -p "$BUILD" "$OUT"

phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build tests example memcheck bench torch)

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
DOCTEST_FLAGS=()
[ -f /usr/include/doctest/doctest.h ] || DOCTEST_FLAGS=(-isystem "$DEPS")
COMMON=(-std=c++20 -arch=sm_90 -lineinfo -DEIGEN_NO_CUDA --diag-suppress=554 -Xcompiler=-Wall,-Wextra
        -I"$ROOT/include" -isystem "$EIGEN_INC" "${DOCTEST_FLAGS[@]}")

run_phase() {  # name, timeout seconds, command...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    log "$name: rc=$rc ($((SECONDS - start)) s)"
    return $rc
}

phase_build() {
    {
        echo "nvcc: $NVCC"; "$NVCC" --version | tail -2
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
        echo "eigen: $EIGEN_INC"
    } >"$OUT/environment.txt" 2>&1
    "$NVCC" -std=c++20 "${DOCTEST_FLAGS[@]}" -c tests/doctest_main.cpp -o "$BUILD/doctest_main.o" || return 1
    local pids=() rc=0
    # name, optimisation, source, extra objects...: one nvcc per program, in parallel unless
    # GPU_CHECK_SERIAL=1 (to try the build on a small machine).
    compile() {
        local name=$1 opt=$2 src=$3
        shift 3
        "$NVCC" "${COMMON[@]}" "$opt" "$src" "$@" -lcublas -o "$BUILD/$name" >"$OUT/build_$name.txt" 2>&1 &
        if [ "${GPU_CHECK_SERIAL:-0}" = 1 ]; then wait $! || rc=1; else pids+=($!); fi
    }
    compile test_thrust_backend_cuda -O2 tests/thrust/test_thrust_backend.cu "$BUILD/doctest_main.o"
    compile test_thrust_parity_cuda -O2 tests/thrust/test_thrust_parity.cu "$BUILD/doctest_main.o"
    compile scheduler_on_gpu -O2 examples/cuda/scheduler_on_gpu.cu
    compile bench_gpu_scheduler -O3 bench/bench_gpu_scheduler.cu
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    for f in "$OUT"/build_*.txt; do [ -s "$f" ] && { echo "== $f"; cat "$f"; }; done
    return $rc
}

for phase in "${phases[@]}"; do
    case $phase in
    build)
        start=$SECONDS
        phase_build >"$OUT/build.txt" 2>&1
        log "build: rc=$? ($((SECONDS - start)) s)"
        ;;
    tests)
        run_phase test_thrust_backend 180 "$BUILD/test_thrust_backend_cuda"
        run_phase test_thrust_parity 180 "$BUILD/test_thrust_parity_cuda"
        ;;
    example) run_phase example 60 "$BUILD/scheduler_on_gpu" ;;
    memcheck)
        SANITIZER=$(command -v compute-sanitizer || true)
        for c in "$(dirname "$NVCC")/compute-sanitizer" /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
            [ -z "$SANITIZER" ] && [ -x "$c" ] && SANITIZER=$c
        done
        [ -z "$SANITIZER" ] && SANITIZER=$(find /usr/local /opt /usr/lib/python3* -name compute-sanitizer -type f \
            -perm -u+x 2>/dev/null | head -1)
        if [ -n "$SANITIZER" ]; then
            run_phase memcheck 300 "$SANITIZER" --tool memcheck --leak-check full --error-exitcode 1 \
                "$BUILD/scheduler_on_gpu"
        else
            # Second best: every launch synchronous, so a fault is reported at the kernel that made it.
            log "memcheck: compute-sanitizer not found; running the example with CUDA_LAUNCH_BLOCKING=1 instead"
            run_phase memcheck_fallback 120 env CUDA_LAUNCH_BLOCKING=1 "$BUILD/scheduler_on_gpu"
        fi
        ;;
    bench) run_phase bench 420 "$BUILD/bench_gpu_scheduler" --batches 8,64 --reps 5 ;;
    torch) run_phase torch 300 python3 bench/torch_scheduler_step.py --batches 8,64 --reps 5 ;;
    *) log "unknown phase $phase" ;;
    esac
done

# The numbers side by side (bench and torch write one JSON object per line).
if [ -f "$OUT/bench.txt" ] || [ -f "$OUT/torch.txt" ]; then
    python3 - "$OUT" <<'EOF' >>"$OUT/summary.txt" 2>&1 || true
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = []
for name in ("bench.txt", "torch.txt"):
    p = out / name
    if p.exists():
        for line in p.read_text().splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line))
step = {(r["B"], r["tf32"]): r for r in rows if r["bench"] == "step"}
torch_step = {(r["B"], r["tf32"]): r for r in rows if r["bench"] == "torch_step"}
for r in rows:
    if r["bench"] in ("gemm", "train", "tf32_accuracy", "device", "torch_device"):
        print(json.dumps(r))
for key in sorted(set(step) | set(torch_step)):
    s, t = step.get(key), torch_step.get(key)
    ratio = (t["median_ms"] / s["median_ms"]) if s and t else float("nan")
    print(f"B={key[0]} tf32={key[1]}: sams {s['median_ms'] if s else 'n/a'} ms, "
          f"torch {t['median_ms'] if t else 'n/a'} ms, torch/sams = {ratio:.2f}")
# Issue 5's TF32 target compares with the fp32 PyTorch step.
for b in sorted({k[0] for k in step}):
    s, t = step.get((b, True)), torch_step.get((b, False))
    if s and t:
        print(f"B={b}: torch fp32 / sams tf32 = {t['median_ms'] / s['median_ms']:.2f} (target >= 2)")
EOF
fi
log "done; results in $OUT"
