// What distributed scheduling costs, under `mpirun -np 2` (docs/distributed.md):
//  - the collectives alone: the all-gather of the packed per-pair rows (replicated mode) and
//    the gather + decision broadcast (root_broadcast), over G pairs of width D;
//  - one distributed_scheduler step in either mode next to the single-process step on the
//    same global batch.
// Every rank runs every benchmark with a fixed iteration count (ranks must stay in step);
// rank 0 reports, timing each iteration from a barrier to the end of its step.
//
//   mpirun -np 2 build/release/bench/bench_distributed [--benchmark_out=x.json --benchmark_out_format=json]
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <sams/distributed/distributed_scheduler.hpp>
#include <sams/distributed/mpi.hpp>
#include <sams/sams.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using T = float;
using sched_t = sams::sams_scheduler<sams::eigen_backend<T>>;

int world_rank() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}
int world_size() {
    int r = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &r);
    return r;
}

/// The bytes of one pair's row as distributed_scheduler packs it: a_w, a_l, r_w, r_l, D
/// context values (float), no lengths, ids or sketches.
std::size_t row_bytes(std::size_t D) { return (4 + D) * sizeof(T); }

void barrier_untimed(benchmark::State& state) {
    state.PauseTiming();
    MPI_Barrier(MPI_COMM_WORLD);
    state.ResumeTiming();
}

/// Replicated mode's traffic: every rank's rows to every rank.
void BM_all_gather_rows(benchmark::State& state) {
    const auto G = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    sams::mpi_communicator comm;
    const auto R = static_cast<std::size_t>(comm.size());
    std::vector<std::byte> send(G / R * row_bytes(D), std::byte(1)), recv(G / R * R * row_bytes(D));
    const std::vector<std::size_t> counts(R, send.size());
    for (auto _ : state) {
        barrier_untimed(state);
        comm.all_gather(send, recv, counts);
        benchmark::DoNotOptimize(recv.data());
    }
    state.counters["bytes_received"] = static_cast<double>(recv.size() - send.size());
}

/// root_broadcast's traffic: rows to rank 0, then the decision (4 scalars, a score and a
/// mask byte per pair, plus the metrics) from rank 0.
void BM_gather_rows_broadcast_decision(benchmark::State& state) {
    const auto G = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    sams::mpi_communicator comm;
    const auto R = static_cast<std::size_t>(comm.size());
    std::vector<std::byte> send(G / R * row_bytes(D), std::byte(1));
    std::vector<std::byte> recv(comm.rank() == 0 ? G / R * R * row_bytes(D) : 0);
    std::vector<std::byte> decision(5 * G * sizeof(T) + G + sizeof(sams::step_metrics));
    const std::vector<std::size_t> counts(R, send.size());
    for (auto _ : state) {
        barrier_untimed(state);
        comm.gather(send, recv, counts, 0);
        comm.broadcast(decision, 0);
        benchmark::DoNotOptimize(decision.data());
    }
}

sams::scheduler_config bench_config(std::size_t hidden) {
    sams::scheduler_config c;
    c.net.hidden = hidden;
    c.net.depth = 3;
    c.net.block_size = 16;
    c.net.explore_depth = 3;
    c.pool.replay_batches = 8;
    return c;
}

struct batch_data {
    std::vector<T> a_w, a_l, r_w, r_l, ctx;
    std::size_t n = 0, D = 0;
    batch_data(std::size_t n_, std::size_t D_, std::uint64_t seed) : n(n_), D(D_) {
        sams::rng g(seed, 1);
        for (std::size_t i = 0; i < n; ++i) {
            a_w.push_back(static_cast<T>(-10 + g.normal()));
            a_l.push_back(static_cast<T>(-10 + g.normal()));
            r_w.push_back(static_cast<T>(-10 + g.normal()));
            r_l.push_back(static_cast<T>(-10 + g.normal()));
        }
        for (std::size_t i = 0; i < n * D; ++i) ctx.push_back(static_cast<T>(g.normal()));
    }
    sams::pair_batch<T> view() const {
        return {.policy_chosen = a_w,
                .policy_rejected = a_l,
                .reference_chosen = r_w,
                .reference_rejected = r_l,
                .contexts = {ctx.data(), n, D}};
    }
};

/// One distributed step; range(2) = 0 replicated, 1 root_broadcast.
void BM_distributed_step(benchmark::State& state) {
    const auto G = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    const auto mode =
        state.range(2) == 0 ? sams::distributed_mode::replicated : sams::distributed_mode::root_broadcast;
    const auto R = static_cast<std::size_t>(world_size());
    sams::distributed_scheduler<T, sched_t, sams::mpi_communicator> ds(
        sams::mpi_communicator(), sched_t(bench_config(static_cast<std::size_t>(state.range(3))), D, 1),
        {.mode = mode, .global_batch = G});
    const batch_data local(G / R, D, 100 + static_cast<std::uint64_t>(world_rank()));
    sams::decision<T> d;
    for (int i = 0; i < 3; ++i) ds.step(local.view(), d);  // past the first update
    for (auto _ : state) {
        barrier_untimed(state);
        ds.step(local.view(), d);
        benchmark::DoNotOptimize(d.weight.data());
    }
    state.counters["payload_bytes"] = static_cast<double>(ds.last_payload_bytes());
}

/// The same global batch through one scheduler in one process (every rank does it alone).
void BM_single_process_step(benchmark::State& state) {
    const auto G = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    sched_t s(bench_config(static_cast<std::size_t>(state.range(3))), D, 1);
    const batch_data global(G, D, 100);
    sams::decision<T> d;
    for (int i = 0; i < 3; ++i) s.step(global.view(), d);
    for (auto _ : state) {
        barrier_untimed(state);
        s.step(global.view(), d);
        benchmark::DoNotOptimize(d.weight.data());
    }
}

void comm_shapes(benchmark::internal::Benchmark* b) {
    for (const long G : {8, 64, 512})
        for (const long D : {1024, 4096}) b->Args({G, D});
    b->Iterations(200)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
}
void step_shapes(benchmark::internal::Benchmark* b) {
    // {G, D, mode, hidden}: the small nets of the tests' scale and the library's default H=256.
    for (const long G : {8, 64})
        for (const long mode : {0, 1}) b->Args({G, 1024, mode, 256});
    b->Iterations(20)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_all_gather_rows)->Apply(comm_shapes);
BENCHMARK(BM_gather_rows_broadcast_decision)->Apply(comm_shapes);
BENCHMARK(BM_distributed_step)->Apply(step_shapes);
BENCHMARK(BM_single_process_step)->Apply([](benchmark::internal::Benchmark* b) {
    for (const long G : {8, 64}) b->Args({G, 1024, 0, 256});
    b->Iterations(20)->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond);
});

class silent_reporter : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    // Only rank 0 reports and writes --benchmark_out; the others run silently in step.
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i)
        if (world_rank() == 0 || std::strncmp(argv[i], "--benchmark_out", 15) != 0) args.push_back(argv[i]);
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    if (world_rank() == 0) {
        benchmark::RunSpecifiedBenchmarks();
    } else {
        silent_reporter quiet;
        benchmark::RunSpecifiedBenchmarks(&quiet);
    }
    benchmark::Shutdown();
    MPI_Finalize();
    return 0;
}
