#!/usr/bin/env bash
# The scheduler's training phase on the CPU against the public SamS code, at the reference
# shape (B = 8, D = H = 1024, N = 6, P = 32: 132 training rows, 2 x 2 Adam steps of f1 and f2),
# all in one run, interleaved round by round so that every ratio compares runs made minutes
# apart on the same machine state:
#   - bench_scheduler built twice in Release: Eigen's GEMM (build-cost) and the CBLAS path
#     (build-cost-blas, SAMS_WITH_BLAS=ON): train, step, and the same GEMMs run plainly by
#     Eigen, by the backend and (BLAS build) by cblas_sgemm;
#   - the authors' f1/f2 classes and train_NN_batch (bench/authors_scheduler_step.py);
#   - the straightforward PyTorch step (bench/torch_scheduler_step.py --device cpu).
# Each at OpenMP/OpenBLAS thread counts 1 and 2, with OPENBLAS_CORETYPE=SkylakeX (Debian's
# OpenBLAS otherwise picks a generic kernel on these CPUs, docs/backends.md); with 2 threads
# the CBLAS build also with OMP_WAIT_POLICY=passive.
#
# usage: tools/run_reference_comparison.sh --authors DIR [--rounds 3] [--threads "1 2"] [--out DIR]
#   --authors  the public SamS repository (a checkout or a bare git dir) or a folder with its
#              scheduler.py; only scheduler.py is read, into a temporary folder
#   --out      JSON lines and tables.md (default docs/data/cost/reference)
# Needs /usr/bin/python3 with torch (Debian python3-torch) and Google Benchmark.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/docs/data/cost/reference"
authors=""
rounds=3
threads="1 2"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --authors) authors=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --threads) threads=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$authors" ]] || { echo "--authors DIR is required (the public SamS repository)" >&2; exit 2; }
python=${SAMS_TORCH_PYTHON:-/usr/bin/python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -f "$authors/scheduler.py" ]]; then
  cp "$authors/scheduler.py" "$work/"
elif git --git-dir="$authors" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git --git-dir="$authors" show HEAD:scheduler.py >"$work/scheduler.py"
elif git -C "$authors" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git -C "$authors" show HEAD:scheduler.py >"$work/scheduler.py"
else
  echo "--authors $authors: no scheduler.py and not a git repository" >&2; exit 2
fi

# Release builds as tools/run_cost_benchmarks.sh makes them (the flags are explained there).
flags="-march=native -fopenmp -Wno-maybe-uninitialized"
for variant in eigen blas; do
  build="$root/build-cost"
  extra=(-DSAMS_WITH_BLAS=OFF)
  if [[ $variant == blas ]]; then build="$root/build-cost-blas"; extra=(-DSAMS_WITH_BLAS=ON); fi
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" \
        -DSAMS_BUILD_TESTS=OFF -DSAMS_BUILD_EXAMPLES=OFF -DSAMS_BUILD_BENCHMARKS=ON "${extra[@]}" >/dev/null
  cmake --build "$build" --target bench_scheduler -j2 >/dev/null
done

mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo ' (with local changes)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
  echo "compiler: $(c++ --version | head -1)"
  echo "openblas: $(dpkg-query -W -f='${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null | tr '\n' ' ')"
  echo "torch: $("$python" -c 'import torch; print(torch.__version__)')"
  echo "authors' scheduler.py: sha1 $(sha1sum "$work/scheduler.py" | cut -c1-12)"
} >"$out/machine.txt"

shape='B:8/D:1024/H:1024/N:6'
filter="^(train|step|gemm_eigen|gemm_backend|gemm_cblas)/$shape/"
for round in $(seq 1 "$rounds"); do
  for t in $threads; do
    export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t OPENBLAS_CORETYPE=SkylakeX
    echo "round $round, $t thread(s), load $(cut -d' ' -f1 /proc/loadavg)" >&2
    variants=(eigen blas)
    # With more threads, OpenMP's idle threads spin between the backend's parallel loops while
    # OpenBLAS's own threads run the GEMMs: also measured with them sleeping instead.
    (( t > 1 )) && variants+=(blas-passive)
    for variant in "${variants[@]}"; do
      build="$root/build-cost"; [[ $variant == blas* ]] && build="$root/build-cost-blas"
      policy=${OMP_WAIT_POLICY:-}; [[ $variant == blas-passive ]] && policy=passive
      env ${policy:+OMP_WAIT_POLICY=$policy} "$build/bench/bench_scheduler" --benchmark_filter="$filter" --benchmark_repetitions=3 \
          --benchmark_report_aggregates_only=true --benchmark_format=json 2>/dev/null |
        "$python" -c '
import json, sys
doc = json.load(sys.stdin)
for b in doc["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    print(json.dumps({"bench": "sams_" + b["run_name"].split("/")[0], "variant": sys.argv[1],
                      "threads": int(sys.argv[2]), "round": int(sys.argv[3]),
                      "median_ms": b["real_time"] * ms, "cpu_median_ms": b["cpu_time"] * ms,
                      "flop": b.get("flop", 0.0)}))
' "$variant" "$t" "$round" >>"$results"
    done
    "$python" "$root/bench/authors_scheduler_step.py" --authors-dir "$work" --threads "$t" --reps 7 |
      sed "s/}\$/, \"round\": $round}/" >>"$results"
    "$python" "$root/bench/torch_scheduler_step.py" --device cpu --batches 8 --select 4 --dim 1024 \
        --hidden 1024 --depth 6 --threads "$t" --reps 7 |
      sed "s/}\$/, \"round\": $round}/" >>"$results"
  done
done
"$python" "$root/tools/reference_table.py" "$results" >"$out/tables.md"
cat "$out/tables.md"
