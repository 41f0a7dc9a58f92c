// bench_memory: the heap a sams_scheduler needs, measured rather than computed: live and
// peak bytes and allocation counts around its first steps and in steady state, and the
// replay pool at its configured capacity (docs/benchmarks-cost.md). glibc only: the program
// interposes malloc and friends, which also sees Eigen's aligned allocations.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/scheduler/sams_scheduler.hpp>
#include <sams/scheduler/selection.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#define SAMS_BENCH_HEAP_TRACKING 1
#else
#define SAMS_BENCH_HEAP_TRACKING 0
#endif

namespace heap {

// Every byte counts, all the time: live is exact for the whole process because a block is
// charged and discharged by the same malloc_usable_size.
std::atomic<long long> live{0};
std::atomic<long long> peak{0};
std::atomic<long long> allocations{0};

// Blocks of at least big_block bytes, so that the pool's storage can be told apart.
constexpr std::size_t big_block = std::size_t{1} << 20;
constexpr std::size_t big_slots = 256;
struct big_entry {
    void* ptr;
    std::size_t bytes;
};
big_entry big[big_slots];
std::atomic_flag big_lock = ATOMIC_FLAG_INIT;

void lock() noexcept {
    while (big_lock.test_and_set(std::memory_order_acquire)) {
    }
}
void unlock() noexcept { big_lock.clear(std::memory_order_release); }

void on_alloc(void* p, std::size_t usable) noexcept {
    if (p == nullptr) return;
    allocations.fetch_add(1, std::memory_order_relaxed);
    const long long now = live.fetch_add(static_cast<long long>(usable), std::memory_order_relaxed) +
                          static_cast<long long>(usable);
    long long seen = peak.load(std::memory_order_relaxed);
    while (now > seen && !peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
    if (usable >= big_block) {
        lock();
        for (auto& e : big)
            if (e.ptr == nullptr) {
                e = {p, usable};
                break;
            }
        unlock();
    }
}

void on_free(void* p, std::size_t usable) noexcept {
    if (p == nullptr) return;
    live.fetch_sub(static_cast<long long>(usable), std::memory_order_relaxed);
    if (usable >= big_block) {
        lock();
        for (auto& e : big)
            if (e.ptr == p) {
                e = {nullptr, 0};
                break;
            }
        unlock();
    }
}

/// Resets the peak to the current live bytes and returns the live bytes.
long long start_window() noexcept {
    const long long now = live.load();
    peak.store(now);
    return now;
}

/// Live blocks of at least big_block bytes, largest first.
std::vector<std::size_t> big_blocks() {
    std::vector<std::size_t> sizes;
    sizes.reserve(big_slots);
    lock();
    for (const auto& e : big)
        if (e.ptr != nullptr) sizes.push_back(e.bytes);
    unlock();
    std::sort(sizes.rbegin(), sizes.rend());
    return sizes;
}

}  // namespace heap

#if SAMS_BENCH_HEAP_TRACKING
extern "C" {
void* __libc_malloc(std::size_t);
void __libc_free(void*);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t n) noexcept {
    void* p = __libc_malloc(n);
    heap::on_alloc(p, p ? malloc_usable_size(p) : 0);
    return p;
}
void free(void* p) noexcept {
    if (p != nullptr) heap::on_free(p, malloc_usable_size(p));
    __libc_free(p);
}
void* calloc(std::size_t n, std::size_t size) noexcept {
    void* p = __libc_calloc(n, size);
    heap::on_alloc(p, p ? malloc_usable_size(p) : 0);
    return p;
}
void* realloc(void* old, std::size_t n) noexcept {
    const std::size_t before = old ? malloc_usable_size(old) : 0;
    void* p = __libc_realloc(old, n);
    if (p == nullptr) return p;  // a failed realloc leaves the old block as it was; n == 0 frees
    if (old != nullptr) heap::on_free(old, before);
    heap::on_alloc(p, malloc_usable_size(p));
    return p;
}
void* memalign(std::size_t align, std::size_t n) noexcept {
    void* p = __libc_memalign(align, n);
    heap::on_alloc(p, p ? malloc_usable_size(p) : 0);
    return p;
}
void* aligned_alloc(std::size_t align, std::size_t n) noexcept { return memalign(align, n); }
int posix_memalign(void** out, std::size_t align, std::size_t n) noexcept {
    void* p = memalign(align, n);
    if (p == nullptr) return 12;  // ENOMEM
    *out = p;
    return 0;
}
}
#endif

namespace {

using T = float;
using backend = sams::eigen_backend<T>;

constexpr std::size_t block_size = 16;
constexpr std::size_t explore_depth = 4;

struct shape {
    std::size_t B, D, H, N;
};

std::size_t selected_pairs(std::size_t B) { return sams::selection_size(0.5, B); }

sams::scheduler_config make_config(const shape& s, std::size_t replay_batches, std::size_t capacity) {
    sams::scheduler_config c;
    c.net.hidden = s.H;
    c.net.depth = s.N;
    c.net.block_size = block_size;
    c.net.explore_depth = explore_depth;
    c.opt.early_stop_mse = 0.0;
    c.pool.replay_batches = replay_batches;
    c.pool.capacity_rows = capacity;
    return c;
}

/// Host batches that the steps cycle through (allocated before any measurement).
struct batch_source {
    batch_source(std::size_t B, std::size_t D, std::size_t count) {
        sams::rng g(21);
        const auto fill = [&](std::vector<T>& v, std::size_t n, double lo, double hi) {
            v.resize(n);
            for (T& x : v) x = static_cast<T>(g.uniform(lo, hi));
        };
        host_.resize(count);
        for (auto& h : host_) {
            fill(h.a_w, B, -60.0, -20.0);
            fill(h.a_l, B, -60.0, -20.0);
            fill(h.r_w, B, -60.0, -20.0);
            fill(h.r_l, B, -60.0, -20.0);
            fill(h.ctx, B * D, -1.0, 1.0);
            batches_.push_back(sams::pair_batch<T>{.policy_chosen = h.a_w,
                                                   .policy_rejected = h.a_l,
                                                   .reference_chosen = h.r_w,
                                                   .reference_rejected = h.r_l,
                                                   .contexts = {h.ctx.data(), B, D, D}});
        }
    }
    const sams::pair_batch<T>& next() { return batches_[(cursor_++) % batches_.size()]; }

private:
    struct host_batch {
        std::vector<T> a_w, a_l, r_w, r_l, ctx;
    };
    std::vector<host_batch> host_;
    std::vector<sams::pair_batch<T>> batches_;
    std::size_t cursor_ = 0;
};

/// Heap use of one step: extra bytes at its peak over the live bytes before it, and the
/// number of allocations it made.
struct step_heap {
    long long peak_extra;
    long long allocations;
    long long live_after;
};

template <class Scheduler>
step_heap measure_step(Scheduler& sched, const sams::pair_batch<T>& batch, sams::decision<T>& d) {
    const long long before = heap::start_window();
    const long long count = heap::allocations.load();
    sched.step(batch, d);
    return {heap::peak.load() - before, heap::allocations.load() - count, heap::live.load()};
}

double mib(long long bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

/// One scheduler at the benchmark shapes (P = 32, default pool of 4096 rows): the heap its
/// construction takes, the first step (no update yet), the first update, and steady state
/// once the replay is full (P·K rows), where a step should allocate nothing.
void bm_step_memory(benchmark::State& st, shape s) {
    if (!SAMS_BENCH_HEAP_TRACKING) {
        st.SkipWithError("heap tracking needs glibc");
        return;
    }
    constexpr std::size_t replay = 32;
    const std::size_t capacity = 4096;
    for (auto _ : st) {
        batch_source src(s.B, s.D, 8);
        sams::decision<T> d;
        d.selected.reserve(s.B);  // the host's decision buffers are the host's
        const long long before = heap::start_window();
        sams::sams_scheduler<backend> sched(make_config(s, replay, capacity), s.D, 7);
        const long long nets = heap::live.load() - before;
        const std::size_t params =
            sched.exploitation_net().parameter_count() + sched.exploration_net().parameter_count();

        const step_heap first = measure_step(sched, src.next(), d);
        const step_heap update = measure_step(sched, src.next(), d);
        const std::size_t full = replay * selected_pairs(s.B);
        while (sched.pool_size() < full) sched.step(src.next(), d);
        sched.step(src.next(), d);  // the first step with the full replay sizes its buffers
        step_heap steady{0, 0, 0};
        constexpr int steady_steps = 5;
        for (int i = 0; i < steady_steps; ++i) {
            const step_heap h = measure_step(sched, src.next(), d);
            steady.peak_extra = std::max(steady.peak_extra, h.peak_extra);
            steady.allocations += h.allocations;
            steady.live_after = h.live_after;
        }
        const long long pool = static_cast<long long>(sched.pool_size() * (s.D + 1) * sizeof(T));

        st.counters["B"] = static_cast<double>(s.B);
        st.counters["D"] = static_cast<double>(s.D);
        st.counters["H"] = static_cast<double>(s.H);
        st.counters["N"] = static_cast<double>(s.N);
        st.counters["params"] = static_cast<double>(params);
        // Parameters, gradients and two Adam moments, four tensors of T per parameter.
        st.counters["param_state_MiB"] = mib(static_cast<long long>(4 * params * sizeof(T)));
        st.counters["construct_MiB"] = mib(nets);
        st.counters["first_step_peak_MiB"] = mib(first.peak_extra);
        st.counters["first_step_allocs"] = static_cast<double>(first.allocations);
        st.counters["first_update_peak_MiB"] = mib(update.peak_extra);
        st.counters["first_update_allocs"] = static_cast<double>(update.allocations);
        st.counters["steady_peak_MiB"] = mib(steady.peak_extra);
        st.counters["steady_allocs_per_step"] = static_cast<double>(steady.allocations) / steady_steps;
        st.counters["pool_rows"] = static_cast<double>(sched.pool_size());
        st.counters["pool_MiB"] = mib(pool);
        st.counters["live_MiB"] = mib(steady.live_after - before);
    }
}

/// The replay pool at its capacity C: tiny nets (the pool does not depend on them) and
/// K = 256 rows a step, run until the pool has been full for several steps. Expected pool
/// bytes: C·(D + 1)·sizeof(T) (contexts and targets). Measured: the largest live block (the
/// contexts, C·D·sizeof(T)) and the transient peak of the geometric growth.
void bm_pool_memory(benchmark::State& st, std::size_t D, std::size_t capacity) {
    if (!SAMS_BENCH_HEAP_TRACKING) {
        st.SkipWithError("heap tracking needs glibc");
        return;
    }
    const shape s{512, D, 16, 3};
    for (auto _ : st) {
        batch_source src(s.B, s.D, 4);
        sams::decision<T> d;
        const long long before = heap::start_window();
        sams::sams_scheduler<backend> sched(make_config(s, 1, capacity), s.D, 3);
        long long live_full = 0, peak_growth = 0;
        bool full = false;
        for (int extra = 0; extra < 4;) {
            sched.step(src.next(), d);
            if (!full && sched.pool_size() == capacity) {
                full = true;
                peak_growth = heap::peak.load() - before;
            }
            if (full) ++extra;
        }
        live_full = heap::live.load() - before;
        const auto blocks = heap::big_blocks();
        const double expected = static_cast<double>(capacity * (D + 1) * sizeof(T));
        const double contexts = static_cast<double>(capacity * D * sizeof(T));
        st.counters["D"] = static_cast<double>(D);
        st.counters["capacity_rows"] = static_cast<double>(capacity);
        st.counters["pool_rows"] = static_cast<double>(sched.pool_size());
        st.counters["expected_pool_MiB"] = expected / (1024.0 * 1024.0);
        st.counters["largest_block_MiB"] = blocks.empty() ? 0.0 : static_cast<double>(blocks[0]) / (1024.0 * 1024.0);
        st.counters["largest_over_contexts"] = blocks.empty() ? 0.0 : static_cast<double>(blocks[0]) / contexts;
        st.counters["scheduler_live_MiB"] = mib(live_full);
        st.counters["growth_peak_MiB"] = mib(peak_growth);
    }
}

void register_all() {
    const std::vector<shape> shapes{
        {8, 1024, 256, 4},     // library default net
        {8, 1024, 1024, 4},
        {8, 1024, 1024, 6},    // the reference shape (docs/benchmarks-cost.md)
        {64, 4096, 1024, 8},
    };
    for (const shape& s : shapes) {
        const std::string name = "step_memory/B:" + std::to_string(s.B) + "/D:" + std::to_string(s.D) +
                                 "/H:" + std::to_string(s.H) + "/N:" + std::to_string(s.N);
        benchmark::RegisterBenchmark(name.c_str(), [s](benchmark::State& st) { bm_step_memory(st, s); })
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
    }
    for (const std::size_t D : {std::size_t{1024}, std::size_t{4096}})
        for (const std::size_t cap : {std::size_t{4096}, std::size_t{32768}}) {
            const std::string name = "pool_memory/D:" + std::to_string(D) + "/capacity:" + std::to_string(cap);
            benchmark::RegisterBenchmark(name.c_str(), [D, cap](benchmark::State& st) { bm_pool_memory(st, D, cap); })
                ->Iterations(1)
                ->Unit(benchmark::kMillisecond);
        }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
