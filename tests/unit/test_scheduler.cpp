// sams_scheduler: the lagged order of a step, learning on a stream whose reward a context
// feature determines, determinism and bit-identical resume, and the strong guarantee on
// bad input and bad checkpoints.
#include <doctest/doctest.h>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/limits.hpp>
#include <sams/scheduler/any_scheduler.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

namespace {

using backend_d = sams::eigen_backend<double>;
using scheduler_d = sams::sams_scheduler<backend_d>;

/// A host-side batch with owned storage; batch() views it.
struct owned_batch {
    std::size_t B = 0, D = 0;
    std::vector<double> a_w, a_l, r_w, r_l, ctx;

    sams::pair_batch<double> batch() const {
        return {.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = r_w,
                .reference_rejected = r_l, .contexts = {ctx.data(), B, D}};
    }
};

/// Random batch: log-prob gaps and contexts from the generator.
owned_batch random_batch(sams::rng& g, std::size_t B, std::size_t D) {
    owned_batch b;
    b.B = B;
    b.D = D;
    for (std::size_t i = 0; i < B; ++i) {
        b.a_w.push_back(-10.0 + 3.0 * g.normal());
        b.a_l.push_back(-10.0 + 3.0 * g.normal());
        b.r_w.push_back(-10.0 + g.normal());
        b.r_l.push_back(-10.0 + g.normal());
    }
    for (std::size_t k = 0; k < B * D; ++k) b.ctx.push_back(g.normal());
    return b;
}

sams::scheduler_config small_config() {
    sams::scheduler_config c;
    c.net.hidden = 32;
    c.net.depth = 4;
    c.net.block_size = 8;  // E = 32*2/8 = 8
    c.net.explore_depth = 3;
    c.pool.capacity_rows = 64;
    c.pool.replay_batches = 2;
    c.opt.learning_rate = 1e-3;
    c.opt.early_stop_mse = 0.0;
    return c;
}

template <class Net>
std::vector<double> net_state(const Net& net, backend_d& be) {
    std::vector<double> out;
    net.visit_state([&](const char*, const auto& t) {
        using V = std::remove_cvref_t<decltype(t)>;
        if constexpr (std::is_same_v<V, std::uint64_t>) {
            out.push_back(static_cast<double>(t));
        } else if constexpr (std::is_same_v<V, backend_d::matrix>) {
            std::vector<double> h(be.rows(t) * be.cols(t));
            be.download(t, std::span<double>(h));
            out.insert(out.end(), h.begin(), h.end());
        } else {
            std::vector<double> h(be.size(t));
            be.download(t, std::span<double>(h));
            out.insert(out.end(), h.begin(), h.end());
        }
    });
    return out;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

/// Mean σ(-m) with m = β((a_w - r_w) - (a_l - r_l)): the progress metric, written out.
double progress_of(const owned_batch& b, double beta) {
    double s = 0;
    for (std::size_t i = 0; i < b.B; ++i) s += sigmoid(-beta * ((b.a_w[i] - b.r_w[i]) - (b.a_l[i] - b.r_l[i])));
    return s / static_cast<double>(b.B);
}

}  // namespace

TEST_CASE("sams_scheduler: three scripted steps follow the lagged order") {
    const std::size_t B = 8, D = 5;
    auto cfg = small_config();
    cfg.reward.smoothing = false;
    sams::rng g(11);
    const owned_batch b0 = random_batch(g, B, D), b1 = random_batch(g, B, D), b2 = random_batch(g, B, D);
    scheduler_d sched(cfg, D, 7);
    backend_d be;
    const std::size_t K = 4;

    // Replica nets, built from the documented RNG streams of seed 7.
    sams::rng init(7, scheduler_d::init_stream);
    sams::exploit_net<backend_d> f1(be, D, cfg.net, cfg.opt, init);
    sams::explore_net<backend_d> f2(be, cfg.net.feature_dim(), cfg.net, cfg.opt, init);
    CHECK(net_state(f1, be) == net_state(sched.exploitation_net(), be));

    // Step 0: nothing to learn from yet; scores are the untrained nets' u = f1 + w f2.
    const auto d0 = sched.step(b0.batch());
    CHECK(d0.metrics.trained_rows == 0);
    CHECK(d0.metrics.warmup);
    CHECK(d0.selected.size() == K);
    CHECK(sched.pool_size() == 0);
    backend_d::matrix x0;
    be.upload(sams::matrix_view<const double>{b0.ctx.data(), B, D}, x0);
    backend_d::vector s1, s2;
    backend_d::matrix phi0;
    f1.predict(x0, s1, phi0);
    f2.predict(phi0, s2);
    std::vector<double> h1(B), h2(B);
    be.download(s1, std::span<double>(h1));
    be.download(s2, std::span<double>(h2));
    for (std::size_t i = 0; i < B; ++i) CHECK(d0.score[i] == doctest::Approx(h1[i] + 0.01 * h2[i]).epsilon(1e-12));

    // Step 1: batch 0's selected pairs are rewarded with batch 1's progress; only they train f1.
    const auto d1 = sched.step(b1.batch());
    CHECK(d1.metrics.trained_rows == K);
    CHECK_FALSE(d1.metrics.warmup);
    CHECK(sched.pool_size() == K);
    const double L0 = progress_of(b0, 0.1), L1 = progress_of(b1, 0.1);
    const double delta = (L0 - L1) / std::max(L0, L1);
    CHECK(d1.metrics.progress_delta == doctest::Approx(delta).epsilon(1e-12));
    // Targets by hand: y = ½σ(50Δ + 0.5) + ½σ(s), s = ½ m̃ + ½ (1 - p̃) over the whole batch 0.
    std::vector<double> m(B), p(B);
    for (std::size_t i = 0; i < B; ++i) {
        m[i] = 0.1 * ((b0.a_w[i] - b0.r_w[i]) - (b0.a_l[i] - b0.r_l[i]));
        p[i] = b0.a_w[i];
    }
    const auto [mmin, mmax] = std::minmax_element(m.begin(), m.end());
    const auto [pmin, pmax] = std::minmax_element(p.begin(), p.end());
    std::vector<double> y;
    std::vector<double> rows;
    for (const std::size_t i : d0.selected) {
        const double s = 0.5 * (m[i] - *mmin) / (*mmax - *mmin) + 0.5 * (1.0 - (p[i] - *pmin) / (*pmax - *pmin));
        y.push_back(0.5 * sigmoid(50.0 * delta + 0.5) + 0.5 * sigmoid(s));
        rows.insert(rows.end(), b0.ctx.begin() + static_cast<std::ptrdiff_t>(i * D),
                    b0.ctx.begin() + static_cast<std::ptrdiff_t>((i + 1) * D));
    }
    CHECK(d1.metrics.mean_target == doctest::Approx(std::accumulate(y.begin(), y.end(), 0.0) / K).epsilon(1e-12));
    // Train the replica on exactly those rows: the scheduler's f1 must match it.
    std::vector<double> f1_at_scoring;
    for (const std::size_t i : d0.selected) f1_at_scoring.push_back(h1[i]);
    backend_d::matrix xs;
    be.upload(sams::matrix_view<const double>{rows.data(), K, D}, xs);
    backend_d::vector ys;
    be.upload(std::span<const double>(y), ys);
    sams::rng dropout(7, scheduler_d::dropout_stream);
    f1.train(xs, ys, cfg.opt.exploit_steps, dropout);
    const auto want = net_state(f1, be), got = net_state(sched.exploitation_net(), be);
    REQUIRE(want.size() == got.size());
    for (std::size_t k = 0; k < want.size(); ++k) CHECK(got[k] == doctest::Approx(want[k]).epsilon(1e-12));
    // f2 trained on φ of those rows at scoring time and y - f1(at scoring).
    backend_d::matrix phis;
    std::vector<std::size_t> sel(d0.selected.begin(), d0.selected.end());
    be.gather_rows(phi0, sel, phis);
    std::vector<double> y2(K);
    for (std::size_t j = 0; j < K; ++j) y2[j] = y[j] - f1_at_scoring[j];
    backend_d::vector y2v;
    be.upload(std::span<const double>(y2), y2v);
    f2.train(phis, y2v, cfg.opt.explore_steps);
    const auto want2 = net_state(f2, be), got2 = net_state(sched.exploration_net(), be);
    for (std::size_t k = 0; k < want2.size(); ++k) CHECK(got2[k] == doctest::Approx(want2[k]).epsilon(1e-12));

    // Step 2: batch 1's K pairs plus min(P·K, pool) = 4 replayed rows of batch 0.
    const auto d2 = sched.step(b2.batch());
    CHECK(d2.metrics.trained_rows == K + K);
    CHECK(sched.pool_size() == 2 * K);
    CHECK(sched.updates() == 2);
    CHECK(sched.steps() == 3);
}

namespace {

/// A user reward through the customisation point: the target of a pair is σ(margin), so
/// the context feature that sets the margin determines the reward.
struct margin_reward {
    struct state_type {
        std::uint64_t calls = 0;
    };
    state_type st;
    template <class T>
    void targets(const sams::reward_inputs<T>& in, std::span<T> out) {
        for (std::size_t j = 0; j < in.selected.size(); ++j)
            out[j] = static_cast<T>(1.0 / (1.0 + std::exp(-static_cast<double>(in.margin[in.selected[j]]))));
        ++st.calls;
    }
    [[nodiscard]] state_type state() const { return st; }
    void set_state(const state_type& s) { st = s; }
};
static_assert(sams::reward_function<margin_reward, double>);

/// Runs a scheduler on a stream where the margin is 2·c0 and the chosen log-prob -5·c1 for
/// contexts c = (c0, c1, noise, noise), c0 and c1 uniform in [-1, 1]. Returns the mean of
/// `value(c0, c1)` over the selected pairs and over all pairs in the second half of the run.
template <class Scheduler, class Value>
std::pair<double, double> selected_vs_uniform(Scheduler& sched, Value value, int steps) {
    const std::size_t B = 32, D = 4;
    sams::rng g(5);
    double selected_sum = 0, batch_sum = 0;
    std::size_t selected_n = 0, batch_n = 0;
    for (int step = 0; step < steps; ++step) {
        owned_batch b;
        b.B = B;
        b.D = D;
        std::vector<double> v(B);
        for (std::size_t i = 0; i < B; ++i) {
            const double c0 = g.uniform(-1, 1), c1 = g.uniform(-1, 1);
            b.ctx.insert(b.ctx.end(), {c0, c1, g.normal(), g.normal()});
            b.r_w.push_back(-20.0);
            b.r_l.push_back(-20.0);
            b.a_w.push_back(-20.0 - 5.0 * c1);
            b.a_l.push_back(-20.0 - 5.0 * c1 - 20.0 * c0);  // margin m = 0.1·20·c0
            v[i] = value(c0, c1);
        }
        const auto d = sched.step(b.batch());
        if (step >= steps / 2) {
            for (const std::size_t i : d.selected) selected_sum += v[i], ++selected_n;
            for (const double x : v) batch_sum += x, ++batch_n;
        }
    }
    return {selected_sum / static_cast<double>(selected_n), batch_sum / static_cast<double>(batch_n)};
}

}  // namespace

TEST_CASE("sams_scheduler: learns to prefer pairs whose context determines a high reward") {
    auto cfg = small_config();
    cfg.opt.learning_rate = 3e-3;
    cfg.pool.capacity_rows = 512;
    sams::sams_scheduler<backend_d, margin_reward> sched(cfg, 4, 3);
    const auto [selected, uniform] =
        selected_vs_uniform(sched, [](double c0, double) { return 1.0 / (1.0 + std::exp(-2.0 * c0)); }, 300);
    MESSAGE("mean reward σ(2 c0): selected " << selected << ", uniform " << uniform);
    // Uniform selection averages σ(2c0) to 0.5; the best half of the batch (c0 > 0) averages
    // about 0.70. Warm-up alone would give 0.5.
    CHECK(uniform == doctest::Approx(0.5).epsilon(0.05));
    CHECK(selected > uniform + 0.15);
    CHECK(sched.steps() == 300);
}

TEST_CASE("sams_scheduler: the default reward steers selection toward a high sample term") {
    // With the default reward the sample term s = ½ m̃ + ½ (1 - p̃) is the per-pair part of
    // the target; the batch term σ(50Δ' + 0.5) is shared by a batch and here pure noise
    // (the policy does not train), so learning is slower: the check is correspondingly looser.
    auto cfg = small_config();
    cfg.opt.learning_rate = 1e-2;
    cfg.pool.capacity_rows = 512;
    scheduler_d sched(cfg, 4, 3);
    const auto [selected, uniform] = selected_vs_uniform(
        sched, [](double c0, double c1) { return 0.5 * (c0 + 1) / 2 + 0.5 * (c1 + 1) / 2; }, 300);
    MESSAGE("mean sample term: selected " << selected << ", uniform " << uniform);
    CHECK(uniform == doctest::Approx(0.5).epsilon(0.05));
    CHECK(selected > uniform + 0.05);
}

namespace {

/// A run of `steps` steps with every RNG stream in use (dropout, softmax sampling, pool).
sams::scheduler_config busy_config() {
    auto c = small_config();
    c.net.dropout = 0.1;
    c.select.rule = sams::selection_rule::softmax_sample;
    c.select.temperature = 0.05;
    c.pool.capacity_rows = 24;
    return c;
}

std::vector<owned_batch> stream_of(std::size_t steps, std::size_t B, std::size_t D) {
    sams::rng g(99);
    std::vector<owned_batch> out;
    for (std::size_t t = 0; t < steps; ++t) out.push_back(random_batch(g, B, D));
    return out;
}

void check_same(const sams::decision<double>& a, const sams::decision<double>& b) {
    CHECK(a.selected == b.selected);
    CHECK(a.weight == b.weight);
    CHECK(a.score == b.score);
    CHECK(a.metrics.exploit_mse == b.metrics.exploit_mse);
    CHECK(a.metrics.explore_mse == b.metrics.explore_mse);
}

}  // namespace

TEST_CASE("sams_scheduler: same seed gives identical decisions, resume is bit-identical") {
    const std::size_t B = 8, D = 6;
    const auto batches = stream_of(50, B, D);
    scheduler_d a(busy_config(), D, 21), b(busy_config(), D, 21), other(busy_config(), D, 22);
    const auto path = std::filesystem::temp_directory_path() / "sams_test_resume.bin";
    std::vector<sams::decision<double>> reference;
    bool any_difference = false;
    for (std::size_t t = 0; t < 50; ++t) {
        reference.push_back(a.step(batches[t].batch()));
        const auto db = b.step(batches[t].batch());
        check_same(reference.back(), db);
        any_difference |= other.step(batches[t].batch()).score != reference.back().score;
    }
    CHECK(any_difference);  // a different seed gives a different run
    CHECK(a.pool_size() == 24);

    scheduler_d c(busy_config(), D, 21);
    for (std::size_t t = 0; t < 20; ++t) (void)c.step(batches[t].batch());
    c.save(path);
    CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
    auto resumed = scheduler_d::load(path);
    CHECK(resumed.serialize() == c.serialize());
    for (std::size_t t = 20; t < 50; ++t) check_same(resumed.step(batches[t].batch()), reference[t]);

    // restore() into an existing scheduler of the same configuration.
    scheduler_d d(busy_config(), D, 5);
    d.restore(path);
    for (std::size_t t = 20; t < 50; ++t) check_same(d.step(batches[t].batch()), reference[t]);
    std::filesystem::remove(path);
}

TEST_CASE("sams_scheduler: the pool never holds more rows than its capacity") {
    auto cfg = small_config();
    cfg.pool.capacity_rows = 10;
    scheduler_d s(cfg, 3, 1);
    sams::rng g(2);
    for (int t = 0; t < 30; ++t) {
        const auto b = random_batch(g, 6, 3);
        const auto d = s.step(b.batch());
        CHECK(d.metrics.pool_size <= 10);
        CHECK(d.metrics.pool_capacity == 10);
    }
    CHECK(s.pool_size() == 10);
}

TEST_CASE("sams_scheduler: rejected input throws and leaves the state unchanged") {
    const std::size_t B = 6, D = 4;
    scheduler_d s(small_config(), D, 3);
    sams::rng g(4);
    for (int t = 0; t < 3; ++t) (void)s.step(random_batch(g, B, D).batch());
    const auto before = s.serialize();
    const owned_batch good = random_batch(g, B, D);

    SUBCASE("wrong context width") {
        auto b = good.batch();
        b.contexts.cols = D - 1;
        CHECK_THROWS_WITH_AS(s.step(b), doctest::Contains("context_dim"), sams::invalid_argument);
    }
    SUBCASE("contexts with the wrong number of rows") {
        auto b = good.batch();
        b.contexts.rows = B - 1;
        CHECK_THROWS_WITH_AS(s.step(b), doctest::Contains("batch.contexts"), sams::invalid_argument);
    }
    SUBCASE("mismatched spans") {
        auto b = good.batch();
        b.policy_rejected = b.policy_rejected.first(B - 1);
        CHECK_THROWS_WITH_AS(s.step(b), doctest::Contains("policy_rejected"), sams::invalid_argument);
    }
    SUBCASE("NaN in a log-prob") {
        owned_batch bad = good;
        bad.a_w[2] = std::numeric_limits<double>::quiet_NaN();
        CHECK_THROWS_AS(s.step(bad.batch()), sams::invalid_argument);
    }
    SUBCASE("Inf in a context") {
        owned_batch bad = good;
        bad.ctx[7] = std::numeric_limits<double>::infinity();
        CHECK_THROWS_WITH_AS(s.step(bad.batch()), doctest::Contains("NaN or Inf"), sams::invalid_argument);
    }
    SUBCASE("empty batch") {
        CHECK_THROWS_WITH_AS(s.step(sams::pair_batch<double>{}), doctest::Contains("empty"), sams::error);
    }
    CHECK(s.serialize() == before);
    CHECK_NOTHROW((void)s.step(good.batch()));
}

namespace {

/// A user reward that returns `*bad` as every target while `*bad` is set (a NaN or a huge
/// value, as a buggy custom reward could), σ(margin) otherwise; it counts its calls.
struct faulty_reward {
    struct state_type {
        std::uint64_t calls = 0;
    };
    state_type st;
    std::shared_ptr<std::optional<double>> bad = std::make_shared<std::optional<double>>();
    template <class T>
    void targets(const sams::reward_inputs<T>& in, std::span<T> out) {
        ++st.calls;
        for (std::size_t j = 0; j < in.selected.size(); ++j)
            out[j] = static_cast<T>(bad->has_value() ? **bad
                                                     : 1.0 / (1.0 + std::exp(-static_cast<double>(
                                                                             in.margin[in.selected[j]]))));
    }
    [[nodiscard]] state_type state() const { return st; }
    void set_state(const state_type& s) { st = s; }
};

}  // namespace

TEST_CASE("sams_scheduler: a reward target that is non-finite or huge refuses the batch, state unchanged") {
    const std::size_t B = 6, D = 4;
    faulty_reward reward;
    const auto bad = reward.bad;
    sams::sams_scheduler<backend_d, faulty_reward> s(small_config(), D, 3, backend_d{}, reward);
    sams::rng g(4);
    for (int t = 0; t < 3; ++t) (void)s.step(random_batch(g, B, D).batch());
    const auto before = s.serialize();
    const owned_batch next = random_batch(g, B, D);
    // NaN and Inf used to reach the nets halfway through the lagged update; 1e5 used to be
    // stored in the pool, whose checkpoint the decoder then refused (|target| >= 2^14).
    for (const double value : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                               1e5, -sams::limits::max_abs_context}) {
        CAPTURE(value);
        *bad = value;
        CHECK_THROWS_WITH_AS((void)s.step(next.batch()), doctest::Contains("the reward function returned target"),
                             sams::invalid_argument);
        CHECK(s.serialize() == before);  // the reward's call count included
    }
    bad->reset();
    const auto d = s.step(next.batch());
    for (const double u : d.score) CHECK(std::isfinite(u));
    CHECK(s.updates() == 3);
    CHECK(decltype(s)::deserialize(s.serialize(), backend_d{}, reward).serialize() == s.serialize());
}

namespace {

/// When limited_backend runs out of memory: a GEMM whose output has more than `max_rows`
/// rows throws std::bad_alloc (as if that output could not be allocated), and when
/// `gemms_left` reaches 0 the next GEMM throws it once, as an allocation inside a BLAS would.
struct memory_budget {
    std::size_t max_rows = std::numeric_limits<std::size_t>::max();
    long gemms_left = -1;  // < 0: never
};

/// eigen_backend<double> that runs out of memory when the test says so. Every product of
/// the nets goes through gemm(), and they call the backend through its static type, so this
/// one hides the base's.
class limited_backend : public backend_d {
public:
    std::shared_ptr<memory_budget> budget = std::make_shared<memory_budget>();

    void gemm(sams::transpose ta, sams::transpose tb, double alpha, const matrix& a, const matrix& b, double beta,
              matrix& c) {
        const std::size_t rows = ta == sams::transpose::no ? a.rows() : a.cols();
        if (rows > budget->max_rows) throw std::bad_alloc();
        if (budget->gemms_left == 0) {
            budget->gemms_left = -1;
            throw std::bad_alloc();
        }
        if (budget->gemms_left > 0) --budget->gemms_left;
        backend_d::gemm(ta, tb, alpha, a, b, beta, c);
    }
};
using limited_scheduler = sams::sams_scheduler<limited_backend>;
static_assert(sams::backend<limited_backend>);

}  // namespace

TEST_CASE("sams_scheduler: a batch too large for the memory left is refused before anything changes") {
    const std::size_t D = 4;
    limited_backend be;
    const auto budget = be.budget;
    limited_scheduler s(small_config(), D, 8, be);
    scheduler_d twin(small_config(), D, 8);
    sams::rng g(12);
    for (int t = 0; t < 3; ++t) {
        const owned_batch b = random_batch(g, 6, D);
        check_same(s.step(b.batch()), twin.step(b.batch()));
    }
    // B = 6 scores 6 rows and trains on at most 3 + 2·3 = 9 (the weight gradients have 32);
    // B = 60 scores 60 rows and its selection would train on 90.
    budget->max_rows = 40;
    const auto before = s.serialize();
    const owned_batch big = random_batch(g, 60, D);
    CHECK_THROWS_WITH_AS((void)s.step(big.batch()), doctest::Contains("not enough memory for a batch of 60 pairs"),
                         sams::invalid_argument);
    CHECK(s.serialize() == before);
    CHECK(s.complete());
    // The run goes on as if the big batch had never come.
    for (int t = 0; t < 3; ++t) {
        const owned_batch b = random_batch(g, 6, D);
        check_same(s.step(b.batch()), twin.step(b.batch()));
    }
    CHECK(s.serialize() == twin.serialize());
}

TEST_CASE("sams_scheduler: out of memory past the checks stops the scheduler until restore()") {
    const std::size_t B = 6, D = 4;
    const auto batches = stream_of(8, B, D);
    limited_backend be;
    const auto budget = be.budget;
    limited_scheduler s(small_config(), D, 9, be);
    scheduler_d twin(small_config(), D, 9);
    for (std::size_t t = 0; t < 4; ++t) check_same(s.step(batches[t].batch()), twin.step(batches[t].batch()));
    const auto dir = std::filesystem::temp_directory_path();
    const auto path = dir / "sams_test_oom_resume.bin", refused = dir / "sams_test_oom_refused.bin";
    std::filesystem::remove(refused);
    s.save(path);

    // The first GEMM of the next step is the lagged update's, after every check: the pool
    // has drawn its replay rows and f1 may be half-trained when it fails.
    budget->gemms_left = 0;
    CHECK_THROWS_WITH_AS((void)s.step(batches[4].batch()), doctest::Contains("out of memory after the batch was accepted"),
                         sams::backend_error);
    CHECK_FALSE(s.complete());
    CHECK_THROWS_WITH_AS((void)s.step(batches[4].batch()), doctest::Contains("restore() a checkpoint first"),
                         sams::backend_error);
    CHECK_THROWS_AS((void)s.serialize(), sams::backend_error);
    CHECK_THROWS_AS(s.save(refused), sams::backend_error);
    CHECK_FALSE(std::filesystem::exists(refused));

    s.restore(path);
    CHECK(s.complete());
    for (std::size_t t = 4; t < 8; ++t) check_same(s.step(batches[t].batch()), twin.step(batches[t].batch()));
    CHECK(s.serialize() == twin.serialize());
    std::filesystem::remove(path);
}

TEST_CASE("sams_scheduler: bad configuration is rejected at construction") {
    auto cfg = small_config();
    cfg.select.ratio = 0.0;
    CHECK_THROWS_WITH_AS(scheduler_d(cfg, 4, 1), doctest::Contains("select.ratio"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(scheduler_d(small_config(), 0, 1), doctest::Contains("context_dim"), sams::invalid_argument);
}

TEST_CASE("sams_scheduler: bad checkpoints throw checkpoint_error and change nothing") {
    const std::size_t B = 6, D = 4;
    scheduler_d s(small_config(), D, 3);
    sams::rng g(4);
    for (int t = 0; t < 4; ++t) (void)s.step(random_batch(g, B, D).batch());
    const auto good = s.serialize();
    const auto path = std::filesystem::temp_directory_path() / "sams_test_bad.bin";
    auto write = [&](const std::vector<std::uint8_t>& bytes) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    };
    scheduler_d target(small_config(), D, 8);
    const auto before = target.serialize();

    SUBCASE("truncated at every length") {
        for (std::size_t n = 0; n < good.size(); n += 1 + good.size() / 97) {
            CHECK_THROWS_AS(scheduler_d::deserialize(std::span<const std::uint8_t>(good.data(), n)),
                            sams::checkpoint_error);
        }
        write(std::vector<std::uint8_t>(good.begin(), good.begin() + 100));
        CHECK_THROWS_WITH_AS(target.restore(path), doctest::Contains("checkpoint"), sams::checkpoint_error);
    }
    SUBCASE("a flipped byte anywhere is caught") {
        for (std::size_t k = 0; k < good.size(); k += 1 + good.size() / 61) {
            auto bad = good;
            bad[k] ^= 0x5a;
            CHECK_THROWS_AS(scheduler_d::deserialize(bad), sams::checkpoint_error);
        }
    }
    SUBCASE("not a checkpoint") {
        write({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', '!', '!', '!', '!', '!', '!',
               '!', '!', '!', '!', '!', '!', '!'});
        CHECK_THROWS_WITH_AS(target.restore(path), doctest::Contains("magic"), sams::checkpoint_error);
    }
    SUBCASE("missing file") {
        CHECK_THROWS_WITH_AS(target.restore(path.string() + ".missing"), doctest::Contains("cannot open"),
                             sams::checkpoint_error);
    }
    SUBCASE("another configuration") {
        auto cfg = small_config();
        cfg.select.explore_weight = 0.5;
        scheduler_d different(cfg, D, 3);
        different.save(path);
        CHECK_THROWS_WITH_AS(target.restore(path), doctest::Contains("select.explore_weight"),
                             sams::checkpoint_error);
    }
    SUBCASE("another context width") {
        scheduler_d wider(small_config(), D + 1, 3);
        wider.save(path);
        CHECK_THROWS_WITH_AS(target.restore(path), doctest::Contains("context_dim"), sams::checkpoint_error);
    }
    SUBCASE("float checkpoint into a double scheduler") {
        sams::sams_scheduler<sams::eigen_backend<float>> f(small_config(), D, 3);
        f.save(path);
        CHECK_THROWS_WITH_AS(target.restore(path), doctest::Contains("4-byte"), sams::checkpoint_error);
    }
    CHECK(target.serialize() == before);
    std::filesystem::remove(path);
}

// ---- steady state allocates nothing ------------------------------------------------------

#include "support/allocation_counter.hpp"

TEST_CASE("sams_scheduler: steady-state steps allocate nothing") {
    const std::size_t B = 8, D = 6;
    const auto batches = stream_of(40, B, D);
    scheduler_d s(busy_config(), D, 21);
    sams::decision<double> d;
    for (std::size_t t = 0; t < 30; ++t) s.step(batches[t].batch(), d);  // pool full, buffers grown
    REQUIRE(s.pool_size() == busy_config().pool.capacity_rows);
    const std::size_t before = sams_test::allocations();
    for (std::size_t t = 30; t < 40; ++t) s.step(batches[t].batch(), d);
    CHECK(sams_test::allocations() - before == 0);
}

// ---- host ergonomics: K, double inputs, run-time choice ------------------------------------

namespace {

using scheduler_f = sams::sams_scheduler<sams::eigen_backend<float>>;

/// The same batch as float, every value cast on its own (what the converter must reproduce).
struct owned_batch_f {
    std::size_t B = 0, D = 0;
    std::vector<float> a_w, a_l, r_w, r_l, ctx;
    explicit owned_batch_f(const owned_batch& b) : B(b.B), D(b.D) {
        for (const double v : b.a_w) a_w.push_back(static_cast<float>(v));
        for (const double v : b.a_l) a_l.push_back(static_cast<float>(v));
        for (const double v : b.r_w) r_w.push_back(static_cast<float>(v));
        for (const double v : b.r_l) r_l.push_back(static_cast<float>(v));
        for (const double v : b.ctx) ctx.push_back(static_cast<float>(v));
    }
    sams::pair_batch<float> batch() const {
        return {.policy_chosen = a_w,
                .policy_rejected = a_l,
                .reference_chosen = r_w,
                .reference_rejected = r_l,
                .contexts = {ctx.data(), B, D}};
    }
};

template <class T>
void check_same_decision(const sams::decision<T>& a, const sams::decision<T>& b) {
    CHECK(a.selected == b.selected);
    CHECK(a.weight == b.weight);
    CHECK(a.score == b.score);
    CHECK(a.d_policy_chosen == b.d_policy_chosen);
    CHECK(a.d_policy_rejected == b.d_policy_rejected);
    CHECK(a.metrics.progress == b.metrics.progress);
    CHECK(a.metrics.exploit_mse == b.metrics.exploit_mse);
    CHECK(a.metrics.pool_size == b.metrics.pool_size);
}

}  // namespace

TEST_CASE("sams_scheduler: selection_count is K = clamp(round(ratio B), 1, B), as step selects") {
    auto cfg = small_config();
    cfg.select.ratio = 0.3;
    scheduler_d s(cfg, 3, 1);
    // round(0.3 B): 0.3 → 1 (clamped up from 0), 1.5 → 2, 3, 3.3 → 3, 30.
    CHECK(s.selection_count(1) == 1);
    CHECK(s.selection_count(5) == 2);
    CHECK(s.selection_count(10) == 3);
    CHECK(s.selection_count(11) == 3);
    CHECK(s.selection_count(100) == 30);
    CHECK_THROWS_AS((void)s.selection_count(0), sams::invalid_argument);
    sams::rng g(3);
    for (const std::size_t B : {1u, 5u, 11u}) {
        const owned_batch b = random_batch(g, B, 3);
        CHECK(s.step(b.batch()).selected.size() == s.selection_count(B));
    }
}

TEST_CASE("sams_scheduler: a double batch steps a float scheduler exactly as its float cast does") {
    const std::size_t B = 8, D = 5;
    const auto batches = stream_of(12, B, D);
    scheduler_f from_double(busy_config(), D, 5), from_float(busy_config(), D, 5);
    sams::decision<float> a, b;
    for (const auto& ob : batches) {
        // A strided double view: every context row followed by one padding value.
        std::vector<double> strided;
        for (std::size_t i = 0; i < B; ++i) {
            strided.insert(strided.end(), ob.ctx.begin() + static_cast<std::ptrdiff_t>(i * D),
                           ob.ctx.begin() + static_cast<std::ptrdiff_t>((i + 1) * D));
            strided.push_back(1e300);  // not a float; must never be read
        }
        auto batch = ob.batch();
        batch.contexts = {strided.data(), B, D, D + 1};
        from_double.step(batch, a);
        const owned_batch_f cast(ob);
        from_float.step(cast.batch(), b);
        check_same_decision(a, b);
    }
    CHECK(from_double.serialize() == from_float.serialize());

    // Bad double input is rejected as the float scheduler rejects it, state unchanged.
    const auto before = from_double.serialize();
    auto bad = batches[0];
    bad.ctx[3] = 1e300;  // +Inf as float
    CHECK_THROWS_WITH_AS(from_double.step(bad.batch(), a), doctest::Contains("NaN or Inf"),
                         sams::invalid_argument);
    CHECK(from_double.serialize() == before);
}

TEST_CASE("sams_scheduler: converted double batches allocate nothing in steady state") {
    const std::size_t B = 8, D = 6;
    const auto batches = stream_of(40, B, D);
    scheduler_f s(busy_config(), D, 21);
    sams::decision<float> d;
    for (std::size_t t = 0; t < 30; ++t) s.step(batches[t].batch(), d);
    const std::size_t before = sams_test::allocations();
    for (std::size_t t = 30; t < 40; ++t) s.step(batches[t].batch(), d);
    CHECK(sams_test::allocations() - before == 0);
}

TEST_CASE("any_scheduler: a run-time choice steps exactly as the scheduler it holds") {
    const std::size_t B = 8, D = 5;
    const auto batches = stream_of(10, B, D);
    const auto cfg = busy_config();
    // A host choosing its method by name, as from a command line.
    const auto make = [&](const std::string& name) -> sams::any_scheduler<double> {
        if (name == "sams") return scheduler_d(cfg, D, 9);
        if (name == "uniform") return sams::uniform_selector<double>(cfg, 9);
        if (name == "large-loss") return sams::loss_selector<double>(cfg);
        if (name == "margin") return sams::margin_selector<double>(cfg);
        return sams::full_batch<double>(cfg);
    };
    // Each choice against the same scheduler built and stepped directly.
    const auto agrees = [&](const std::string& name, auto direct) {
        CAPTURE(name);
        sams::any_scheduler<double> chosen = make(name);
        for (const auto& ob : batches) {
            const auto d = chosen.step(ob.batch());
            sams::decision<double> e;
            direct.step(ob.batch(), e);
            check_same_decision(d, e);
        }
    };
    agrees("sams", scheduler_d(cfg, D, 9));
    agrees("uniform", sams::uniform_selector<double>(cfg.loss, cfg.select, 9));
    agrees("large-loss", sams::loss_selector<double>(cfg.loss, cfg.select, sams::extreme::largest));
    agrees("margin", sams::margin_selector<double>(cfg.loss, cfg.select, sams::extreme::smallest));
    agrees("full", sams::full_batch<double>(cfg.loss, cfg.select));

    // The held scheduler stays reachable: its type, its own interface, its checkpoint.
    sams::any_scheduler<double> s = make("sams");
    CHECK(s.target_type() == typeid(scheduler_d));
    REQUIRE(s.target<scheduler_d>() != nullptr);
    CHECK(s.target<sams::full_batch<double>>() == nullptr);
    scheduler_d reference(cfg, D, 9);
    for (std::size_t t = 0; t < 4; ++t) {
        (void)s.step(batches[t].batch());
        (void)reference.step(batches[t].batch());
    }
    CHECK(s.target<scheduler_d>()->serialize() == reference.serialize());
    CHECK(s.target<scheduler_d>()->steps() == 4);

    // Moved from: empty, and stepping it is an error rather than undefined behaviour.
    sams::any_scheduler<double> moved = std::move(s);
    CHECK(static_cast<bool>(moved));
    CHECK_FALSE(static_cast<bool>(s));  // NOLINT(bugprone-use-after-move): the documented state
    CHECK(s.target_type() == typeid(void));
    CHECK_THROWS_WITH_AS((void)s.step(batches[0].batch()), doctest::Contains("empty"),
                         sams::invalid_argument);
}

TEST_CASE("any_scheduler<float>: double batches, and a baseline agreeing with its direct use") {
    const std::size_t B = 8, D = 4;
    const auto batches = stream_of(6, B, D);
    sams::loss_config loss;
    sams::any_scheduler<float> chosen = sams::uniform_selector<float>(loss, {}, 3);
    sams::uniform_selector<float> direct(loss, {}, 3);
    for (const auto& ob : batches) {
        const auto d = chosen.step(ob.batch());  // double in, float decision out
        const owned_batch_f cast(ob);
        check_same_decision(d, direct.step(cast.batch()));
    }
}
