#!/usr/bin/env bash
# Builds the cost benchmarks (bench/bench_scheduler, bench_loss, bench_memory) in Release and
# runs them, writing Google Benchmark JSON and the Markdown tables of docs/benchmarks-cost.md
# (tools/cost_tables.py) into one folder, with the machine facts next to them.
#
# usage: tools/run_cost_benchmarks.sh [--quick] [--large] [--out DIR] [--build DIR] [--threads "1 2"]
#   --quick     only the reference shape and the centre of the grid (a few minutes on 2 cores)
#   --large     adds the paper-sized points (H = 4096 with N = 16 or B = 64, D = 4096; slow, ~5 GB)
#   --out       where the JSON and tables.md go (default docs/data/cost)
#   --build     build folder (default build-cost)
#   --threads   OpenMP thread counts for Eigen's GEMM in bench_scheduler (default "1 2")
# Environment: before each program, waits up to SAMS_COST_WAIT_TRIES × 30 s (default 20: ten
# minutes) for the 1-minute load average to drop below SAMS_COST_MAX_LOAD (default 1.5), then
# runs anyway and says so. With one thread the tables use CPU time, with more the wall time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/docs/data/cost"
build="$root/build-cost"
threads="1 2"
quick=0
large=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --large) large=(--sams_large) ;;
    --out) out=$2; shift ;;
    --build) build=$2; shift ;;
    --threads) threads=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"

# -march=native: Eigen's kernels use the widest vectors the machine has (AVX-512 on the
# reference machine). -fopenmp: Eigen runs its GEMM on OMP_NUM_THREADS threads.
# -Wno-maybe-uninitialized: GCC 12 false positive inside avx512fintrin.h (GCC bug 105593).
flags="-march=native -fopenmp -Wno-maybe-uninitialized"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" \
      -DSAMS_BUILD_TESTS=OFF -DSAMS_BUILD_EXAMPLES=OFF -DSAMS_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target bench_scheduler bench_loss bench_memory -j1

wait_for_quiet() {
  local max=${SAMS_COST_MAX_LOAD:-1.5} tries=0 load
  while true; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$max" 'BEGIN { exit !(l < m) }'; then return; fi
    if (( tries >= ${SAMS_COST_WAIT_TRIES:-20} )); then
      echo "warning: load average $load is above $max; running anyway" >&2
      return
    fi
    echo "load average $load > $max, waiting 30 s" >&2
    sleep 30
    tries=$((tries + 1))
  done
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "vector extensions: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512vl)$' | tr '\n' ' ')"
  echo "cache: $(lscpu 2>/dev/null | grep -E 'L1d|L2|L3' | tr -s ' ' | tr '\n' ';')"
  echo "memory: $(grep MemTotal /proc/meminfo | tr -s ' ')"
  echo "compiler: $(c++ --version | head -1)"
  echo "flags: -O3 (Release) $flags"
  echo "eigen: $(grep -m3 -E 'define EIGEN_(WORLD|MAJOR|MINOR)_VERSION' /usr/include/eigen3/Eigen/src/Core/util/Macros.h | awk '{print $3}' | paste -sd.)"
} > "$out/machine.txt"

common=(--benchmark_out_format=json --benchmark_min_time=0.5)
filter=()
if (( quick )); then
  filter=(--benchmark_filter='B:8/D:1024/H:1024/N:(4|6)|extract/B:8/D:1024|select_top_k/B:8')
fi

for t in $threads; do
  wait_for_quiet
  echo "== bench_scheduler, OMP_NUM_THREADS=$t (load $(cut -d' ' -f1-3 /proc/loadavg))"
  OMP_NUM_THREADS=$t "$build/bench/bench_scheduler" "${common[@]}" "${filter[@]}" "${large[@]}" \
    --benchmark_out="$out/scheduler-omp$t.json"
done
wait_for_quiet
echo "== bench_loss (load $(cut -d' ' -f1-3 /proc/loadavg))"
OMP_NUM_THREADS=1 "$build/bench/bench_loss" "${common[@]}" --benchmark_out="$out/loss.json"
echo "== bench_memory"
OMP_NUM_THREADS=1 "$build/bench/bench_memory" --benchmark_out_format=json --benchmark_out="$out/memory.json"

python3 "$root/tools/cost_tables.py" "$out" > "$out/tables.md"
echo "tables: $out/tables.md"
