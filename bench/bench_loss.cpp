// bench_loss: the preference-loss family over a large batch (pairs per second for every loss
// kind), next to memcpy over the same working set in the same run: the bound a loss that
// only streams its inputs and outputs would reach (docs/benchmarks-cost.md).
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/loss/pair_stats.hpp>

namespace {

constexpr std::size_t pairs = 65536;

/// A batch with the fields a loss reads: references unless reference-free, lengths when
/// length-normalised (a span the loss does not need would still be validated and read).
template <class T>
struct loss_batch {
    loss_batch(bool reference, bool lengths) {
        sams::rng g(17);
        const auto fill = [&](std::vector<T>& v, double lo, double hi) {
            v.resize(pairs);
            for (T& x : v) x = static_cast<T>(g.uniform(lo, hi));
        };
        fill(a_w, -80.0, -10.0);
        fill(a_l, -80.0, -10.0);
        batch.policy_chosen = a_w;
        batch.policy_rejected = a_l;
        if (reference) {
            fill(r_w, -80.0, -10.0);
            fill(r_l, -80.0, -10.0);
            batch.reference_chosen = r_w;
            batch.reference_rejected = r_l;
        }
        if (lengths) {
            fill(n_w, 5.0, 300.0);
            fill(n_l, 5.0, 300.0);
            batch.chosen_length = n_w;
            batch.rejected_length = n_l;
        }
    }
    /// Bytes a single pass must move per pair: the inputs read, six per-pair outputs written.
    [[nodiscard]] std::size_t bytes_per_pair() const {
        const std::size_t inputs = 2 + (batch.has_reference() ? 2 : 0) + (batch.has_lengths() ? 2 : 0);
        return (inputs + 6) * sizeof(T);
    }
    std::vector<T> a_w, a_l, r_w, r_l, n_w, n_l;
    sams::pair_batch<T> batch;
};

template <class T>
void bm_loss(benchmark::State& st, sams::loss_config cfg) {
    const loss_batch<T> data(cfg.needs_reference(), cfg.needs_lengths());
    sams::pair_stats<T> out;
    sams::evaluate_loss(cfg, data.batch, out);
    for (auto _ : st) {
        sams::evaluate_loss(cfg, data.batch, out);
        benchmark::DoNotOptimize(out.loss.data());
        benchmark::ClobberMemory();
    }
    const auto bpp = static_cast<double>(data.bytes_per_pair());
    st.counters["pairs/s"] = benchmark::Counter(static_cast<double>(pairs), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["bytes_per_pair"] = bpp;
    st.counters["bytes/s"] = benchmark::Counter(static_cast<double>(pairs) * bpp,
                                                benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1024);
}

/// The input validation alone (one finiteness pass over every field read), a part of bm_loss.
template <class T>
void bm_validate(benchmark::State& st, sams::loss_config cfg) {
    const loss_batch<T> data(cfg.needs_reference(), cfg.needs_lengths());
    sams::visit_loss(cfg, [&](const auto& loss) {
        for (auto _ : st) {
            sams::detail::check_loss_inputs(loss, data.batch);
            benchmark::ClobberMemory();
        }
    });
    st.counters["pairs/s"] = benchmark::Counter(static_cast<double>(pairs), benchmark::Counter::kIsIterationInvariantRate);
}

/// memcpy of `bytes` into another buffer; bytes/s counts bytes read plus bytes written.
void bm_memcpy(benchmark::State& st, std::size_t bytes) {
    std::vector<unsigned char> src(bytes, 1), dst(bytes, 0);
    for (auto _ : st) {
        std::memcpy(dst.data(), src.data(), bytes);
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    st.counters["bytes/s"] = benchmark::Counter(2.0 * static_cast<double>(bytes),
                                                benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1024);
}

struct named_loss {
    const char* name;
    sams::loss_config cfg;
};

std::vector<named_loss> losses() {
    using sams::loss_kind;
    const auto make = [](loss_kind k) {
        sams::loss_config c;
        c.kind = k;
        return c;
    };
    std::vector<named_loss> v{
        {"sigmoid", make(loss_kind::sigmoid)},   {"robust", make(loss_kind::robust)},
        {"ipo", make(loss_kind::ipo)},           {"hinge", make(loss_kind::hinge)},
        {"sigmoid_norm", make(loss_kind::sigmoid_norm)}, {"simpo", make(loss_kind::simpo)},
        {"nca_pair", make(loss_kind::nca_pair)}, {"apo_zero", make(loss_kind::apo_zero)},
        {"sppo_hard", make(loss_kind::sppo_hard)},
    };
    v[1].cfg.label_smoothing = 0.1;  // rDPO needs its assumed flip rate
    named_loss cdpo{"cdpo", make(loss_kind::sigmoid)};
    cdpo.cfg.label_smoothing = 0.1;
    v.push_back(cdpo);
    named_loss ipo_norm{"ipo_norm", make(loss_kind::ipo)};
    ipo_norm.cfg.length_normalize = true;
    v.push_back(ipo_norm);
    return v;
}

void register_all() {
    const std::string b = "/B:" + std::to_string(pairs);
    for (const auto& l : losses()) {
        const sams::loss_config cfg = l.cfg;
        benchmark::RegisterBenchmark((std::string("loss/") + l.name + b).c_str(),
                                     [cfg](benchmark::State& st) { bm_loss<float>(st, cfg); })
            ->Unit(benchmark::kMicrosecond);
    }
    sams::loss_config sigmoid;
    benchmark::RegisterBenchmark(("loss_double/sigmoid" + b).c_str(),
                                 [sigmoid](benchmark::State& st) { bm_loss<double>(st, sigmoid); })
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("validate/sigmoid" + b).c_str(),
                                 [sigmoid](benchmark::State& st) { bm_validate<float>(st, sigmoid); })
        ->Unit(benchmark::kMicrosecond);
    // The loss's working set (sigmoid: 40 bytes a pair) split into a source and a destination
    // half; and a buffer far larger than the caches, for main-memory bandwidth.
    const std::size_t loss_bytes = pairs * 10 * sizeof(float) / 2;
    const std::size_t dram_bytes = std::size_t{64} << 20;
    for (const std::size_t bytes : {loss_bytes, dram_bytes})
        benchmark::RegisterBenchmark(("memcpy/bytes:" + std::to_string(bytes)).c_str(),
                                     [bytes](benchmark::State& st) { bm_memcpy(st, bytes); })
            ->Unit(benchmark::kMicrosecond);
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
