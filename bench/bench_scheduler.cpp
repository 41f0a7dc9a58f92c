// bench_scheduler: what one sams_scheduler step costs on the Eigen backend, phase by phase
// (context extraction, lagged training, scoring, selection) and whole, with the training
// phase's FLOP rate next to plain Eigen GEMMs of the same shapes (docs/benchmarks-cost.md).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/context/hidden_states.hpp>
#include <sams/context/mean_pool.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/nn/explore_net.hpp>
#include <sams/nn/exploit_net.hpp>
#include <sams/scheduler/sams_scheduler.hpp>
#include <sams/scheduler/selection.hpp>

namespace {

using T = float;
using backend = sams::eigen_backend<T>;
using matrix = backend::matrix;
using vector = backend::vector;
using sams::transpose;

constexpr std::size_t replay_batches = 32;  // P
constexpr std::size_t train_steps = 4;      // E1 = E2 (the paper's 2 × 2)
constexpr std::size_t block_size = 16;      // s
constexpr std::size_t explore_depth = 4;    // N2
// Hidden states handed to the context extractor: the host's last two layers, 64 response
// tokens per sequence of which a random tail is padding; model width d = D (mean over layers).
constexpr std::size_t context_layers = 2;
constexpr std::size_t context_tokens = 64;

/// One point of the shape grid: batch B, context width D, f1 width H and depth N.
struct shape {
    std::size_t B, D, H, N;
};

std::string name_of(const char* phase, const shape& s) {
    return std::string(phase) + "/B:" + std::to_string(s.B) + "/D:" + std::to_string(s.D) +
           "/H:" + std::to_string(s.H) + "/N:" + std::to_string(s.N);
}

std::size_t selected_pairs(std::size_t B) { return sams::selection_size(0.5, B); }
std::size_t train_rows(const shape& s) { return (replay_batches + 1) * selected_pairs(s.B); }

sams::scheduler_config make_config(const shape& s) {
    sams::scheduler_config c;
    c.net.hidden = s.H;
    c.net.depth = s.N;
    c.net.block_size = block_size;
    c.net.explore_depth = explore_depth;
    c.opt.exploit_steps = train_steps;
    c.opt.explore_steps = train_steps;
    c.opt.early_stop_mse = 0.0;  // every update runs all its steps: the cost does not depend on the data
    c.pool.replay_batches = replay_batches;
    c.pool.capacity_rows = std::max<std::size_t>(4096, 2 * replay_batches * selected_pairs(s.B));
    return c;
}

void fill_uniform(std::span<T> out, sams::rng& g, double lo, double hi) {
    for (T& v : out) v = static_cast<T>(g.uniform(lo, hi));
}

matrix random_matrix(backend& be, std::size_t rows, std::size_t cols, sams::rng& g) {
    std::vector<T> host(rows * cols);
    fill_uniform(host, g, -1.0, 1.0);
    matrix m;
    be.upload(sams::matrix_view<const T>{host.data(), rows, cols, cols}, m);
    return m;
}

vector random_vector(backend& be, std::size_t n, sams::rng& g, double lo, double hi) {
    std::vector<T> host(n);
    fill_uniform(host, g, lo, hi);
    vector v;
    be.upload(std::span<const T>(host), v);
    return v;
}

// ---- the GEMMs of one training step ------------------------------------------------------

/// C (m×n) = op(A)·op(B) (+ C when accumulate), op(A) m×k; as the nets call the backend.
struct gemm_shape {
    std::size_t m, n, k;
    bool ta, tb, accumulate;
};

/// Every GEMM of one forward + backward pass of f1 (n rows), exactly as exploit_net runs
/// them: the input layer forms no input gradient, so its backward is one GEMM, not two.
void exploit_gemms(const shape& s, std::size_t n, std::vector<gemm_shape>& out) {
    const std::size_t blocks = s.N - 2;
    out.push_back({n, s.H, s.D, false, true, false});  // x W0ᵀ
    for (std::size_t b = 0; b < blocks; ++b) out.push_back({n, s.H, s.H, false, true, false});
    out.push_back({n, 1, s.H, false, true, false});    // output layer
    out.push_back({1, s.H, n, true, false, false});    // dW_out = gᵀ x
    out.push_back({n, s.H, 1, false, false, false});   // dx = g W_out
    for (std::size_t b = 0; b < blocks; ++b) {
        out.push_back({s.H, s.H, n, true, false, false});  // dW_k = dzᵀ x_{k−1}
        out.push_back({n, s.H, s.H, false, false, true});  // dx += dz W_k
    }
    out.push_back({s.H, s.D, n, true, false, false});  // dW_0 = dzᵀ x
}

/// The same for f2 (width E, depth N2); φ is an input, so no gradient flows into it.
void explore_gemms(std::size_t e, std::size_t n, std::vector<gemm_shape>& out) {
    const std::size_t blocks = explore_depth - 2;
    out.push_back({n, e, e, false, true, false});
    for (std::size_t b = 0; b < blocks; ++b) out.push_back({n, e, e, false, true, false});
    out.push_back({n, 1, e, false, true, false});
    out.push_back({1, e, n, true, false, false});
    out.push_back({n, e, 1, false, false, false});
    for (std::size_t b = 0; b < blocks; ++b) {
        out.push_back({e, e, n, true, false, false});
        out.push_back({n, e, e, false, false, false});
    }
    out.push_back({e, e, n, true, false, false});
}

/// The GEMMs of one training phase: E1 steps of f1 then E2 steps of f2 (listed once; the
/// phase runs each list train_steps times).
std::vector<gemm_shape> training_gemms(const shape& s) {
    std::vector<gemm_shape> g;
    const std::size_t n = train_rows(s);
    exploit_gemms(s, n, g);
    explore_gemms(s.H * (s.N - 2) / block_size, n, g);
    return g;
}

double flops_of(const std::vector<gemm_shape>& gemms) {
    double f = 0.0;
    for (const auto& g : gemms) f += 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
    return f;
}

void set_common_counters(benchmark::State& st, const shape& s) {
    st.counters["B"] = static_cast<double>(s.B);
    st.counters["D"] = static_cast<double>(s.D);
    st.counters["H"] = static_cast<double>(s.H);
    st.counters["N"] = static_cast<double>(s.N);
    st.counters["threads"] = static_cast<double>(Eigen::nbThreads());
}

// ---- phases ------------------------------------------------------------------------------

/// Context extraction: masked mean over tokens and layers of the chosen and rejected hidden
/// states, averaged (mean_pool_extractor, layer_reduction::mean_layers), into B×D contexts.
void bm_extract(benchmark::State& st, shape s) {
    const std::size_t L = context_layers, Tk = context_tokens, d = s.D, B = s.B;
    sams::rng g(11);
    std::vector<T> chosen(L * B * Tk * d), rejected(L * B * Tk * d);
    fill_uniform(chosen, g, -1.0, 1.0);
    fill_uniform(rejected, g, -1.0, 1.0);
    std::vector<std::uint8_t> chosen_mask(B * Tk, 0), rejected_mask(B * Tk, 0);
    double valid_tokens = 0.0;
    for (auto* mask : {&chosen_mask, &rejected_mask})
        for (std::size_t p = 0; p < B; ++p) {
            const std::size_t len = Tk / 2 + static_cast<std::size_t>(g.below(Tk / 2 + 1));
            std::fill_n(mask->begin() + static_cast<std::ptrdiff_t>(p * Tk), len, std::uint8_t{1});
            valid_tokens += static_cast<double>(len);
        }
    const auto hc = sams::hidden_states_view<T>::layer_major(chosen.data(), L, B, Tk, d);
    const auto hr = sams::hidden_states_view<T>::layer_major(rejected.data(), L, B, Tk, d);
    const auto mc = sams::token_mask_view<std::uint8_t>::contiguous(chosen_mask.data(), B, Tk);
    const auto mr = sams::token_mask_view<std::uint8_t>::contiguous(rejected_mask.data(), B, Tk);
    sams::mean_pool_options opt;
    opt.reduce = sams::layer_reduction::mean_layers;
    sams::mean_pool_extractor<T> ex(opt);
    std::vector<T> out(B * d);
    const sams::matrix_view<T> ov{out.data(), B, d, d};
    ex.extract(hc, hr, mc, mr, ov);
    for (auto _ : st) {
        ex.extract(hc, hr, mc, mr, ov);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_common_counters(st, s);
    // Bytes of hidden states at valid tokens, the data the extractor must read.
    st.counters["bytes/s"] = benchmark::Counter(valid_tokens * static_cast<double>(L * d * sizeof(T)),
                                                benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1024);
}

/// The nets and training data of one lagged update, outside any scheduler.
struct training_setup {
    explicit training_setup(const shape& s)
        : cfg(make_config(s)), init(1), data(2), drop(3),
          f1(be, s.D, cfg.net, cfg.opt, init),
          f2(be, cfg.net.feature_dim(), cfg.net, cfg.opt, init) {
        const std::size_t n = train_rows(s);
        x = random_matrix(be, n, s.D, data);
        y = random_vector(be, n, data, 0.3, 0.7);
        y2 = random_vector(be, n, data, -0.05, 0.05);
        f1.predict(x, f1_out, phi);
    }
    backend be;
    sams::scheduler_config cfg;
    sams::rng init, data, drop;
    sams::exploit_net<backend> f1;
    sams::explore_net<backend> f2;
    matrix x, phi;
    vector y, y2, f1_out;
};

/// Lagged training: E1 Adam steps of f1 then E2 of f2, full batch, on (P+1)·K rows.
void bm_train(benchmark::State& st, shape s) {
    training_setup t(s);
    t.f1.train(t.x, t.y, train_steps, t.drop);  // first call sizes every buffer
    t.f2.train(t.phi, t.y2, train_steps);
    for (auto _ : st) {
        benchmark::DoNotOptimize(t.f1.train(t.x, t.y, train_steps, t.drop));
        benchmark::DoNotOptimize(t.f2.train(t.phi, t.y2, train_steps));
    }
    set_common_counters(st, s);
    st.counters["rows"] = static_cast<double>(train_rows(s));
    st.counters["params"] = static_cast<double>(t.f1.parameter_count() + t.f2.parameter_count());
    const double flop = flops_of(training_gemms(s)) * static_cast<double>(train_steps);
    st.counters["flop"] = flop;  // per iteration, for rates over CPU time (tools/cost_tables.py)
    st.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
}

/// The retargeting forward of the lagged update: f1 over the P·K replayed rows, whose
/// outputs give f2 its current targets (the scheduler's default, not in the public code).
void bm_retarget(benchmark::State& st, shape s) {
    training_setup t(s);
    const std::size_t r = replay_batches * selected_pairs(s.B);
    const matrix xr = random_matrix(t.be, r, s.D, t.data);
    vector scores;
    matrix phi;
    t.f1.predict(xr, scores, phi);
    for (auto _ : st) {
        t.f1.predict(xr, scores, phi);
        benchmark::DoNotOptimize(scores.data());
    }
    set_common_counters(st, s);
    st.counters["rows"] = static_cast<double>(r);
}

/// Who runs the GEMMs of bm_gemm.
enum class gemm_path {
    eigen,    ///< plain Eigen row-major products with Eigen's own blocking
    library,  ///< eigen_backend::gemm, as the nets call it (CBLAS when built with SAMS_USE_CBLAS)
    cblas,    ///< cblas_sgemm directly, on the same buffers (SAMS_USE_CBLAS builds only)
};

/// The same GEMMs as one training phase, run by `path`: what training could reach if it
/// were nothing but its products (the figure of merit is training's rate over the best).
void bm_gemm(benchmark::State& st, shape s, gemm_path path) {
    const bool backend_gemm = path != gemm_path::eigen;
    using plain = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const auto gemms = training_gemms(s);
    const auto idx = [](std::size_t n) { return static_cast<Eigen::Index>(n); };
    sams::rng g(5);
    backend be;
    std::vector<plain> a(gemms.size()), b(gemms.size()), c(gemms.size());
    std::vector<matrix> ba(gemms.size()), bb(gemms.size()), bc(gemms.size());
    for (std::size_t i = 0; i < gemms.size(); ++i) {
        const auto& q = gemms[i];
        const std::size_t ar = q.ta ? q.k : q.m, ac = q.ta ? q.m : q.k;
        const std::size_t br = q.tb ? q.n : q.k, bcn = q.tb ? q.k : q.n;
        if (backend_gemm) {
            ba[i] = random_matrix(be, ar, ac, g);
            bb[i] = random_matrix(be, br, bcn, g);
            be.resize(bc[i], q.m, q.n);
            be.fill(bc[i], T(0));
        } else {
            a[i] = plain::Random(idx(ar), idx(ac));
            b[i] = plain::Random(idx(br), idx(bcn));
            c[i] = plain::Zero(idx(q.m), idx(q.n));
        }
    }
    const auto run_once = [&] {
        for (std::size_t i = 0; i < gemms.size(); ++i) {
            const auto& q = gemms[i];
            if (path == gemm_path::cblas) {
#if defined(SAMS_USE_CBLAS)
                // Row-major operands, leading dimension = stored columns.
                const auto ld = [](const matrix& x) { return static_cast<int>(x.cols()); };
                cblas_sgemm(CblasRowMajor, q.ta ? CblasTrans : CblasNoTrans, q.tb ? CblasTrans : CblasNoTrans,
                            static_cast<int>(q.m), static_cast<int>(q.n), static_cast<int>(q.k), 1.0f,
                            ba[i].data(), ld(ba[i]), bb[i].data(), ld(bb[i]), q.accumulate ? 1.0f : 0.0f,
                            bc[i].data(), ld(bc[i]));
#endif
            } else if (backend_gemm) {
                be.gemm(q.ta ? transpose::yes : transpose::no, q.tb ? transpose::yes : transpose::no, T(1), ba[i],
                        bb[i], q.accumulate ? T(1) : T(0), bc[i]);
            } else if (q.ta && !q.tb) {
                c[i].noalias() = a[i].transpose() * b[i];
            } else if (!q.ta && q.tb) {
                c[i].noalias() = a[i] * b[i].transpose();
            } else if (q.accumulate) {
                c[i].noalias() += a[i] * b[i];
            } else {
                c[i].noalias() = a[i] * b[i];
            }
        }
    };
    run_once();
    for (auto _ : st) {
        for (std::size_t step = 0; step < train_steps; ++step) run_once();
        benchmark::ClobberMemory();
    }
    set_common_counters(st, s);
    const double flop = flops_of(gemms) * static_cast<double>(train_steps);
    st.counters["flop"] = flop;
    st.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
}

/// Scoring: f1 and f2 forward (eval mode) on the B rows of a batch.
void bm_score(benchmark::State& st, shape s) {
    training_setup t(s);
    const matrix xb = random_matrix(t.be, s.B, s.D, t.data);
    vector f1_scores, f2_scores;
    matrix phi;
    t.f1.predict(xb, f1_scores, phi);
    t.f2.predict(phi, f2_scores);
    for (auto _ : st) {
        t.f1.predict(xb, f1_scores, phi);
        t.f2.predict(phi, f2_scores);
        benchmark::DoNotOptimize(f2_scores.data());
    }
    set_common_counters(st, s);
}

/// Selection of K = B/2 pairs from B scores: top-k (the default) or Gumbel-top-k.
void bm_select(benchmark::State& st, std::size_t B, bool gumbel) {
    sams::rng g(9);
    std::vector<T> scores(B);
    fill_uniform(scores, g, 0.0, 1.0);
    std::vector<std::size_t> out;
    std::vector<double> keys;
    const std::size_t k = selected_pairs(B);
    for (auto _ : st) {
        if (gumbel)
            sams::select_gumbel_top_k(std::span<const T>(scores), k, 1.0, g, out, keys);
        else
            sams::select_top_k(std::span<const T>(scores), k, out);
        benchmark::DoNotOptimize(out.data());
    }
    st.counters["B"] = static_cast<double>(B);
}

/// Host-side data for a few batches that the whole-step benchmark cycles through.
struct batch_source {
    batch_source(std::size_t B, std::size_t D, std::size_t count) {
        sams::rng g(21);
        for (std::size_t i = 0; i < count; ++i) {
            auto& h = host_.emplace_back();
            h.a_w.resize(B);
            h.a_l.resize(B);
            h.r_w.resize(B);
            h.r_l.resize(B);
            h.ctx.resize(B * D);
            fill_uniform(h.a_w, g, -60.0, -20.0);
            fill_uniform(h.a_l, g, -60.0, -20.0);
            fill_uniform(h.r_w, g, -60.0, -20.0);
            fill_uniform(h.r_l, g, -60.0, -20.0);
            fill_uniform(h.ctx, g, -1.0, 1.0);
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
    // Moving a host_batch keeps its buffers, so the spans survive host_ growing.
    std::vector<host_batch> host_;
    std::vector<sams::pair_batch<T>> batches_;
    std::size_t cursor_ = 0;
};

/// A whole step in steady state: loss, lagged update with a full replay of P·K rows,
/// scoring, selection, pool push, decision.
void bm_step(benchmark::State& st, shape s) {
    constexpr std::size_t distinct_batches = 8;
    batch_source src(s.B, s.D, distinct_batches);
    sams::sams_scheduler<backend> sched(make_config(s), s.D, 7);
    sams::decision<T> d;
    const std::size_t full_replay = replay_batches * selected_pairs(s.B);
    while (sched.pool_size() < full_replay || sched.updates() < 2) sched.step(src.next(), d);
    for (auto _ : st) {
        sched.step(src.next(), d);
        benchmark::DoNotOptimize(d.selected.data());
    }
    set_common_counters(st, s);
    st.counters["rows"] = static_cast<double>(d.metrics.trained_rows);
}

/// The grid: every axis varied on its own around B = 8, D = 1024, H = 1024, N = 4, plus the
/// reference shape (N = 6) and two larger corners. H = 4096 with N = 16 (the paper's
/// 0.25 B-parameter f1) is left to --sams_large: minutes per point on two cores.
std::vector<shape> grid(bool large) {
    std::vector<shape> g{
        {8, 1024, 1024, 4},  // centre
        {64, 1024, 1024, 4}, // B
        {8, 4096, 1024, 4},  // D
        {8, 1024, 256, 4},   // H
        {8, 1024, 4096, 4},
        {8, 1024, 1024, 8},  // N
        {8, 1024, 1024, 16},
        {8, 1024, 1024, 6},  // the reference shape (docs/benchmarks-cost.md)
        {64, 4096, 256, 4},  // library default net, large batch and context
        {64, 4096, 1024, 8},
    };
    if (large) {
        g.push_back({8, 4096, 4096, 16});
        g.push_back({64, 4096, 4096, 4});
    }
    return g;
}

void register_all(bool large) {
    const auto add = [](const std::string& name, auto fn) {
        return benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMillisecond);
    };
    for (const std::size_t B : {std::size_t{8}, std::size_t{64}})
        for (const std::size_t D : {std::size_t{1024}, std::size_t{4096}}) {
            const shape s{B, D, 0, 0};
            add("extract/B:" + std::to_string(B) + "/D:" + std::to_string(D),
                [s](benchmark::State& st) { bm_extract(st, s); })
                ->Unit(benchmark::kMicrosecond);
        }
    for (const shape& s : grid(large)) {
        add(name_of("train", s), [s](benchmark::State& st) { bm_train(st, s); });
        add(name_of("gemm_eigen", s), [s](benchmark::State& st) { bm_gemm(st, s, gemm_path::eigen); });
        add(name_of("gemm_backend", s), [s](benchmark::State& st) { bm_gemm(st, s, gemm_path::library); });
#if defined(SAMS_USE_CBLAS)
        add(name_of("gemm_cblas", s), [s](benchmark::State& st) { bm_gemm(st, s, gemm_path::cblas); });
#endif
        add(name_of("retarget", s), [s](benchmark::State& st) { bm_retarget(st, s); });
        add(name_of("score", s), [s](benchmark::State& st) { bm_score(st, s); })->Unit(benchmark::kMicrosecond);
        add(name_of("step", s), [s](benchmark::State& st) { bm_step(st, s); });
    }
    for (const std::size_t B : {std::size_t{8}, std::size_t{64}}) {
        add("select_top_k/B:" + std::to_string(B), [B](benchmark::State& st) { bm_select(st, B, false); })
            ->Unit(benchmark::kMicrosecond);
        add("select_gumbel/B:" + std::to_string(B), [B](benchmark::State& st) { bm_select(st, B, true); })
            ->Unit(benchmark::kMicrosecond);
    }
}

}  // namespace

int main(int argc, char** argv) {
    // --sams_large adds the paper-sized points; everything else is Google Benchmark's.
    bool large = false;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--sams_large") == 0)
            large = true;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    register_all(large);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
