// Guided selection: the CountSketch (documented hash, linearity, unbiased inner products),
// the per-example agreement memory (weighted means, LRU eviction), the noise model
// (η̂ against the trusted set's clean agreement, its standard error), and guided_scheduler (cosines, drop
// rules, weights and gradients, trusted direction from per-pair sketches, refusals that
// change nothing, exact resume from a checkpoint, bounded memory).
#include <doctest/doctest.h>

#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/guided/agreement_memory.hpp>
#include <sams/guided/guided_config.hpp>
#include <sams/guided/guided_scheduler.hpp>
#include <sams/guided/noise_model.hpp>
#include <sams/guided/sketch.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/concept.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

namespace {

double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

sams::guided_config config(std::size_t k, sams::guided_drop drop = sams::guided_drop::estimated) {
    sams::guided_config c;
    c.loss.kind = sams::loss_kind::sigmoid;
    c.loss.beta = 0.5;
    c.sketch_dim = k;
    c.drop = drop;
    return c;
}

// A synthetic stream of batches over a dataset of n examples in R^k: clean examples'
// sketches point along the trusted direction e_0 plus noise, flipped ones against it, as a
// flipped label negates ∇h. Log-probs are arbitrary but fixed per example.
struct synthetic_stream {
    std::size_t n, b, k;
    std::vector<bool> flipped;
    std::vector<float> a_w, a_l, zeros, sketches;
    std::vector<std::int64_t> ids;
    sams::rng gen;
    std::size_t cursor = 0;

    synthetic_stream(std::size_t n_, std::size_t b_, std::size_t k_, double eta, std::uint64_t seed)
        : n(n_), b(b_), k(k_), flipped(n_), zeros(b_, 0.0f), gen(seed, 1) {
        for (std::size_t i = 0; i < n; ++i) flipped[i] = gen.uniform() < eta;
    }
    sams::pair_batch<float> next() {
        a_w.resize(b);
        a_l.resize(b);
        ids.resize(b);
        sketches.assign(b * k, 0.0f);
        for (std::size_t i = 0; i < b; ++i) {
            const std::size_t id = (cursor++) % n;
            ids[i] = static_cast<std::int64_t>(id);
            a_w[i] = -1.0f - 0.01f * static_cast<float>(id % 7);
            a_l[i] = -1.5f;
            for (std::size_t c = 0; c < k; ++c) sketches[i * k + c] = static_cast<float>(gen.normal());
            sketches[i * k] += flipped[id] ? -1.5f : 1.5f;
        }
        sams::pair_batch<float> batch;
        batch.policy_chosen = a_w;
        batch.policy_rejected = a_l;
        batch.reference_chosen = zeros;
        batch.reference_rejected = zeros;
        batch.ids = ids;
        batch.sketches = {sketches.data(), b, k, 0};
        return batch;
    }
};

std::vector<float> unit_direction(std::size_t k) {
    std::vector<float> g(k, 0.0f);
    g[0] = 1.0f;
    return g;
}

}  // namespace

static_assert(sams::batch_scheduler<sams::guided_scheduler<float>, float>);
static_assert(sams::batch_scheduler<sams::guided_scheduler<double>, double>);

TEST_CASE("count_sketch: buckets and signs follow the documented splitmix64 hash") {
    // splitmix64's first output from state 0 is 0xe220a8397b1dcdaf (the reference
    // implementation's published value), so hash(j) with seed s is mix(s ^ mix(j)).
    CHECK(sams::count_sketch::splitmix64(0) == 0xe220a8397b1dcdafULL);
    const sams::count_sketch s(7, 42);
    for (std::uint64_t j : {0ULL, 1ULL, 12345ULL}) {
        const std::uint64_t h = sams::count_sketch::splitmix64(42ULL ^ sams::count_sketch::splitmix64(j));
        CHECK(s.bucket(j) == (h >> 1) % 7);
        CHECK(s.sign(j) == ((h & 1) == 0 ? 1 : -1));
    }
    // A one-hot vector lands in its bucket with its sign.
    std::vector<double> x(20, 0.0), out(7);
    x[13] = 2.5;
    s.apply(std::span<const double>(x), std::span<double>(out));
    for (std::size_t b = 0; b < 7; ++b) CHECK(out[b] == (b == s.bucket(13) ? 2.5 * s.sign(13) : 0.0));
}

TEST_CASE("count_sketch: linear, tensor by tensor, and unbiased for inner products") {
    sams::rng gen(3, 1);
    const std::size_t p = 300, k = 16;
    std::vector<double> x(p), y(p), xy(p);
    for (std::size_t j = 0; j < p; ++j) {
        x[j] = gen.normal();
        y[j] = gen.normal() + 0.5 * x[j];
        xy[j] = x[j] + y[j];
    }
    const sams::count_sketch s(k, 9);
    std::vector<double> sx(k), sy(k), sxy(k), parts(k, 0.0);
    s.apply(std::span<const double>(x), std::span<double>(sx));
    s.apply(std::span<const double>(y), std::span<double>(sy));
    s.apply(std::span<const double>(xy), std::span<double>(sxy));
    for (std::size_t c = 0; c < k; ++c) CHECK(sxy[c] == doctest::Approx(sx[c] + sy[c]).epsilon(1e-12));
    // Sketching the two halves with their global offsets equals sketching the whole.
    s.accumulate(std::span<const double>(x).first(100), std::span<double>(parts), 0);
    s.accumulate(std::span<const double>(x).subspan(100), std::span<double>(parts), 100);
    for (std::size_t c = 0; c < k; ++c) CHECK(parts[c] == doctest::Approx(sx[c]).epsilon(1e-12));
    // E over seeds of <Sx, Sy> is <x, y>: the mean of 2000 seeds is within 4 standard errors.
    const double exact = std::inner_product(x.begin(), x.end(), y.begin(), 0.0);
    double sum = 0.0, sum2 = 0.0;
    const int seeds = 2000;
    for (int seed = 0; seed < seeds; ++seed) {
        const sams::count_sketch t(k, static_cast<std::uint64_t>(seed) + 100);
        t.apply(std::span<const double>(x), std::span<double>(sx));
        t.apply(std::span<const double>(y), std::span<double>(sy));
        const double v = std::inner_product(sx.begin(), sx.end(), sy.begin(), 0.0);
        sum += v;
        sum2 += v * v;
    }
    const double mean = sum / seeds, se = std::sqrt((sum2 / seeds - mean * mean) / seeds);
    CHECK(std::abs(mean - exact) < 4.0 * se);
    CHECK_THROWS_AS(sams::count_sketch(0, 1), sams::invalid_argument);
    std::vector<double> wrong(k + 1);
    CHECK_THROWS_AS(s.apply(std::span<const double>(x), std::span<double>(wrong)), sams::invalid_argument);
}

TEST_CASE("agreement_memory: weighted means per id, least recently visited evicted") {
    sams::agreement_memory m(2);
    CHECK(m.record(10, 0.5, 1.0, 0) == doctest::Approx(0.5));
    CHECK(m.record(20, -0.2, 1.0, 0) == doctest::Approx(-0.2));
    CHECK(m.record(10, 0.1, 3.0, 1) == doctest::Approx((0.5 + 3 * 0.1) / 4));
    // A visit of weight 0 counts as a visit but moves nothing; an id with no weight yet is 0.
    CHECK(m.record(20, 5.0, 0.0, 1) == doctest::Approx(-0.2));
    // 10 is now the least recently visited: a third id evicts it.
    CHECK(m.record(30, 0.9, 0.0, 2) == 0.0);
    CHECK(m.size() == 2);
    CHECK(m.evictions() == 1);
    CHECK_FALSE(m.contains(10));
    CHECK(m.mean(20).value() == doctest::Approx(-0.2));
    // A returning id starts afresh.
    CHECK(m.record(10, 0.4, 2.0, 3) == doctest::Approx(0.4));
    CHECK_FALSE(m.contains(20));
    // entries() is most recent first and assign() restores the same memory.
    const auto entries = m.entries();
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].id == 10);
    CHECK(entries[0].visits == 1);
    CHECK(entries[1].id == 30);
    sams::agreement_memory copy(2);
    copy.assign(entries);
    CHECK(copy.entries() == entries);
    // The restored LRU order decides the next eviction: 30 goes first.
    copy.record(40, 0.0, 1.0, 4);
    CHECK_FALSE(copy.contains(30));
}

TEST_CASE("agreement_memory: assign refuses bad entries and keeps its contents") {
    sams::agreement_memory m(3);
    m.record(1, 0.2, 1.0, 0);
    const auto before = m.entries();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<sams::agreement_entry> dup{{5, 0.1, 1, 1, 0}, {5, 0.2, 1, 1, 0}};
    const std::vector<sams::agreement_entry> zero_visits{{5, 0.1, 1, 0, 0}};
    const std::vector<sams::agreement_entry> negative_weight{{5, 0.1, -1, 1, 0}};
    const std::vector<sams::agreement_entry> not_finite{{5, nan, 1, 1, 0}};
    const std::vector<sams::agreement_entry> too_many{{1, 0, 1, 1, 0}, {2, 0, 1, 1, 0}, {3, 0, 1, 1, 0}, {4, 0, 1, 1, 0}};
    for (const auto* bad : {&dup, &zero_visits, &negative_weight, &not_finite, &too_many}) {
        CHECK_THROWS_AS(m.assign(*bad), sams::invalid_argument);
        CHECK(m.entries() == before);
    }
}

TEST_CASE("noise_estimator: η̂ = ½(1 − c̄/μ) with a standard error from the per-step spread") {
    // A batch whose mean agreement is (1 − 2η)μ is a share η of flipped pairs.
    sams::noise_estimator e(1e9);  // horizon so long that the weights are 1 to 1e-8
    CHECK(std::isinf(e.estimate().standard_error));
    e.add((1 - 2 * 0.3) * 0.4, 0.4);
    CHECK(e.estimate().rate == doctest::Approx(0.3));
    e.add((1 - 2 * 0.1) * 0.2, 0.2);
    // Pooled: gaps 0.24 and 0.04 over trusted means 0.4 and 0.2: η̂ = ½·0.28/0.6.
    const auto est = e.estimate();
    CHECK(est.rate == doctest::Approx(0.5 * 0.28 / 0.6).epsilon(1e-6));
    // se = ½ · sd(gaps)/√n / mean(μ) with sd of {0.24, 0.04} = 0.1·√2.
    CHECK(est.standard_error == doctest::Approx(0.5 * (0.2 / std::sqrt(2.0)) / std::sqrt(2.0) / 0.3).epsilon(1e-5));
    CHECK(est.effective_steps == doctest::Approx(2.0));
    // Agreement above the clean level is no noise; far below is clamped to ½.
    sams::noise_estimator f(8);
    f.add(0.5, 0.3);
    CHECK(f.estimate().rate == 0.0);
    f.add(-0.9, 0.3);
    f.add(-0.9, 0.3);
    CHECK(f.estimate().rate == 0.5);
    // A short horizon forgets: after many clean steps an old noisy one no longer counts.
    sams::noise_estimator g(4);
    g.add(-0.2, 0.2);
    for (int t = 0; t < 60; ++t) g.add(0.2, 0.2);
    CHECK(g.estimate().rate < 1e-6);
}

TEST_CASE("guided_scheduler: agreement is the cosine with the trusted direction, remembered per id") {
    sams::guided_scheduler<double> s(config(2, sams::guided_drop::none));
    const std::vector<double> g{2.0, 0.0};
    s.set_trusted_direction(g);
    const std::vector<double> a_w{-1, -2}, a_l{-2, -1}, zeros{0, 0};
    const std::vector<std::int64_t> ids{7, 8};
    std::vector<double> sk{1, 1, 0, -3};  // cos = 1/√2 and 0
    sams::pair_batch<double> batch{.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = zeros,
                                   .reference_rejected = zeros, .ids = ids, .sketches = {sk.data(), 2, 2, 0}};
    auto d = s.step(batch);
    CHECK(d.score[0] == doctest::Approx(1.0 / std::sqrt(2.0)));
    CHECK(d.score[1] == doctest::Approx(0.0));
    CHECK(d.selected == std::vector<std::size_t>{0, 1});
    CHECK(d.metrics.mean_agreement == doctest::Approx(0.5 / std::sqrt(2.0)));
    // Second visit: id 7 now points against g (cos −1): remembered mean (1/√2 − 1)/2.
    sk = {-1, 0, 0, 1};
    d = s.step(batch);
    CHECK(d.score[0] == doctest::Approx((1.0 / std::sqrt(2.0) - 1.0) / 2.0));
    CHECK(d.score[1] == doctest::Approx(0.0));
    CHECK(s.memory().size() == 2);
}

TEST_CASE("guided_scheduler: calibrated, a visit counts in units of the clean agreement, weighted by its square") {
    sams::guided_scheduler<double> s(config(2, sams::guided_drop::none));
    const std::vector<double> a_w{-1}, a_l{-2}, zeros{0};
    const std::vector<std::int64_t> ids{3};
    std::vector<double> sk{1, 1};
    const sams::pair_batch<double> batch{.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = zeros,
                                         .reference_rejected = zeros, .ids = ids, .sketches = {sk.data(), 1, 2, 0}};
    s.set_trusted_direction(std::vector<double>{1.0, 0.0}, 0.1);
    (void)s.step(batch);  // c = 1/√2 at μ = 0.1
    s.set_trusted_direction(std::vector<double>{0.0, -1.0}, 0.5);
    const auto d = s.step(batch);  // c = −1/√2 at μ = 0.5
    const double c = 1.0 / std::sqrt(2.0);
    CHECK(d.score[0] == doctest::Approx((0.1 * c - 0.5 * c) / (0.01 + 0.25)));
    // A refresh with no clean agreement (≤ 0) adds a visit of weight 0.
    s.set_trusted_direction(std::vector<double>{1.0, 0.0}, -0.2);
    CHECK(s.step(batch).score[0] == doctest::Approx(d.score[0]));
    CHECK(s.memory().entries()[0].visits == 3);
}

TEST_CASE("guided_scheduler: fixed_fraction drops the lowest remembered agreement, weights 1/K, gradients w·∂ℓ") {
    auto c = config(1, sams::guided_drop::fixed_fraction);
    c.drop_fraction = 0.3;  // ⌈0.3·5⌉ = 2 of 5
    sams::guided_scheduler<double> s(c);
    s.set_trusted_direction(std::vector<double>{1.0});
    const std::vector<double> a_w{-1, -2, -0.5, -3, -1}, a_l{-2, -1, -1, -1, -1}, zeros(5, 0.0);
    const std::vector<std::int64_t> ids{0, 1, 2, 3, 4};
    // Agreements (cosine in one dimension is the sign): +, −, +, −, + ; pairs 1 and 3 go.
    std::vector<double> sk{0.5, -2, 1, -0.1, 3};
    const sams::pair_batch<double> batch{.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = zeros,
                                         .reference_rejected = zeros, .ids = ids, .sketches = {sk.data(), 5, 1, 0}};
    const auto d = s.step(batch);
    CHECK(d.selected == std::vector<std::size_t>{0, 2, 4});
    CHECK(d.metrics.dropped == 2);
    for (std::size_t i = 0; i < 5; ++i) {
        const double m = 0.5 * ((a_w[i]) - (a_l[i]));
        const double w = d.mask[i] ? 1.0 / 3.0 : 0.0;
        CHECK(d.weight[i] == doctest::Approx(w));
        CHECK(d.loss[i] == doctest::Approx(std::log1p(std::exp(-m))));
        // ∂(−log σ(m))/∂a_w = −βσ(−m), ∂/∂a_l = +βσ(−m).
        CHECK(d.d_policy_chosen[i] == doctest::Approx(-w * 0.5 * logistic(-m)));
        CHECK(d.d_policy_rejected[i] == doctest::Approx(w * 0.5 * logistic(-m)));
    }
}

TEST_CASE("guided_scheduler: set_trusted forms g = (1/T) Σ βσ(−m_j) s_j for the sigmoid loss") {
    sams::guided_scheduler<double> s(config(2));
    const std::vector<double> a_w{-1, -3}, a_l{-2, -1}, zeros{0, 0};
    std::vector<double> sk{1, 2, -1, 4};
    sams::pair_batch<double> trusted{.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = zeros,
                                     .reference_rejected = zeros, .sketches = {sk.data(), 2, 2, 0}};
    CHECK(s.needs_trusted_refresh());
    s.set_trusted(trusted);
    CHECK_FALSE(s.needs_trusted_refresh());
    const double w0 = 0.5 * logistic(-0.5 * (-1 + 2)), w1 = 0.5 * logistic(-0.5 * (-3 + 1));
    const auto g = s.trusted_direction();
    CHECK(g[0] == doctest::Approx((w0 * 1 + w1 * -1) / 2));
    CHECK(g[1] == doctest::Approx((w0 * 2 + w1 * 4) / 2));
    // Leave one out, each pair is compared with the other alone (both weights > 0), so the
    // clean agreement is cos(s_0, s_1) = (−1 + 8)/(√5·√17).
    CHECK(s.clean_agreement() == doctest::Approx(7.0 / std::sqrt(85.0)));
    // Two pairs that point apart have a negative clean agreement: accepted, but such a
    // refresh is left out of the noise estimate.
    std::vector<double> apart{1, 0, -1, 0};
    trusted.sketches = {apart.data(), 2, 2, 0};
    s.set_trusted(trusted);
    CHECK(s.clean_agreement() == doctest::Approx(-1.0));
    const std::vector<std::int64_t> ids{1, 2};
    std::vector<double> batch_sketches{1, 0, 0, 1};
    (void)s.step({.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = zeros, .reference_rejected = zeros,
                  .ids = ids, .sketches = {batch_sketches.data(), 2, 2, 0}});
    CHECK(s.noise().effective_steps == 0.0);
}

TEST_CASE("guided_scheduler: the estimated rule drops about the flipped share, and nothing in clean data") {
    for (const double eta : {0.0, 0.3}) {
        CAPTURE(eta);
        auto c = config(8);
        c.estimate_confidence = 2.0;
        sams::guided_scheduler<float> s(c);
        // The trusted set: 64 clean pairs of the same distribution.
        synthetic_stream clean(64, 64, 8, 0.0, 99);
        s.set_trusted(clean.next());
        CHECK(s.clean_agreement() > 0.2);
        synthetic_stream data(256, 32, 8, eta, 11);
        std::size_t dropped = 0, dropped_flipped = 0, trained = 0, trained_flipped = 0;
        sams::decision<float> d;
        for (int t = 0; t < 40; ++t) {
            const auto batch = data.next();
            s.step(batch, d);
            if (t < 16) continue;  // after two epochs the memory holds two visits per id
            for (std::size_t i = 0; i < 32; ++i) {
                const bool f = data.flipped[static_cast<std::size_t>(batch.ids[i])];
                (d.mask[i] ? trained : dropped) += 1;
                (d.mask[i] ? trained_flipped : dropped_flipped) += f ? 1 : 0;
            }
        }
        const double true_share = static_cast<double>(std::count(data.flipped.begin(), data.flipped.end(), true)) / 256.0;
        if (eta == 0.0) {
            CHECK(dropped == 0);
            CHECK(s.noise().rate < 0.03);
        } else {
            CHECK(s.noise().rate == doctest::Approx(true_share).epsilon(0.2));
            // Two thirds of the flipped visits are gone; what is dropped is mostly flipped.
            CHECK(static_cast<double>(trained_flipped) / static_cast<double>(trained) < 0.4 * true_share);
            CHECK(static_cast<double>(dropped_flipped) / static_cast<double>(dropped) > 0.8);
        }
    }
}

TEST_CASE("guided_scheduler: refreshes are due every refresh_interval steps") {
    auto c = config(8);
    c.refresh_interval = 3;
    sams::guided_scheduler<float> s(c);
    synthetic_stream data(64, 8, 8, 0.0, 2);
    s.set_trusted_direction(unit_direction(8), 0.5);
    for (int t = 0; t < 3; ++t) {
        CHECK_FALSE(s.needs_trusted_refresh());
        (void)s.step(data.next());
    }
    CHECK(s.needs_trusted_refresh());
    CHECK(s.trusted_age() == 3);
}

TEST_CASE("guided_scheduler: every refusal names the field and changes nothing") {
    auto c = config(4);
    sams::guided_scheduler<float> s(c);
    synthetic_stream data(64, 8, 4, 0.2, 3);
    const auto check_refused = [&](auto&& call, const char* needle) {
        const auto before = s.serialize();
        bool threw = false;
        try {
            call();
        } catch (const sams::invalid_argument& e) {
            threw = true;
            CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, std::string(e.what()));
        }
        CHECK_MESSAGE(threw, needle);
        CHECK(s.serialize() == before);
    };
    // No direction yet; then a direction without the clean agreement the estimated rule needs.
    check_refused([&] { (void)s.step(data.next()); }, "no trusted direction");
    s.set_trusted_direction(unit_direction(4));
    check_refused([&] { (void)s.step(data.next()); }, "needs the trusted set's clean agreement");
    check_refused([&] { s.set_trusted_direction(unit_direction(4), 1.5); }, "clean_agreement must be a cosine");
    s.set_trusted_direction(unit_direction(4), 0.5);
    for (int t = 0; t < 3; ++t) (void)s.step(data.next());

    check_refused([&] { s.set_trusted_direction(std::vector<float>(3, 1.0f)); }, "expected sketch_dim 4");
    check_refused([&] { s.set_trusted_direction(std::vector<float>(4, 0.0f)); }, "non-zero norm");
    check_refused([&] { s.set_trusted_direction(std::vector<float>{1, std::nanf(""), 0, 0}); }, "NaN or Inf");
    check_refused([&] { s.set_trusted(sams::pair_batch<float>{}); }, "at least 2 pairs");
    {
        auto t = data.next();
        t.sketches.cols = 3;
        check_refused([&] { s.set_trusted(t); }, "trusted.sketches must be 8 x 4");
        data.sketches[5] = std::numeric_limits<float>::infinity();
        t.sketches.cols = 4;
        check_refused([&] { s.set_trusted(t); }, "trusted.sketches contains NaN or Inf");
    }
    {
        auto b = data.next();
        b.ids = {};
        check_refused([&] { (void)s.step(b); }, "batch.ids is required");
    }
    {
        auto b = data.next();
        data.ids[3] = data.ids[1];
        check_refused([&] { (void)s.step(b); }, "twice");
    }
    {
        auto b = data.next();
        b.sketches.cols = 5;
        check_refused([&] { (void)s.step(b); }, "batch.sketches must be 8 x 4");
        b.sketches.cols = 4;
        b.sketches.data = nullptr;
        check_refused([&] { (void)s.step(b); }, "null data pointer");
    }
    {
        auto b = data.next();
        data.sketches[9] = std::nanf("");
        check_refused([&] { (void)s.step(b); }, "batch.sketches contains NaN or Inf");
    }
    {
        auto b = data.next();
        data.a_w[2] = std::nanf("");
        check_refused([&] { (void)s.step(b); }, "policy_chosen[2] is nan");
    }
    // Configurations.
    auto bad = c;
    bad.sketch_dim = 0;
    CHECK_THROWS_WITH_AS(sams::guided_scheduler<float>{bad}, doctest::Contains("guided_config.sketch_dim"),
                         sams::invalid_argument);
    bad = c;
    bad.drop = static_cast<sams::guided_drop>(7);
    CHECK_THROWS_WITH_AS(sams::guided_scheduler<float>{bad}, doctest::Contains("guided_config.drop"),
                         sams::invalid_argument);
    bad = c;
    bad.drop_fraction = 1.0;
    CHECK_THROWS_WITH_AS(sams::guided_scheduler<float>{bad}, doctest::Contains("guided_config.drop_fraction"),
                         sams::invalid_argument);
    bad = c;
    bad.memory_capacity = 0;
    CHECK_THROWS_WITH_AS(sams::guided_scheduler<float>{bad}, doctest::Contains("guided_config.memory_capacity"),
                         sams::invalid_argument);
}

TEST_CASE("guided_scheduler: a checkpoint resumes bit for bit, and bad checkpoints are refused") {
    auto c = config(6);
    c.memory_capacity = 48;  // fewer than the 80 ids: eviction is part of the resumed state
    c.refresh_interval = 4;
    const auto run = [&](sams::guided_scheduler<float>& s, synthetic_stream& data, int steps,
                         std::vector<sams::decision<float>>& out) {
        std::vector<float> g(6);
        for (int t = 0; t < steps; ++t) {
            if (s.needs_trusted_refresh()) {
                for (std::size_t i = 0; i < 6; ++i) g[i] = static_cast<float>(data.gen.normal()) * 0.1f + (i == 0 ? 1.0f : 0.0f);
                s.set_trusted_direction(g, 0.4 + 0.1 * data.gen.uniform());
            }
            out.push_back(s.step(data.next()));
        }
    };
    sams::guided_scheduler<float> straight(c);
    synthetic_stream d1(80, 16, 6, 0.3, 21);
    std::vector<sams::decision<float>> a, b;
    run(straight, d1, 40, a);

    sams::guided_scheduler<float> first(c);
    synthetic_stream d2(80, 16, 6, 0.3, 21);
    run(first, d2, 17, b);
    const auto path = std::filesystem::temp_directory_path() / "sams_test_guided.ckpt";
    first.save(path);
    auto resumed = sams::guided_scheduler<float>::load(path);
    std::filesystem::remove(path);
    CHECK(resumed.serialize() == first.serialize());
    CHECK(resumed.memory().size() == 48);
    CHECK(resumed.memory().evictions() == first.memory().evictions());
    run(resumed, d2, 23, b);
    REQUIRE(a.size() == b.size());
    for (std::size_t t = 0; t < a.size(); ++t) {
        CAPTURE(t);
        CHECK(a[t].selected == b[t].selected);
        CHECK(a[t].weight == b[t].weight);
        CHECK(a[t].score == b[t].score);
        CHECK(a[t].d_policy_chosen == b[t].d_policy_chosen);
    }
    CHECK(resumed.serialize() == straight.serialize());

    // Truncations and flipped bytes are refused with checkpoint_error.
    const auto bytes = straight.serialize();
    for (std::size_t cut = 0; cut < bytes.size(); cut += 1 + bytes.size() / 97)
        CHECK_THROWS_AS((void)sams::guided_scheduler<float>::deserialize(std::span(bytes).first(cut)),
                        sams::checkpoint_error);
    CHECK_THROWS_AS((void)sams::guided_scheduler<double>::deserialize(bytes), sams::checkpoint_error);

    // Well-framed payloads that lie: more remembered ids than the capacity, a memory sum that
    // is not finite, a stored config with an unknown drop rule.
    const auto forge = [&](std::size_t entries, double sum, std::int32_t drop) {
        sams::detail::byte_writer w;
        w.put_tag("guided");
        w.put<std::uint32_t>(4);
        const auto& cc = c;
        w.put<std::int32_t>(static_cast<std::int32_t>(cc.loss.kind));
        w.put<double>(cc.loss.beta);
        w.put<double>(cc.loss.label_smoothing);
        w.put<double>(cc.loss.simpo_gamma);
        w.put<std::uint8_t>(cc.loss.length_normalize ? 1 : 0);
        w.put<std::uint64_t>(cc.sketch_dim);
        w.put<std::uint64_t>(cc.memory_capacity);
        w.put<std::int32_t>(drop);
        w.put<double>(cc.drop_fraction);
        w.put<double>(cc.max_drop_fraction);
        w.put<double>(cc.estimate_horizon);
        w.put<double>(cc.estimate_confidence);
        w.put<std::uint64_t>(cc.refresh_interval);
        w.put<std::int32_t>(static_cast<std::int32_t>(cc.weights));
        w.put<std::uint64_t>(1);
        w.put<std::uint64_t>(1);
        w.put<std::uint64_t>(0);
        w.put_array(std::span<const float>(unit_direction(6)));
        w.put<std::uint8_t>(1);  // calibrated
        w.put<double>(0.4);      // clean agreement
        w.put(sams::noise_estimator::state_type{3.0, 0.6, 1.2, 0.6, 0.2});
        w.put<std::uint64_t>(0);
        std::vector<sams::agreement_entry> e(entries);
        for (std::size_t i = 0; i < entries; ++i) e[i] = {static_cast<std::int64_t>(i), sum, 1.0, 1, 0};
        w.put_array(std::span<const sams::agreement_entry>(e));
        return sams::detail::frame_checkpoint(w.bytes());
    };
    CHECK_NOTHROW((void)sams::guided_scheduler<float>::deserialize(forge(10, 0.1, 2)));
    CHECK_THROWS_WITH_AS((void)sams::guided_scheduler<float>::deserialize(forge(49, 0.1, 2)),
                         doctest::Contains("capacity"), sams::checkpoint_error);
    CHECK_THROWS_WITH_AS((void)sams::guided_scheduler<float>::deserialize(
                             forge(10, std::numeric_limits<double>::infinity(), 2)),
                         doctest::Contains("finite"), sams::checkpoint_error);
    CHECK_THROWS_WITH_AS((void)sams::guided_scheduler<float>::deserialize(forge(10, 0.1, 9)),
                         doctest::Contains("guided_config.drop"), sams::checkpoint_error);
}
