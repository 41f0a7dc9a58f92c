// Selection rules: K, top-K ties, Gumbel-top-K against the exact sequential
// without-replacement distribution, uniform subsets, and the entropy/spread diagnostics.
#include <doctest/doctest.h>

#include <sams/core/rng.hpp>
#include <sams/scheduler/selection.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <numeric>
#include <span>
#include <vector>

namespace {

// Chi-square statistic of observed counts against expected probabilities.
double chi_square(const std::vector<double>& observed, const std::vector<double>& probability, double n) {
    double chi = 0.0;
    for (std::size_t i = 0; i < observed.size(); ++i) {
        const double e = n * probability[i];
        chi += (observed[i] - e) * (observed[i] - e) / e;
    }
    return chi;
}

// Upper 0.001 quantiles of the chi-square distribution (standard tables). A correct sampler
// fails one of these checks with probability 0.001, and the seeds are fixed.
constexpr double chi2_crit_001_df5 = 20.515;
constexpr double chi2_crit_001_df9 = 27.877;
constexpr double chi2_crit_001_df3 = 16.266;

// Reference top-k: a stable sort by descending score keeps equal scores in index order.
template <class T>
std::vector<std::size_t> reference_top_k(const std::vector<T>& s, std::size_t k, bool largest) {
    std::vector<std::size_t> idx(s.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
        return largest ? s[a] > s[b] : s[a] < s[b];
    });
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    return idx;
}

}  // namespace

TEST_CASE("selection_size: clamp(round(ratio*B), 1, B), half away from zero") {
    CHECK(sams::selection_size(0.5, 4) == 2);
    CHECK(sams::selection_size(0.5, 5) == 3);    // 2.5 -> 3
    CHECK(sams::selection_size(0.25, 10) == 3);  // 2.5 -> 3
    CHECK(sams::selection_size(0.3, 10) == 3);
    CHECK(sams::selection_size(0.01, 8) == 1);   // 0.08 -> 0 -> clamped to 1
    CHECK(sams::selection_size(1.0, 7) == 7);
    CHECK(sams::selection_size(0.5, 1) == 1);
    CHECK(sams::selection_size(0.5, 512) == 256);
    CHECK_THROWS_WITH_AS((void)sams::selection_size(0.0, 8), doctest::Contains("ratio"), sams::invalid_argument);
    CHECK_THROWS_AS((void)sams::selection_size(1.5, 8), sams::invalid_argument);
    CHECK_THROWS_AS((void)sams::selection_size(std::nan(""), 8), sams::invalid_argument);
    CHECK_THROWS_WITH_AS((void)sams::selection_size(0.5, 0), doctest::Contains("batch_size"),
                         sams::invalid_argument);
}

TEST_CASE_TEMPLATE("select_top_k: highest scores, ties to the lower index, ascending", T, float, double) {
    const std::vector<T> s{1, 5, 3, 5, 2, 5};
    std::vector<std::size_t> out{42, 42, 42, 42, 42, 42, 42, 42};  // stale content must go
    sams::select_top_k(std::span<const T>(s), 2, out);
    CHECK(out == std::vector<std::size_t>{1, 3});
    sams::select_top_k(std::span<const T>(s), 4, out);
    CHECK(out == std::vector<std::size_t>{1, 2, 3, 5});
    sams::select_top_k(std::span<const T>(s), 0, out);
    CHECK(out.empty());
    sams::select_top_k(std::span<const T>(s), 6, out);
    CHECK(out == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
    sams::select_bottom_k(std::span<const T>(s), 2, out);
    CHECK(out == std::vector<std::size_t>{0, 4});
    sams::select_bottom_k(std::span<const T>(s), 5, out);
    CHECK(out == std::vector<std::size_t>{0, 1, 2, 3, 4});  // of the three 5s, index 5 is dropped

    // Against the stable-sort reference on random scores with many ties.
    sams::rng gen(11);
    for (int trial = 0; trial < 200; ++trial) {
        const std::size_t n = 1 + static_cast<std::size_t>(gen.below(40));
        std::vector<T> v(n);
        for (auto& x : v) x = static_cast<T>(gen.below(6));
        const std::size_t k = static_cast<std::size_t>(gen.below(n + 1));
        sams::select_top_k(std::span<const T>(v), k, out);
        CHECK(out == reference_top_k(v, k, true));
        sams::select_bottom_k(std::span<const T>(v), k, out);
        CHECK(out == reference_top_k(v, k, false));
    }
}

TEST_CASE("select_top_k: rejects k > B and non-finite scores") {
    const std::vector<double> s{1, 2};
    const std::vector<double> nan{1, std::numeric_limits<double>::quiet_NaN()};
    std::vector<std::size_t> out;
    CHECK_THROWS_WITH_AS(sams::select_top_k(std::span<const double>(s), 3, out), doctest::Contains("k = 3"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS(sams::select_top_k(std::span<const double>(nan), 1, out), doctest::Contains("NaN"),
                         sams::invalid_argument);
}

namespace {

// Exact probability of each unordered pair {i, j} under two sequential draws without
// replacement with P ∝ exp(u/τ): p_i p_j / (1 - p_i) + p_j p_i / (1 - p_j).
std::map<std::pair<std::size_t, std::size_t>, double> pair_probabilities(const std::vector<double>& u,
                                                                         double tau) {
    std::vector<double> p(u.size());
    double z = 0.0;
    for (std::size_t i = 0; i < u.size(); ++i) z += p[i] = std::exp(u[i] / tau);
    for (auto& x : p) x /= z;
    std::map<std::pair<std::size_t, std::size_t>, double> out;
    for (std::size_t i = 0; i < u.size(); ++i)
        for (std::size_t j = i + 1; j < u.size(); ++j)
            out[{i, j}] = p[i] * p[j] / (1.0 - p[i]) + p[j] * p[i] / (1.0 - p[j]);
    return out;
}

}  // namespace

TEST_CASE("select_gumbel_top_k: K = 2 of B = 4 matches sequential sampling without replacement") {
    const std::vector<double> u{0.0, 0.5, 1.0, 2.0};
    const double n = 200000;
    // Three temperatures: the frequencies must follow exp(u/τ), so τ matters.
    for (const double tau : {0.5, 1.0, 4.0}) {
        CAPTURE(tau);
        const auto exact = pair_probabilities(u, tau);
        std::map<std::pair<std::size_t, std::size_t>, double> count;
        sams::rng gen(2024);
        std::vector<std::size_t> out;
        std::vector<double> keys;
        int malformed = 0;
        for (int t = 0; t < static_cast<int>(n); ++t) {
            sams::select_gumbel_top_k(std::span<const double>(u), 2, tau, gen, out, keys);
            if (out.size() != 2 || out[0] >= out[1] || out[1] >= 4) {
                ++malformed;
                continue;
            }
            count[{out[0], out[1]}] += 1;
        }
        REQUIRE(malformed == 0);
        std::vector<double> observed, probability;
        double total = 0.0;
        for (const auto& [subset, p] : exact) {
            observed.push_back(count[subset]);
            probability.push_back(p);
            total += p;
        }
        CHECK(total == doctest::Approx(1.0));
        // 6 subsets -> 5 degrees of freedom; reject at the 0.001 level.
        CHECK(chi_square(observed, probability, n) < chi2_crit_001_df5);
    }

    // The temperatures really give different distributions: P({2, 3}) grows as τ falls.
    const double cold = pair_probabilities(u, 0.5).at({2, 3});
    const double hot = pair_probabilities(u, 4.0).at({2, 3});
    CHECK(cold > hot + 0.2);
}

TEST_CASE_TEMPLATE("select_gumbel_top_k: K = 1 is softmax sampling, tiny tau is top-k", T, float, double) {
    const std::vector<T> u{T(1), T(-1), T(0.5), T(0)};
    const double n = 100000;
    sams::rng gen(7);
    std::vector<std::size_t> out;
    std::vector<double> counts(4, 0.0);
    for (int t = 0; t < static_cast<int>(n); ++t) {
        sams::select_gumbel_top_k(std::span<const T>(u), 1, 1.0, gen, out);
        counts[out.at(0)] += 1;
    }
    std::vector<double> p(4);
    double z = 0.0;
    for (std::size_t i = 0; i < 4; ++i) z += p[i] = std::exp(static_cast<double>(u[i]));
    for (auto& x : p) x /= z;
    CHECK(chi_square(counts, p, n) < chi2_crit_001_df3);

    for (int t = 0; t < 100; ++t) {
        sams::select_gumbel_top_k(std::span<const T>(u), 2, 1e-9, gen, out);
        CHECK(out == std::vector<std::size_t>{0, 2});
    }
}

TEST_CASE("select_gumbel_top_k: deterministic per seed, validates before drawing") {
    const std::vector<float> u{0.1f, 0.4f, -0.2f, 0.9f, 0.0f, 0.3f};
    sams::rng a(5), b(5);
    std::vector<std::size_t> x, y;
    for (int t = 0; t < 50; ++t) {
        sams::select_gumbel_top_k(std::span<const float>(u), 3, 0.7, a, x);
        sams::select_gumbel_top_k(std::span<const float>(u), 3, 0.7, b, y);
        CHECK(x == y);
    }
    const sams::rng before = a;
    CHECK_THROWS_WITH_AS(sams::select_gumbel_top_k(std::span<const float>(u), 3, 0.0, a, x),
                         doctest::Contains("temperature"), sams::invalid_argument);
    CHECK_THROWS_AS(sams::select_gumbel_top_k(std::span<const float>(u), 7, 1.0, a, x), sams::invalid_argument);
    CHECK(a == before);
}

TEST_CASE("select_uniform: every K-subset equally likely") {
    // B = 5, K = 2: 10 subsets of probability 1/10 each -> 9 degrees of freedom.
    const double n = 100000;
    sams::rng gen(99);
    std::vector<std::size_t> out;
    std::map<std::pair<std::size_t, std::size_t>, double> count;
    std::vector<double> inclusion(5, 0.0);
    int malformed = 0;
    for (int t = 0; t < static_cast<int>(n); ++t) {
        sams::select_uniform(5, 2, gen, out);
        if (out.size() != 2 || out[0] >= out[1] || out[1] >= 5) {
            ++malformed;
            continue;
        }
        count[{out[0], out[1]}] += 1;
        for (const auto i : out) inclusion[i] += 1;
    }
    REQUIRE(malformed == 0);
    REQUIRE(count.size() == 10);
    std::vector<double> observed;
    for (const auto& [subset, c] : count) observed.push_back(c);
    CHECK(chi_square(observed, std::vector<double>(10, 0.1), n) < chi2_crit_001_df9);
    // Inclusion probability K/B = 0.4 for every index; binomial sd = sqrt(n 0.4 0.6) ≈ 155.
    for (const double c : inclusion) CHECK(std::abs(c - 0.4 * n) < 5.0 * std::sqrt(n * 0.4 * 0.6));

    sams::select_uniform(5, 5, gen, out);
    CHECK(out == std::vector<std::size_t>{0, 1, 2, 3, 4});
    sams::select_uniform(5, 0, gen, out);
    CHECK(out.empty());
    CHECK_THROWS_AS(sams::select_uniform(5, 6, gen, out), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("softmax_entropy: closed forms and stability", T, float, double) {
    const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-12;
    const std::vector<T> equal(8, T(3));
    CHECK(sams::softmax_entropy(std::span<const T>(equal), 1.0) == doctest::Approx(std::log(8.0)).epsilon(tol));

    // p ∝ {1, 2}: H = -(1/3) ln(1/3) - (2/3) ln(2/3). At τ = 2 the scores {0, 2 ln 2} give the same p.
    const double h = -(1.0 / 3.0) * std::log(1.0 / 3.0) - (2.0 / 3.0) * std::log(2.0 / 3.0);
    const std::vector<T> two{T(0), static_cast<T>(2.0 * std::log(2.0))};
    CHECK(sams::softmax_entropy(std::span<const T>(two), 2.0) == doctest::Approx(h).epsilon(1e-6));
    // Shift invariance with scores far beyond exp's range.
    const std::vector<T> shifted{T(1e4), static_cast<T>(1e4 + 2.0 * std::log(2.0))};
    CHECK(sams::softmax_entropy(std::span<const T>(shifted), 2.0) == doctest::Approx(h).epsilon(2e-3));
    // One dominant score: entropy 0, no NaN from 0 · (-inf).
    const std::vector<T> dominant{T(0), T(1e4), T(-1e4)};
    CHECK(sams::softmax_entropy(std::span<const T>(dominant), 1e-3) == 0.0);

    const std::vector<T> empty;
    CHECK_THROWS_AS((void)sams::softmax_entropy(std::span<const T>(empty), 1.0), sams::invalid_argument);
    CHECK_THROWS_AS((void)sams::softmax_entropy(std::span<const T>(two), -1.0), sams::invalid_argument);
}

TEST_CASE_TEMPLATE("score_spread: population standard deviation", T, float, double) {
    const std::vector<T> s{1, 2, 3, 4};  // mean 2.5, squared deviations 2.25+0.25+0.25+2.25 = 5, /4
    CHECK(sams::score_spread(std::span<const T>(s)) == doctest::Approx(std::sqrt(1.25)));
    const std::vector<T> one{T(7)};
    CHECK(sams::score_spread(std::span<const T>(one)) == 0.0);
    const std::vector<T> constant(5, T(0.1));
    CHECK(sams::score_spread(std::span<const T>(constant)) == doctest::Approx(0.0));
}
