// Reward: the progress metric, SamS's lagged reward in every mode against hand arithmetic,
// validation with the strong guarantee, checkpoint state, and the reward_function concept.
#include <doctest/doctest.h>

#include <sams/reward/progress.hpp>
#include <sams/reward/reward_function.hpp>
#include <sams/reward/sams_reward.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

namespace {

// Deliberately the textbook form, not the library's branchy one: an independent reference
// for the moderate arguments used below.
double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The hand-made previous batch (B = 4) shared by the reward tests.
//   margin m      = { 1, -1,   3,   0}  min -1, max 3, range 4   -> m~ = {0.5, 0, 1, 0.25}
//   a_w           = {-10, -20, -30, -40} min -40, max -10, range 30 -> p~ = {1, 2/3, 1/3, 0}
//   n_w           = {10, 10, 20, 40}    a_w/n_w = {-1, -2, -1.5, -1} -> p~ = {1, 0, 0.5, 1}
//   chosen reward = {0.2, -0.1, 0.5, 0}  min -0.1, max 0.5, range 0.6 -> r~ = {0.5, 0, 1, 1/6}
//   rewarded rows = {0, 2, 3}
// Sample term s = m~/2 + (1 - p~)/2 on rows 0, 2, 3:
//   plain p:        s = {0.25 + 0, 0.5 + 1/3, 0.125 + 0.5}  = {0.25, 5/6, 0.625}
//   per-token p:    s = {0.25 + 0, 0.5 + 0.25, 0.125 + 0}   = {0.25, 0.75, 0.125}
//   plain p + r~:   s = {0.75, 5/6 + 1, 0.625 + 1/6}        = {0.75, 11/6, 19/24}
template <class T>
struct hand_batch {
    std::vector<T> margin{1, -1, 3, 0};
    std::vector<T> chosen{-10, -20, -30, -40};
    std::vector<T> length{10, 10, 20, 40};
    std::vector<T> reward{T(0.2), T(-0.1), T(0.5), T(0)};
    std::vector<std::size_t> selected{0, 2, 3};

    sams::reward_inputs<T> inputs(double previous, double current) const {
        sams::reward_inputs<T> in;
        in.margin = margin;
        in.policy_chosen = chosen;
        in.chosen_length = length;
        in.chosen_reward = reward;
        in.selected = selected;
        in.previous_progress = previous;
        in.current_progress = current;
        return in;
    }
};

template <class R, class T>
std::vector<T> run(R& r, const sams::reward_inputs<T>& in) {
    std::vector<T> out(in.selected.size());
    r.targets(in, std::span<T>(out));
    return out;
}

template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 2e-6 : 1e-12;
}

template <class T>
void check_all(const std::vector<T>& got, const std::vector<double>& expected) {
    REQUIRE(got.size() == expected.size());
    for (std::size_t j = 0; j < got.size(); ++j)
        CHECK(static_cast<double>(got[j]) == doctest::Approx(expected[j]).epsilon(tolerance<T>()));
}

}  // namespace

TEST_CASE_TEMPLATE("progress_metric: mean mis-ranking probability", T, float, double) {
    // σ(-0) = 0.5, σ(-2) = 0.1192029220221175, σ(1) = 0.7310585786300049.
    const std::vector<T> m{0, 2, -1};
    CHECK(sams::progress_metric(std::span<const T>(m)) ==
          doctest::Approx((0.5 + 0.1192029220221175 + 0.7310585786300049) / 3.0).epsilon(tolerance<T>()));
}

TEST_CASE_TEMPLATE("progress_metric: stable for margins of magnitude 1e4", T, float, double) {
    // σ(-1e4) underflows to 0 and σ(1e4) is 1; neither may become NaN.
    const std::vector<T> both{T(1e4), T(-1e4)};
    const std::vector<T> good{T(1e4), T(1e4)};
    const std::vector<T> bad{T(-1e4)};
    CHECK(sams::progress_metric(std::span<const T>(both)) == 0.5);
    CHECK(sams::progress_metric(std::span<const T>(good)) == 0.0);
    CHECK(sams::progress_metric(std::span<const T>(bad)) == 1.0);
}

TEST_CASE("progress_metric: rejects empty and non-finite margins") {
    const std::vector<double> empty;
    const std::vector<double> nan{0.0, std::numeric_limits<double>::quiet_NaN()};
    CHECK_THROWS_AS((void)sams::progress_metric(std::span<const double>(empty)), sams::invalid_argument);
    CHECK_THROWS_WITH_AS((void)sams::progress_metric(std::span<const double>(nan)), doctest::Contains("margin"),
                         sams::invalid_argument);
}

TEST_CASE("sams_reward: batch_delta is the relative decrease of L") {
    CHECK(sams::sams_reward::batch_delta(0.4, 0.3) == doctest::Approx(0.25));         // 0.1 / 0.4
    CHECK(sams::sams_reward::batch_delta(0.3, 0.45) == doctest::Approx(-1.0 / 3.0));  // -0.15 / 0.45
    CHECK(sams::sams_reward::batch_delta(0.0, 0.0) == 0.0);                           // 0 / 1e-12
}

TEST_CASE_TEMPLATE("sams_reward: add mode with smoothing, by hand", T, float, double) {
    const hand_batch<T> b;
    sams::sams_reward r{};  // add, a = 50, b = 0.5, α = 0.5, smoothing λ = 0.5
    // Call 1: Δ = (0.4 - 0.3)/0.4 = 0.25; no history, so Δ' = Δ.
    //   y = 0.5 σ(50·0.25 + 0.5) + 0.5 σ(s) = 0.5 σ(13) + 0.5 σ(s), σ(13) = 0.999997739675702
    //   s = 0.25   -> 0.5·0.999997739675702 + 0.5·0.5621765008857981 = 0.7810871202807501
    //   s = 5/6    -> 0.8485285118205548,   s = 0.625 -> 0.8256763021708782
    check_all(run(r, b.inputs(0.4, 0.3)), {0.7810871202807501, 0.8485285118205548, 0.8256763021708782});
    CHECK(r.last_delta() == doctest::Approx(0.25));
    CHECK(r.last_smoothed_delta() == doctest::Approx(0.25));
    CHECK(r.running_mean() == doctest::Approx(0.25));
    CHECK(r.observations() == 1);

    // Call 2: Δ = (0.3 - 0.45)/0.45 = -1/3; A = 0.25 (before the update),
    //   Δ' = 0.5·0.25 + 0.5·(-1/3) = -1/24; then A = (0.25 - 1/3)/2 = -1/24.
    //   y = 0.5 σ(50·(-1/24) + 0.5) + 0.5 σ(s) = 0.5 σ(-19/12) + 0.5 σ(s)
    const double batch_term = logistic(-19.0 / 12.0);
    check_all(run(r, b.inputs(0.3, 0.45)), {0.5 * batch_term + 0.5 * logistic(0.25),
                                            0.5 * batch_term + 0.5 * logistic(5.0 / 6.0),
                                            0.5 * batch_term + 0.5 * logistic(0.625)});
    CHECK(r.last_delta() == doctest::Approx(-1.0 / 3.0));
    CHECK(r.last_smoothed_delta() == doctest::Approx(-1.0 / 24.0));
    CHECK(r.running_mean() == doctest::Approx(-1.0 / 24.0));

    // Call 3: L unchanged, Δ = 0; Δ' = 0.5·(-1/24) + 0 = -1/48; A = (0.25 - 1/3 + 0)/3 = -1/36.
    const double third = logistic(50.0 * (-1.0 / 48.0) + 0.5);
    check_all(run(r, b.inputs(0.2, 0.2)), {0.5 * third + 0.5 * logistic(0.25), 0.5 * third + 0.5 * logistic(5.0 / 6.0),
                                           0.5 * third + 0.5 * logistic(0.625)});
    CHECK(r.running_mean() == doctest::Approx(-1.0 / 36.0));
    CHECK(r.observations() == 3);
}

TEST_CASE_TEMPLATE("sams_reward: add mode without smoothing uses the raw delta", T, float, double) {
    const hand_batch<T> b;
    sams::reward_config c;
    c.smoothing = false;
    sams::sams_reward r(c);
    (void)run(r, b.inputs(0.4, 0.3));
    // Δ' = Δ = -1/3: y = 0.5 σ(-50/3 + 0.5) + 0.5 σ(s)
    check_all(run(r, b.inputs(0.3, 0.45)), {0.2810882980723789, 0.34852968961218356, 0.32567747996250695});
    CHECK(r.last_smoothed_delta() == doctest::Approx(-1.0 / 3.0));
    CHECK(r.running_mean() == doctest::Approx(-1.0 / 24.0));  // still tracked
}

TEST_CASE_TEMPLATE("sams_reward: weight mode, by hand", T, float, double) {
    const hand_batch<T> b;
    sams::reward_config c;
    c.mode = sams::reward_mode::weight;
    sams::sams_reward r(c);
    // y = 10 σ(Δ') s with Δ' = 0.25, σ(0.25) = 0.5621765008857981:
    //   s = 0.25 -> 1.4054412522144952, s = 5/6 -> 4.684804174048318, s = 0.625 -> 3.513603130536238
    check_all(run(r, b.inputs(0.4, 0.3)), {1.4054412522144952, 4.684804174048318, 3.513603130536238});
    // Second call smoothed: Δ' = -1/24.
    const double scale = 10.0 * logistic(-1.0 / 24.0);
    check_all(run(r, b.inputs(0.3, 0.45)), {scale * 0.25, scale * 5.0 / 6.0, scale * 0.625});
}

TEST_CASE_TEMPLATE("sams_reward: reference_compat applies the sigmoid twice to s in add mode", T, float, double) {
    const hand_batch<T> b;
    sams::reward_config c;
    c.reference_compat = true;
    sams::sams_reward r(c);
    // y = 0.5 σ(13) + 0.5 σ(σ(s)); e.g. s = 0.25: σ(0.25) = 0.5621765, σ(0.5621765) = 0.6369537
    check_all(run(r, b.inputs(0.4, 0.3)), {0.8184768652734791, 0.833766597540714, 0.8286567265116327});

    c.mode = sams::reward_mode::weight;  // no effect on the weight mode
    sams::sams_reward w(c);
    check_all(run(w, b.inputs(0.4, 0.3)), {1.4054412522144952, 4.684804174048318, 3.513603130536238});
}

TEST_CASE_TEMPLATE("sams_reward: length-normalised chosen log-prob and chosen-reward term", T, float, double) {
    const hand_batch<T> b;
    const double batch_term = logistic(13.0);
    {
        sams::reward_config c;
        c.length_normalized_chosen = true;
        sams::sams_reward r(c);
        // s = {0.25, 0.75, 0.125} (per-token p~ = {1, ·, 0.5, 1})
        check_all(run(r, b.inputs(0.4, 0.3)), {0.5 * batch_term + 0.5 * logistic(0.25),
                                               0.5 * batch_term + 0.5 * logistic(0.75),
                                               0.5 * batch_term + 0.5 * logistic(0.125)});
    }
    {
        sams::reward_config c;
        c.chosen_reward_term = true;
        sams::sams_reward r(c);
        // s = {0.75, 11/6, 19/24}
        check_all(run(r, b.inputs(0.4, 0.3)), {0.5 * batch_term + 0.5 * logistic(0.75),
                                               0.5 * batch_term + 0.5 * logistic(11.0 / 6.0),
                                               0.5 * batch_term + 0.5 * logistic(19.0 / 24.0)});
    }
}

TEST_CASE_TEMPLATE("sams_reward: a constant batch normalises to 0.5", T, float, double) {
    const std::vector<T> margin(5, T(0.7));
    const std::vector<T> chosen(5, T(-12));
    const std::vector<std::size_t> selected{1, 4};
    sams::reward_inputs<T> in;
    in.margin = margin;
    in.policy_chosen = chosen;
    in.selected = selected;
    in.previous_progress = 0.5;
    in.current_progress = 0.5;  // Δ = 0

    sams::reward_config c;
    c.mode = sams::reward_mode::weight;
    sams::sams_reward w(c);
    // m~ = p~ = 0.5, s = 0.25 + 0.25 = 0.5; y = 10 σ(0) 0.5 = 2.5
    check_all(run(w, in), {2.5, 2.5});

    sams::sams_reward a{};
    // y = 0.5 σ(0.5) + 0.5 σ(0.5) = σ(0.5)
    check_all(run(a, in), {logistic(0.5), logistic(0.5)});
}

TEST_CASE("sams_reward: invalid inputs throw and change nothing") {
    const hand_batch<double> b;
    sams::sams_reward r{};
    std::vector<double> out(3);

    auto bad_index = b.inputs(0.4, 0.3);
    const std::vector<std::size_t> out_of_range{0, 4, 1};
    bad_index.selected = out_of_range;
    CHECK_THROWS_WITH_AS(r.targets(bad_index, std::span<double>(out)), doctest::Contains("selected"),
                         sams::invalid_argument);

    std::vector<double> short_out(2);
    CHECK_THROWS_WITH_AS(r.targets(b.inputs(0.4, 0.3), std::span<double>(short_out)), doctest::Contains("out"),
                         sams::invalid_argument);

    auto nan_margin = b.inputs(0.4, 0.3);
    const std::vector<double> margin{1, std::nan(""), 3, 0};
    nan_margin.margin = margin;
    CHECK_THROWS_WITH_AS(r.targets(nan_margin, std::span<double>(out)), doctest::Contains("margin"),
                         sams::invalid_argument);

    auto short_chosen = b.inputs(0.4, 0.3);
    const std::vector<double> chosen{1, 2};
    short_chosen.policy_chosen = chosen;
    CHECK_THROWS_WITH_AS(r.targets(short_chosen, std::span<double>(out)), doctest::Contains("policy_chosen"),
                         sams::invalid_argument);

    CHECK_THROWS_WITH_AS(r.targets(b.inputs(-0.1, 0.3), std::span<double>(out)),
                         doctest::Contains("previous_progress"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(r.targets(b.inputs(0.4, std::numeric_limits<double>::infinity()), std::span<double>(out)),
                         doctest::Contains("current_progress"), sams::invalid_argument);

    sams::reward_config c;
    c.length_normalized_chosen = true;
    sams::sams_reward per_token(c);
    auto no_length = b.inputs(0.4, 0.3);
    no_length.chosen_length = {};
    CHECK_THROWS_WITH_AS(per_token.targets(no_length, std::span<double>(out)), doctest::Contains("chosen_length"),
                         sams::invalid_argument);
    auto zero_length = b.inputs(0.4, 0.3);
    const std::vector<double> lengths{10, 0, 20, 40};
    zero_length.chosen_length = lengths;
    CHECK_THROWS_AS(per_token.targets(zero_length, std::span<double>(out)), sams::invalid_argument);

    // Nothing was observed: the next valid call is still the unsmoothed first one.
    CHECK(r.observations() == 0);
    CHECK(r.running_mean() == 0.0);
    r.targets(b.inputs(0.4, 0.3), std::span<double>(out));
    CHECK(r.last_smoothed_delta() == doctest::Approx(0.25));
}

TEST_CASE("sams_reward: bad configuration is named") {
    sams::reward_config c;
    c.alpha = 1.5;
    CHECK_THROWS_WITH_AS(sams::sams_reward{c}, doctest::Contains("alpha"), sams::invalid_argument);
    c = {};
    c.smoothing_lambda = 1.0;
    CHECK_THROWS_WITH_AS(sams::sams_reward{c}, doctest::Contains("smoothing_lambda"), sams::invalid_argument);
    c = {};
    c.a = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(sams::sams_reward{c}, doctest::Contains("reward_config.a"), sams::invalid_argument);
}

TEST_CASE("sams_reward: state round-trip continues identically") {
    const hand_batch<double> b;
    sams::sams_reward first{};
    (void)run(first, b.inputs(0.4, 0.3));
    (void)run(first, b.inputs(0.3, 0.45));

    sams::sams_reward resumed{};
    resumed.set_state(first.state());
    CHECK(resumed.running_mean() == first.running_mean());
    CHECK(resumed.observations() == first.observations());
    CHECK(resumed.last_delta() == first.last_delta());
    const auto a = run(first, b.inputs(0.45, 0.35));
    const auto c = run(resumed, b.inputs(0.45, 0.35));
    CHECK(a == c);

    auto s = first.state();
    s.running_mean = std::nan("");
    CHECK_THROWS_AS(resumed.set_state(s), sams::invalid_argument);
}

namespace {

// The docs/concepts.md skeleton: a reward that pays the relative progress to every row.
struct progress_reward {
    struct state_type {
        double last = 0.0;
    };
    template <class T>
    void targets(const sams::reward_inputs<T>& in, std::span<T> out) {
        const double d = sams::sams_reward::batch_delta(in.previous_progress, in.current_progress);
        for (auto& y : out) y = static_cast<T>(d);
        state_.last = d;
    }
    [[nodiscard]] state_type state() const { return state_; }
    void set_state(const state_type& s) { state_ = s; }

private:
    state_type state_{};
};

struct no_state {
    template <class T>
    void targets(const sams::reward_inputs<T>&, std::span<T>) {}
};

struct wrong_targets {
    struct state_type {};
    void targets(int) {}
    [[nodiscard]] state_type state() const { return {}; }
    void set_state(const state_type&) {}
};

}  // namespace

TEST_CASE("reward_function: models and non-models") {
    static_assert(sams::reward_function<sams::sams_reward, float>);
    static_assert(sams::reward_function<sams::sams_reward, double>);
    static_assert(sams::reward_function<progress_reward, float>);
    static_assert(!sams::reward_function<no_state, float>);
    static_assert(!sams::reward_function<wrong_targets, float>);
    static_assert(!sams::reward_function<int, float>);

    const hand_batch<float> b;
    progress_reward r;
    const auto y = run(r, b.inputs(0.4, 0.3));
    CHECK(y == std::vector<float>(3, 0.25f));
}
