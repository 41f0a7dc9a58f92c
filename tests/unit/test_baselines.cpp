// Baseline selectors and the decision they fill: each picks what it says on a hand-made
// batch, weights and gradients are w·∂ℓ, metrics are batch means, a rejected batch changes
// nothing, and every selector models batch_scheduler.
#include <doctest/doctest.h>

#include <sams/core/decision.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/concept.hpp>
#include <sams/scheduler/decision_fill.hpp>
#include <sams/scheduler/scheduler_config.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

namespace {

// Six pairs, reference log-probs 0, so h = a_w - a_l = {2, -1, 0.5, -3, 1, 0}.
// With DPO at β = 0.5 the margins are m = βh = {1, -0.5, 0.25, -1.5, 0.5, 0}; the loss
// -log σ(m) falls as m rises, so the largest losses are at m = -1.5, -0.5, 0 (rows 3, 1, 5).
template <class T>
struct hand_batch {
    std::vector<T> a_w{T(-1), T(-3), T(-2.5), T(-5), T(-2), T(-4)};
    std::vector<T> a_l{T(-3), T(-2), T(-3), T(-2), T(-3), T(-4)};
    std::vector<T> zeros = std::vector<T>(6, T(0));
    std::vector<double> h{2, -1, 0.5, -3, 1, 0};

    sams::pair_batch<T> batch() const {
        sams::pair_batch<T> b;
        b.policy_chosen = a_w;
        b.policy_rejected = a_l;
        b.reference_chosen = zeros;
        b.reference_rejected = zeros;
        return b;
    }
};

sams::loss_config dpo(double beta) {
    sams::loss_config c;
    c.kind = sams::loss_kind::sigmoid;
    c.beta = beta;
    return c;
}

sams::selection_config half(sams::weight_scaling w = sams::weight_scaling::per_selected) {
    sams::selection_config s;
    s.ratio = 0.5;
    s.weights = w;
    return s;
}

double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <class T>
double tol() {
    return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

// Checks the whole decision against the DPO closed forms: ℓ = log(1 + e^{-m}),
// ∂ℓ/∂a_w = -β σ(-m) = -∂ℓ/∂a_l, and w = `weight` on `selected`, 0 elsewhere.
template <class T>
void check_dpo_decision(const sams::decision<T>& d, const hand_batch<T>& hb, double beta,
                        const std::vector<std::size_t>& selected, double weight) {
    REQUIRE(d.selected == selected);
    REQUIRE(d.mask.size() == 6);
    REQUIRE(d.weight.size() == 6);
    REQUIRE(d.loss.size() == 6);
    REQUIRE(d.d_policy_chosen.size() == 6);
    REQUIRE(d.d_policy_rejected.size() == 6);
    CHECK(d.score.empty());
    double batch_loss = 0.0, selected_loss = 0.0, progress = 0.0, margin = 0.0, chosen = 0.0, rejected = 0.0;
    double correct = 0.0;
    for (std::size_t i = 0; i < 6; ++i) {
        CAPTURE(i);
        const bool on = std::find(selected.begin(), selected.end(), i) != selected.end();
        const double w = on ? weight : 0.0;
        const double m = beta * hb.h[i];
        const double loss = std::log1p(std::exp(-m));
        const double slope = -beta * logistic(-m);
        CHECK(d.mask[i] == (on ? 1 : 0));
        CHECK(static_cast<double>(d.weight[i]) == doctest::Approx(w).epsilon(tol<T>()));
        CHECK(static_cast<double>(d.loss[i]) == doctest::Approx(loss).epsilon(tol<T>()));
        CHECK(static_cast<double>(d.d_policy_chosen[i]) == doctest::Approx(w * slope).epsilon(tol<T>()));
        CHECK(static_cast<double>(d.d_policy_rejected[i]) == doctest::Approx(-w * slope).epsilon(tol<T>()));
        batch_loss += loss / 6.0;
        selected_loss += w * loss;
        progress += logistic(-m) / 6.0;
        margin += m / 6.0;
        correct += m > 0 ? 1.0 / 6.0 : 0.0;
        chosen += beta * static_cast<double>(hb.a_w[i]) / 6.0;
        rejected += beta * static_cast<double>(hb.a_l[i]) / 6.0;
    }
    const auto& mt = d.metrics;
    CHECK(mt.batch_loss == doctest::Approx(batch_loss).epsilon(tol<T>()));
    CHECK(mt.selected_loss == doctest::Approx(selected_loss).epsilon(tol<T>()));
    CHECK(mt.progress == doctest::Approx(progress).epsilon(tol<T>()));
    CHECK(mt.mean_margin == doctest::Approx(margin).epsilon(tol<T>()));
    CHECK(mt.reward_accuracy == doctest::Approx(correct));
    CHECK(mt.chosen_reward == doctest::Approx(chosen).epsilon(tol<T>()));
    CHECK(mt.rejected_reward == doctest::Approx(rejected).epsilon(tol<T>()));
}

}  // namespace

TEST_CASE_TEMPLATE("full_batch: every pair, weight 1/B, step counter", T, float, double) {
    const hand_batch<T> hb;
    sams::full_batch<T> s(dpo(0.5));
    for (std::size_t step = 0; step < 3; ++step) {
        const auto d = s.step(hb.batch());
        check_dpo_decision(d, hb, 0.5, {0, 1, 2, 3, 4, 5}, 1.0 / 6.0);
        CHECK(d.metrics.step == step);
    }
    CHECK(s.steps() == 3);
    // accuracy: m > 0 on rows 0, 2, 4 only (m = 0 on row 5 is not a win)
    CHECK(s.step(hb.batch()).metrics.reward_accuracy == doctest::Approx(0.5));
}

TEST_CASE_TEMPLATE("loss_selector: largest and smallest K = round(0.5 B) by loss", T, float, double) {
    const hand_batch<T> hb;
    sams::loss_selector<T> hard(dpo(0.5), half());
    CHECK(hard.which() == sams::extreme::largest);
    check_dpo_decision(hard.step(hb.batch()), hb, 0.5, {1, 3, 5}, 1.0 / 3.0);

    sams::loss_selector<T> easy(dpo(0.5), half(), sams::extreme::smallest);
    check_dpo_decision(easy.step(hb.batch()), hb, 0.5, {0, 2, 4}, 1.0 / 3.0);

    // The public code's 1/B scaling.
    sams::loss_selector<T> per_batch(dpo(0.5), half(sams::weight_scaling::per_batch));
    check_dpo_decision(per_batch.step(hb.batch()), hb, 0.5, {1, 3, 5}, 1.0 / 6.0);

    sams::selection_config one;
    one.ratio = 0.2;  // round(1.2) = 1
    sams::loss_selector<T> single(dpo(0.5), one);
    check_dpo_decision(single.step(hb.batch()), hb, 0.5, {3}, 1.0);
}

TEST_CASE_TEMPLATE("margin_selector: smallest (default) and largest K by margin", T, float, double) {
    const hand_batch<T> hb;
    sams::margin_selector<T> worst(dpo(0.5), half());
    CHECK(worst.which() == sams::extreme::smallest);
    check_dpo_decision(worst.step(hb.batch()), hb, 0.5, {1, 3, 5}, 1.0 / 3.0);
    sams::margin_selector<T> best(dpo(0.5), half(), sams::extreme::largest);
    check_dpo_decision(best.step(hb.batch()), hb, 0.5, {0, 2, 4}, 1.0 / 3.0);
}

TEST_CASE("loss_selector: a loss that is not monotone in the margin, with ties") {
    // IPO at β = 1: ℓ = (h - 0.5)² = {2.25, 2.25, 0, 12.25, 0.25, 0.25} (all exact in binary).
    // Largest 3: row 3, then the tie 2.25 at rows 0 and 1 -> {0, 1, 3}.
    // Smallest 3: row 2, then the tie 0.25 at rows 4 and 5 -> {2, 4, 5}.
    // The margin selector picks differently: smallest margins h = -3, -1, 0 -> {1, 3, 5}.
    const hand_batch<double> hb;
    sams::loss_config ipo;
    ipo.kind = sams::loss_kind::ipo;
    ipo.beta = 1.0;
    sams::loss_selector<double> large(ipo, half());
    sams::loss_selector<double> small(ipo, half(), sams::extreme::smallest);
    sams::margin_selector<double> margin(ipo, half());
    const auto d = large.step(hb.batch());
    CHECK(d.selected == std::vector<std::size_t>{0, 1, 3});
    // ∂ℓ/∂a_w = 2(h - 0.5), times w = 1/3 on the selected rows.
    CHECK(d.d_policy_chosen[3] == doctest::Approx(2.0 * (-3.5) / 3.0));
    CHECK(d.d_policy_rejected[0] == doctest::Approx(-2.0 * 1.5 / 3.0));
    CHECK(d.d_policy_chosen[2] == 0.0);
    CHECK(d.metrics.selected_loss == doctest::Approx((2.25 + 2.25 + 12.25) / 3.0));
    CHECK(small.step(hb.batch()).selected == std::vector<std::size_t>{2, 4, 5});
    CHECK(margin.step(hb.batch()).selected == std::vector<std::size_t>{1, 3, 5});
}

TEST_CASE_TEMPLATE("uniform_selector: K distinct pairs, reproducible per seed", T, float, double) {
    const hand_batch<T> hb;
    sams::uniform_selector<T> a(dpo(0.5), half(), 17);
    sams::uniform_selector<T> b(dpo(0.5), half(), 17);
    std::vector<double> inclusion(6, 0.0);
    sams::decision<T> da, db;
    const int steps = 3000;
    int mismatches = 0;
    for (int t = 0; t < steps; ++t) {
        a.step(hb.batch(), da);
        b.step(hb.batch(), db);
        if (da.selected != db.selected || da.selected.size() != 3) ++mismatches;
        for (const auto i : da.selected) inclusion[i] += 1;
    }
    REQUIRE(mismatches == 0);
    // Inclusion probability K/B = 1/2; binomial sd = sqrt(3000/4) ≈ 27.4.
    for (const double c : inclusion) CHECK(std::abs(c - steps / 2.0) < 5.0 * std::sqrt(steps / 4.0));
    check_dpo_decision(da, hb, 0.5, da.selected, 1.0 / 3.0);
    CHECK(da.metrics.step == static_cast<std::size_t>(steps - 1));
}

TEST_CASE("uniform_selector: a rejected batch leaves its later choices unchanged") {
    const hand_batch<double> hb;
    sams::uniform_selector<double> clean(dpo(0.5), half(), 5);
    sams::uniform_selector<double> hit(dpo(0.5), half(), 5);
    (void)clean.step(hb.batch());
    auto first = hit.step(hb.batch());

    std::vector<double> nan_chosen = hb.a_w;
    nan_chosen[2] = std::numeric_limits<double>::quiet_NaN();
    auto bad = hb.batch();
    bad.policy_chosen = nan_chosen;
    const auto kept = first;
    CHECK_THROWS_WITH_AS(hit.step(bad, first), doctest::Contains("policy_chosen"), sams::invalid_argument);
    CHECK(first.selected == kept.selected);  // the output decision is untouched
    CHECK(first.weight == kept.weight);

    auto no_reference = hb.batch();
    no_reference.reference_chosen = {};
    no_reference.reference_rejected = {};
    CHECK_THROWS_AS((void)hit.step(no_reference), sams::invalid_argument);
    CHECK(hit.steps() == 1);

    for (int t = 0; t < 20; ++t) {
        const auto x = clean.step(hb.batch());
        const auto y = hit.step(hb.batch());
        CHECK(x.selected == y.selected);
        CHECK(x.metrics.step == y.metrics.step);
    }
}

TEST_CASE("baselines: step(batch, d) reuses the decision's buffers") {
    const hand_batch<float> hb;
    sams::loss_selector<float> s(dpo(0.5), half());
    sams::decision<float> d;
    s.step(hb.batch(), d);
    const auto* weight = d.weight.data();
    const auto* selected = d.selected.data();
    const auto* grad = d.d_policy_chosen.data();
    for (int t = 0; t < 5; ++t) s.step(hb.batch(), d);
    CHECK(d.weight.data() == weight);
    CHECK(d.selected.data() == selected);
    CHECK(d.d_policy_chosen.data() == grad);
}

TEST_CASE("baselines: bad configuration is named at construction") {
    sams::selection_config zero;
    zero.ratio = 0.0;
    CHECK_THROWS_WITH_AS(sams::uniform_selector<float>(dpo(0.5), zero, 1), doctest::Contains("ratio"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS(sams::full_batch<float>(dpo(-1.0)), doctest::Contains("beta"), sams::invalid_argument);
}

TEST_CASE("fill_decision: zero selected rows, and bad indices change nothing") {
    const hand_batch<double> hb;
    const auto stats = sams::evaluate_loss(dpo(0.5), hb.batch());
    sams::decision<double> d;
    const std::vector<std::size_t> none;
    sams::detail::fill_decision(stats, std::span<const std::size_t>(none), sams::weight_scaling::per_selected, d);
    CHECK(d.selected.empty());
    CHECK(d.weight == std::vector<double>(6, 0.0));
    CHECK(d.d_policy_chosen == std::vector<double>(6, 0.0));
    CHECK(d.metrics.selected_loss == 0.0);

    const std::vector<std::size_t> unsorted{3, 1};
    const std::vector<std::size_t> outside{1, 6};
    CHECK_THROWS_WITH_AS(sams::detail::fill_decision(stats, std::span<const std::size_t>(unsorted),
                                                     sams::weight_scaling::per_selected, d),
                         doctest::Contains("ascending"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(sams::detail::fill_decision(stats, std::span<const std::size_t>(outside),
                                                     sams::weight_scaling::per_selected, d),
                         doctest::Contains("out of range"), sams::invalid_argument);
    CHECK(d.selected.empty());
}

namespace {

// The docs/concepts.md skeleton: a scheduler that trains on the first K pairs.
template <class T>
class first_k {
public:
    explicit first_k(std::size_t k) : k_(k) {}
    sams::decision<T> step(const sams::pair_batch<T>& batch) {
        sams::decision<T> d;
        step(batch, d);
        return d;
    }
    void step(const sams::pair_batch<T>& batch, sams::decision<T>& d) {
        sams::evaluate_loss(sams::loss_config{}, batch, stats_);  // validates first
        selected_.clear();
        for (std::size_t i = 0; i < std::min(k_, batch.size()); ++i) selected_.push_back(i);
        sams::fill_decision(stats_, std::span<const std::size_t>(selected_),
                            sams::weight_scaling::per_selected, d);
    }

private:
    std::size_t k_;
    sams::pair_stats<T> stats_;
    std::vector<std::size_t> selected_;
};

struct only_returning {
    sams::decision<float> step(const sams::pair_batch<float>&) { return {}; }
};

struct wrong_result {
    int step(const sams::pair_batch<float>&) { return 0; }
    void step(const sams::pair_batch<float>&, sams::decision<float>&) {}
};

}  // namespace

TEST_CASE("batch_scheduler: models and non-models") {
    static_assert(sams::batch_scheduler<sams::full_batch<float>, float>);
    static_assert(sams::batch_scheduler<sams::full_batch<double>, double>);
    static_assert(sams::batch_scheduler<sams::uniform_selector<float>, float>);
    static_assert(sams::batch_scheduler<sams::loss_selector<double>, double>);
    static_assert(sams::batch_scheduler<sams::margin_selector<float>, float>);
    static_assert(sams::batch_scheduler<first_k<float>, float>);
    static_assert(!sams::batch_scheduler<sams::full_batch<float>, double>);
    static_assert(!sams::batch_scheduler<only_returning, float>);
    static_assert(!sams::batch_scheduler<wrong_result, float>);
    static_assert(!sams::batch_scheduler<int, float>);

    const hand_batch<float> hb;
    first_k<float> s(2);
    CHECK(s.step(hb.batch()).selected == std::vector<std::size_t>{0, 1});
}

TEST_CASE_TEMPLATE("baselines: built from a scheduler_config like sams_scheduler, K exposed", T, float,
                   double) {
    const hand_batch<T> hb;
    sams::scheduler_config cfg;
    cfg.loss = dpo(0.5);
    cfg.select = half();
    // Largest losses: rows 3, 1, 5 (see hand_batch); K = round(0.5 · 6) = 3, weight 1/3.
    check_dpo_decision(sams::loss_selector<T>(cfg).step(hb.batch()), hb, 0.5, {1, 3, 5}, 1.0 / 3.0);
    // Smallest margins are the same rows.
    check_dpo_decision(sams::margin_selector<T>(cfg, 0).step(hb.batch()), hb, 0.5, {1, 3, 5}, 1.0 / 3.0);
    check_dpo_decision(sams::full_batch<T>(cfg).step(hb.batch()), hb, 0.5, {0, 1, 2, 3, 4, 5}, 1.0 / 6.0);
    sams::uniform_selector<T> a(cfg, 17), b(cfg.loss, cfg.select, 17);
    CHECK(a.step(hb.batch()).selected == b.step(hb.batch()).selected);
    // The selection configuration defaults for every baseline (ratio 0.5).
    CHECK(sams::uniform_selector<T>(dpo(0.5)).selection_count(6) == 3);
    CHECK(sams::loss_selector<T>(dpo(0.5)).selection_count(7) == 4);  // round(3.5) = 4
    CHECK(sams::full_batch<T>(dpo(0.5)).selection_count(7) == 7);
    CHECK_THROWS_AS((void)sams::loss_selector<T>(cfg).selection_count(0), sams::invalid_argument);
}

TEST_CASE("fill_decision: a host-side selector builds a complete decision") {
    // What docs/concepts.md's custom-scheduler skeleton does: evaluate the loss, choose rows
    // (here rows 0 and 4, the two largest margins), fill the decision.
    const hand_batch<double> hb;
    sams::pair_stats<double> stats;
    sams::evaluate_loss(dpo(0.5), hb.batch(), stats);
    const std::vector<std::size_t> chosen{0, 4};
    sams::decision<double> d;
    sams::fill_decision(stats, std::span<const std::size_t>(chosen), sams::weight_scaling::per_selected, d);
    check_dpo_decision(d, hb, 0.5, {0, 4}, 0.5);
}
