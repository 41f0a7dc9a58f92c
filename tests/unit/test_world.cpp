// The benchmark world (bench/world/): labels and noise, the policy's exact log-probs and
// gradients, the exact reward metrics, the statistics, and a short DPO run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/context/hidden_states.hpp>
#include <sams/context/mean_pool.hpp>

#include <bench/world/experiment.hpp>
#include <bench/world/policy.hpp>
#include <bench/world/stats.hpp>
#include <bench/world/world.hpp>

namespace sb = sams::bench;

namespace {

sb::world_config small_world() {
    sb::world_config c;
    c.vocab = 3;
    c.max_len = 3;
    c.train_prompts = 64;
    c.val_prompts = 16;
    c.test_prompts = 8;
    return c;
}

// Plain DPO on every pair, written independently of the library's baselines.
struct all_pairs {
    double beta = 0.1;
    void step(const sams::pair_batch<float>& b, sams::decision<float>& d) const {
        const std::size_t n = b.size();
        d.mask.assign(n, 1);
        d.weight.assign(n, 1.0f / static_cast<float>(n));
        d.loss.resize(n);
        d.d_policy_chosen.resize(n);
        d.d_policy_rejected.resize(n);
        d.selected.resize(n);
        double total = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const double m = beta * ((b.policy_chosen[i] - b.reference_chosen[i]) -
                                     (b.policy_rejected[i] - b.reference_rejected[i]));
            const double loss = std::log1p(std::exp(-m));
            const double s = 1.0 / (1.0 + std::exp(m));  // σ(−m)
            d.loss[i] = static_cast<float>(loss);
            d.d_policy_chosen[i] = static_cast<float>(-beta * s / static_cast<double>(n));
            d.d_policy_rejected[i] = static_cast<float>(beta * s / static_cast<double>(n));
            d.selected[i] = i;
            total += loss;
        }
        d.metrics.batch_loss = total / static_cast<double>(n);
    }
};

// Keeps the first half of every batch: a deterministic selector to check the bookkeeping.
struct first_half {
    all_pairs inner;
    void step(const sams::pair_batch<float>& b, sams::decision<float>& d) const {
        inner.step(b, d);
        const std::size_t n = b.size(), k = n / 2;
        d.selected.resize(k);
        for (std::size_t i = 0; i < n; ++i) {
            const bool keep = i < k;
            d.mask[i] = keep ? 1 : 0;
            const float scale = keep ? static_cast<float>(n) / static_cast<float>(k) : 0.0f;
            d.weight[i] = keep ? 1.0f / static_cast<float>(k) : 0.0f;
            d.d_policy_chosen[i] *= scale;
            d.d_policy_rejected[i] *= scale;
        }
    }
};

template <class T>
double loss_of(const sb::policy<T>& pi, const sb::token_batch<T>& tb, const std::vector<T>& g) {
    sb::policy_cache<T> cache;
    std::vector<T> lp(tb.sequences());
    pi.forward(tb, cache, lp);
    double s = 0.0;
    for (std::size_t i = 0; i < lp.size(); ++i) s += static_cast<double>(g[i]) * static_cast<double>(lp[i]);
    return s;
}

}  // namespace

TEST_CASE("world config validation names the field") {
    sb::world_config c;
    c.noise_rate = 1.5;
    CHECK_THROWS_WITH_AS(sb::world(c, 1), doctest::Contains("noise_rate"), sams::invalid_argument);
    c = {};
    c.max_len = 0;
    CHECK_THROWS_AS(sb::world(c, 1), sams::invalid_argument);
    sb::train_config t;
    t.beta = 0.0;
    CHECK_THROWS_WITH_AS(sb::experiment(small_world(), t, 1), doctest::Contains("beta"), sams::invalid_argument);
}

TEST_CASE("true reward is standardised over the response distribution") {
    const sb::world w(sb::world_config{}, 7);
    sams::rng r(99);
    constexpr int n = 20000;
    double s = 0.0, ss = 0.0;
    std::vector<double> x(w.config().prompt_dim);
    for (int i = 0; i < n; ++i) {
        for (auto& v : x) v = r.normal();
        const double v = w.true_reward(x.data(), w.random_response(r));
        s += v;
        ss += v * v;
    }
    const double mean = s / n;
    CHECK(std::abs(mean) < 0.05);
    CHECK(std::sqrt(ss / n - mean * mean) == doctest::Approx(1.0).epsilon(0.05));
}

TEST_CASE("deterministic labels and uniform noise flip exactly the recorded pairs") {
    sb::world_config c = small_world();
    c.label_temperature = 0.0;
    c.noise_rate = 0.25;
    const sb::world w(c, 3);
    const sb::dataset d = w.make_dataset();
    const std::size_t n = d.train.pairs.size();
    std::size_t flipped = 0;
    for (const auto& p : d.train.pairs) {
        CHECK(p.chosen != p.rejected);
        CHECK(p.chosen_true_reward == doctest::Approx(w.true_reward(d.train.prompt(p.prompt), p.chosen)));
        // With deterministic labels a pair is wrong exactly when noise flipped it.
        CHECK((p.chosen_true_reward < p.rejected_true_reward) == p.flipped);
        flipped += p.flipped ? 1 : 0;
    }
    CHECK(flipped == static_cast<std::size_t>(std::llround(0.25 * static_cast<double>(n))));
    for (const auto* s : {&d.val, &d.test})
        for (const auto& p : s->pairs) {
            CHECK_FALSE(p.flipped);
            CHECK(p.chosen_true_reward >= p.rejected_true_reward);
        }
}

TEST_CASE("noise levels share the data and nest their flips") {
    sb::world_config c = small_world();
    c.noise_rate = 0.1;
    const sb::dataset lo = sb::world(c, 5).make_dataset();
    c.noise_rate = 0.4;
    const sb::dataset hi = sb::world(c, 5).make_dataset();
    REQUIRE(lo.train.pairs.size() == hi.train.pairs.size());
    std::size_t lo_flips = 0, hi_flips = 0;
    for (std::size_t i = 0; i < lo.train.pairs.size(); ++i) {
        const auto& a = lo.train.pairs[i];
        const auto& b = hi.train.pairs[i];
        if (a.flipped) CHECK(b.flipped);
        // Undo the flips: the clean pairs must agree.
        CHECK((a.flipped ? a.rejected : a.chosen) == (b.flipped ? b.rejected : b.chosen));
        lo_flips += a.flipped ? 1 : 0;
        hi_flips += b.flipped ? 1 : 0;
    }
    CHECK(lo_flips < hi_flips);
    CHECK(lo.test.pairs[3].chosen == hi.test.pairs[3].chosen);
}

TEST_CASE("near-tie noise flips only among the closest pairs") {
    sb::world_config c = small_world();
    c.noise = sb::noise_model::near_tie;
    c.noise_rate = 0.1;
    const sb::dataset d = sb::world(c, 11).make_dataset();
    std::vector<double> gaps;
    double max_flipped_gap = 0.0;
    std::size_t m = 0;
    for (const auto& p : d.train.pairs) {
        const double gap = std::abs(p.chosen_true_reward - p.rejected_true_reward);
        gaps.push_back(gap);
        if (p.flipped) max_flipped_gap = std::max(max_flipped_gap, gap), ++m;
    }
    REQUIRE(m == static_cast<std::size_t>(std::llround(0.1 * static_cast<double>(gaps.size()))));
    std::sort(gaps.begin(), gaps.end());
    CHECK(max_flipped_gap <= gaps[2 * m - 1]);
}

TEST_CASE("Bradley-Terry labels agree with r* at the rate the logistic model predicts") {
    sb::world_config c = small_world();
    c.train_prompts = 2000;
    c.label_temperature = 0.5;
    const sb::dataset d = sb::world(c, 13).make_dataset();
    double agree = 0.0, expected = 0.0;
    for (const auto& p : d.train.pairs) {
        const double gap = std::abs(p.chosen_true_reward - p.rejected_true_reward);
        agree += p.chosen_true_reward > p.rejected_true_reward ? 1.0 : 0.0;
        expected += 1.0 / (1.0 + std::exp(-gap / c.label_temperature));
    }
    const double n = static_cast<double>(d.train.pairs.size());
    // 8000 Bernoulli draws: the standard error is below 0.006.
    CHECK(std::abs(agree / n - expected / n) < 0.02);
}

TEST_CASE_TEMPLATE("policy gradient matches central finite differences", T, float, double) {
    const sb::world w(small_world(), 17);
    sams::rng r(4);
    sb::policy<T> pi(w.config().feature_dim(), 6, w.config().classes(), r, 1.0);
    sb::token_batch<T> tb;
    tb.clear(w.config().feature_dim());
    std::vector<double> x(w.config().prompt_dim);
    std::vector<T> g;
    for (int i = 0; i < 5; ++i) {
        for (auto& v : x) v = r.normal();
        sb::sequence y = w.random_response(r);
        if (i == 0) y.assign(w.config().max_len, 1);  // no end-of-sequence row
        tb.add(w, x.data(), y);
        g.push_back(static_cast<T>(r.normal()));
    }
    sb::policy_cache<T> cache;
    std::vector<T> lp(tb.sequences());
    pi.forward(tb, cache, lp);
    typename sb::policy<T>::vector grad;
    pi.backward(tb, cache, g, grad);
    REQUIRE(static_cast<std::size_t>(grad.size()) == pi.size());

    const double h = std::is_same_v<T, float> ? 1e-2 : 1e-5;
    const double tol = std::is_same_v<T, float> ? 2e-2 : 1e-6;
    double worst = 0.0;
    for (Eigen::Index k = 0; k < grad.size(); ++k) {
        sb::policy<T> plus = pi, minus = pi;
        plus.parameters()(k) += static_cast<T>(h);
        minus.parameters()(k) -= static_cast<T>(h);
        const double fd = (loss_of(plus, tb, g) - loss_of(minus, tb, g)) / (2 * h);
        worst = std::max(worst, std::abs(fd - static_cast<double>(grad(k))) / (1.0 + std::abs(fd)));
    }
    CHECK(worst < tol);
}

TEST_CASE("log-prob of a response is the sum of its next-token log-probs") {
    const sb::world w(small_world(), 19);
    sams::rng r(5);
    sb::policy<double> pi(w.config().feature_dim(), 5, w.config().classes(), r, 1.0);
    std::vector<double> x(w.config().prompt_dim);
    for (auto& v : x) v = r.normal();
    const sb::sequence y{2, 0};
    sb::token_batch<double> tb;
    tb.clear(w.config().feature_dim());
    tb.add(w, x.data(), y);
    REQUIRE(tb.rows() == 3);  // two tokens and the end-of-sequence prediction
    sb::policy_cache<double> cache;
    std::vector<double> lp(1);
    pi.forward(tb, cache, lp);
    const double expected = std::log(cache.prob(0, 2)) + std::log(cache.prob(1, 0)) +
                            std::log(cache.prob(2, static_cast<Eigen::Index>(w.config().eos())));
    CHECK(lp[0] == doctest::Approx(expected).epsilon(1e-12));
    for (Eigen::Index row = 0; row < 3; ++row) CHECK(cache.prob.row(row).sum() == doctest::Approx(1.0));
}

TEST_CASE("enumerated response distribution is normalised and matches direct log-probs") {
    sb::train_config t;
    t.policy_hidden = 8;
    t.output_scale = 3.0;  // far from uniform, so mistakes show
    const sb::experiment e(small_world(), t, 23);
    const auto& responses = e.responses();
    // Σ_{n=0..3} 3^n responses.
    REQUIRE(responses.size() == 1 + 3 + 9 + 27);
    const Eigen::MatrixXd lp = e.response_log_probs(e.reference());
    const auto& test = e.data().test;
    for (Eigen::Index p = 0; p < lp.cols(); ++p) {
        CHECK(lp.col(p).array().exp().sum() == doctest::Approx(1.0).epsilon(1e-5));
        sb::token_batch<float> tb;
        tb.clear(e.get_world().config().feature_dim());
        for (const auto& y : responses) tb.add(e.get_world(), test.prompt(static_cast<std::size_t>(p)), y);
        sb::policy_cache<float> cache;
        std::vector<float> direct(responses.size());
        e.reference().forward(tb, cache, direct);
        for (std::size_t k = 0; k < responses.size(); ++k)
            CHECK(lp(static_cast<Eigen::Index>(k), p) == doctest::Approx(direct[k]).epsilon(1e-4));
    }
}

TEST_CASE("reward gain and win rate agree with brute-force sums") {
    sb::train_config t;
    t.policy_hidden = 8;
    t.output_scale = 3.0;
    const sb::experiment e(small_world(), t, 29);
    sams::rng r(6);
    sb::policy<float> pi(e.get_world().config().feature_dim(), 8, e.get_world().config().classes(), r, 3.0);
    double gain = 0.0, win = 0.0;
    e.reward_metrics(pi, gain, win);

    const auto& test = e.data().test;
    const auto& responses = e.responses();
    double gain_bf = 0.0, win_bf = 0.0;
    const auto prompts = static_cast<std::size_t>(test.prompts.cols());
    for (std::size_t p = 0; p < prompts; ++p) {
        std::vector<double> rew, p_pi, p_ref;
        for (const auto& y : responses) {
            rew.push_back(e.get_world().true_reward(test.prompt(p), y));
            sb::token_batch<float> tb;
            tb.clear(e.get_world().config().feature_dim());
            tb.add(e.get_world(), test.prompt(p), y);
            sb::policy_cache<float> cache;
            std::vector<float> a(1), b(1);
            pi.forward(tb, cache, a);
            e.reference().forward(tb, cache, b);
            p_pi.push_back(std::exp(static_cast<double>(a[0])));
            p_ref.push_back(std::exp(static_cast<double>(b[0])));
        }
        for (std::size_t i = 0; i < rew.size(); ++i) {
            gain_bf += (p_pi[i] - p_ref[i]) * rew[i];
            for (std::size_t j = 0; j < rew.size(); ++j)
                win_bf += p_pi[i] * p_ref[j] * (rew[i] > rew[j] ? 1.0 : (rew[i] == rew[j] ? 0.5 : 0.0));
        }
    }
    CHECK(gain == doctest::Approx(gain_bf / static_cast<double>(prompts)).epsilon(1e-4));
    CHECK(win == doctest::Approx(win_bf / static_cast<double>(prompts)).epsilon(1e-4));
    // Against itself the win rate is exactly one half.
    e.reward_metrics(e.reference(), gain, win);
    CHECK(gain == doctest::Approx(0.0));
    CHECK(win == doctest::Approx(0.5));
}

TEST_CASE("pair contexts are masked means of the hidden states, chosen and rejected averaged") {
    sb::train_config t;
    t.policy_hidden = 4;
    const sb::experiment e(small_world(), t, 31);
    const auto& w = e.get_world();
    const auto& tr = e.data().train;
    sb::token_batch<float> tb;
    tb.clear(w.config().feature_dim());
    const std::size_t b = 3;
    for (std::size_t i = 0; i < b; ++i) tb.add(w, tr.prompt(tr.pairs[i].prompt), tr.pairs[i].chosen);
    for (std::size_t i = 0; i < b; ++i) tb.add(w, tr.prompt(tr.pairs[i].prompt), tr.pairs[i].rejected);
    sb::policy_cache<float> cache;
    std::vector<float> lp(2 * b), ctx(b * 8);
    e.reference().forward(tb, cache, lp);
    e.pair_contexts(tb, cache, b, ctx);
    for (std::size_t i = 0; i < b; ++i)
        for (std::size_t layer = 0; layer < 2; ++layer)
            for (Eigen::Index j = 0; j < 4; ++j) {
                const auto& h = layer == 0 ? cache.h1 : cache.h2;
                double mw = 0.0, ml = 0.0;
                const std::size_t nw = w.positions(tr.pairs[i].chosen), nl = w.positions(tr.pairs[i].rejected);
                for (std::size_t r = tb.offset[i]; r < tb.offset[i] + nw; ++r) mw += h(static_cast<Eigen::Index>(r), j);
                for (std::size_t r = tb.offset[b + i]; r < tb.offset[b + i] + nl; ++r) ml += h(static_cast<Eigen::Index>(r), j);
                const double expected = 0.5 * (mw / static_cast<double>(nw) + ml / static_cast<double>(nl));
                CHECK(ctx[i * 8 + layer * 4 + static_cast<std::size_t>(j)] == doctest::Approx(expected).epsilon(1e-5));
            }
    // Concatenated: per layer [chosen mean, rejected mean], so swapping the label changes it.
    std::vector<float> cat(b * 16);
    REQUIRE(e.context_dim(sb::context_mode::concatenate) == 16);
    e.pair_contexts(tb, cache, b, cat, sb::context_mode::concatenate);
    for (std::size_t i = 0; i < b; ++i)
        for (std::size_t layer = 0; layer < 2; ++layer)
            for (Eigen::Index j = 0; j < 4; ++j) {
                const auto& h = layer == 0 ? cache.h1 : cache.h2;
                const std::size_t nw = w.positions(tr.pairs[i].chosen), nl = w.positions(tr.pairs[i].rejected);
                double mw = 0.0, ml = 0.0;
                for (std::size_t r = tb.offset[i]; r < tb.offset[i] + nw; ++r) mw += h(static_cast<Eigen::Index>(r), j);
                for (std::size_t r = tb.offset[b + i]; r < tb.offset[b + i] + nl; ++r) ml += h(static_cast<Eigen::Index>(r), j);
                const std::size_t at = i * 16 + layer * 8 + static_cast<std::size_t>(j);
                CHECK(cat[at] == doctest::Approx(mw / static_cast<double>(nw)).epsilon(1e-5));
                CHECK(cat[at + 4] == doctest::Approx(ml / static_cast<double>(nl)).epsilon(1e-5));
            }
}

TEST_CASE("pair contexts equal the library's default mean_pool_extractor on padded hidden states") {
    sb::train_config t;
    t.policy_hidden = 5;
    const sb::experiment e(small_world(), t, 41);
    const auto& w = e.get_world();
    const auto& tr = e.data().train;
    const std::size_t b = 6, h = 5, len = w.config().max_len;
    sb::token_batch<float> tb;
    tb.clear(w.config().feature_dim());
    for (std::size_t i = 0; i < b; ++i) tb.add(w, tr.prompt(tr.pairs[i].prompt), tr.pairs[i].chosen);
    for (std::size_t i = 0; i < b; ++i) tb.add(w, tr.prompt(tr.pairs[i].prompt), tr.pairs[i].rejected);
    sb::policy_cache<float> cache;
    std::vector<float> lp(2 * b), mine(b * 2 * h);
    e.reference().forward(tb, cache, lp);
    e.pair_contexts(tb, cache, b, mine);

    // [layers][2B sequences][L tokens][H], padding filled with NaN, which the mask must hide.
    std::vector<float> states(2 * 2 * b * len * h, std::nanf(""));
    std::vector<std::uint8_t> mask(2 * b * len, 0);
    for (std::size_t s = 0; s < 2 * b; ++s)
        for (std::size_t r = tb.offset[s]; r < tb.offset[s + 1]; ++r) {
            const std::size_t tok = r - tb.offset[s];
            mask[s * len + tok] = 1;
            for (std::size_t k = 0; k < h; ++k) {
                const auto row = static_cast<Eigen::Index>(r), col = static_cast<Eigen::Index>(k);
                states[((0 * 2 * b + s) * len + tok) * h + k] = cache.h1(row, col);
                states[((1 * 2 * b + s) * len + tok) * h + k] = cache.h2(row, col);
            }
        }
    const auto all = sams::hidden_states_view<float>::layer_major(states.data(), 2, 2 * b, len, h);
    const auto masks = sams::token_mask_view<std::uint8_t>::contiguous(mask.data(), 2 * b, len);
    sams::mean_pool_extractor<float> extractor;
    REQUIRE(extractor.output_dim(2, h) == e.context_dim());
    std::vector<float> lib(b * 2 * h);
    extractor.extract(all.pair_range(0, b), all.pair_range(b, b), masks.pair_range(0, b), masks.pair_range(b, b),
                      sams::matrix_view<float>{lib.data(), b, 2 * h, 0});
    for (std::size_t i = 0; i < lib.size(); ++i) CHECK(mine[i] == doctest::Approx(lib[i]).epsilon(1e-5));
}

TEST_CASE("Adam's first step moves every parameter by the learning rate against the gradient sign") {
    sb::adam<double> opt(3, 0.01);
    Eigen::VectorXd theta(3), grad(3);
    theta << 1.0, -2.0, 0.5;
    grad << 0.3, -4.0, 1e-3;
    opt.step(theta, grad);
    // m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps).
    CHECK(theta(0) == doctest::Approx(0.99));
    CHECK(theta(1) == doctest::Approx(-1.99));
    CHECK(theta(2) == doctest::Approx(0.5 - 0.01 * 1e-3 / (1e-3 + 1e-8)));
}

TEST_CASE("t quantiles match a numerical integral of the t density") {
    for (const std::size_t df : {1u, 2u, 4u, 9u, 29u, 30u, 31u, 60u, 200u}) {
        const double q = sb::t_quantile_975(df);
        const double v = static_cast<double>(df);
        // ∫_0^q of the density by Simpson's rule must be 0.475.
        const double c = std::exp(std::lgamma((v + 1) / 2) - std::lgamma(v / 2)) / std::sqrt(v * M_PI);
        const auto pdf = [&](double t) { return c * std::pow(1 + t * t / v, -(v + 1) / 2); };
        constexpr int n = 20000;
        const double h = q / n;
        double s = pdf(0) + pdf(q);
        for (int i = 1; i < n; ++i) s += (i % 2 ? 4 : 2) * pdf(i * h);
        CHECK(s * h / 3 == doctest::Approx(0.475).epsilon(2e-4));
    }
}

TEST_CASE("summary gives mean, sample deviation and the t interval") {
    const std::vector<double> v{1, 2, 3, 4, 5};
    const sb::summary s = sb::summarize(v);
    CHECK(s.mean == doctest::Approx(3.0));
    CHECK(s.stddev == doctest::Approx(std::sqrt(2.5)));
    CHECK(s.half_width == doctest::Approx(2.7764 * std::sqrt(2.5) / std::sqrt(5.0)));
    CHECK(sb::summarize(std::vector<double>{4.0}).half_width == 0.0);
}

TEST_CASE("DPO on clean labels learns the true ranking, and the run counts trained pairs") {
    sb::world_config c = small_world();
    c.vocab = 4;
    c.train_prompts = 128;
    c.test_prompts = 32;
    c.label_temperature = 0.0;
    c.noise_rate = 0.25;
    sb::train_config t;
    t.policy_hidden = 16;
    t.epochs = 3;
    t.learning_rate = 1e-2;
    const sb::experiment e(c, t, 37);
    const auto before = e.evaluate_split(e.reference(), true);
    CHECK(before.accuracy == doctest::Approx(0.5));  // the policy starts as the reference: m = 0

    all_pairs full;
    std::size_t windows = 0;
    const sb::run_result r = e.run(full, [&](const sb::window_log&) { ++windows; });
    CHECK(windows == 3);
    CHECK(r.steps == 3 * e.steps_per_epoch());
    CHECK(r.trained_pairs == r.steps * t.batch_size);
    // Training on all pairs: the flipped share is the noise rate exactly (512 pairs, 16 batches).
    CHECK(r.flipped_fraction == doctest::Approx(0.25));
    CHECK(r.test.accuracy > 0.7);
    CHECK(r.win_rate > 0.5);
    CHECK(r.reward_gain > 0.0);

    first_half half;
    const sb::run_result h = e.run(half);
    CHECK(h.trained_pairs == h.steps * t.batch_size / 2);
    for (const auto& w : h.windows) CHECK(w.trained_fraction == doctest::Approx(0.5));
    // Same data, same initial policy, same batches: a rerun is identical.
    const sb::run_result again = e.run(full);
    CHECK(again.test.accuracy == r.test.accuracy);
    CHECK(again.reward_gain == r.reward_gain);
}
