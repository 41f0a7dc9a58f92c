// The preference-loss family: closed-form values, derivatives against central finite
// differences, saturation at |βh| = 1e4, evaluate_loss over batches, every validation error,
// the no-allocation promise, and the preference_loss concept (positive, negative, user loss).
#include <doctest/doctest.h>

#include <sams/loss/concept.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/losses.hpp>

#include <sams/core/rng.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

// Counts every heap allocation of this test program, to check that evaluate_loss allocates
// nothing once its output has capacity.
#include "support/allocation_counter.hpp"

// ---- the skeleton of docs/concepts.md, verbatim --------------------------------------------
/// A user-defined preference loss: the squared hinge ℓ = max(0, 1 - βh)², h = u_w - u_l.
struct squared_hinge_loss {
    double beta = 0.1;

    bool needs_reference() const { return true; }  // reads r_w, r_l
    bool needs_lengths() const { return false; }   // ignores n_w, n_l

    void validate() const {  // optional: evaluate_loss calls it before touching the batch
        if (!(beta > 0.0)) throw sams::invalid_argument("squared_hinge_loss.beta: must be > 0");
    }

    template <class T>
    sams::pair_loss<T> operator()(const sams::pair_input<T>& p) const {
        const T b = static_cast<T>(beta);
        const T u_w = p.policy_chosen - p.reference_chosen;
        const T u_l = p.policy_rejected - p.reference_rejected;
        const T slack = std::max(T(0), T(1) - b * (u_w - u_l));
        const T d = -T(2) * b * slack;  // ∂ℓ/∂h; h rises with a_w and falls with a_l
        return {.loss = slack * slack,
                .d_policy_chosen = d,
                .d_policy_rejected = -d,
                .chosen_reward = b * u_w,
                .rejected_reward = b * u_l};
    }
};
static_assert(sams::preference_loss<squared_hinge_loss, float>);
static_assert(sams::preference_loss<squared_hinge_loss, double>);
// ---- end of skeleton -----------------------------------------------------------------------

namespace {

// Negative concept checks: each misses one requirement.
struct no_needs_lengths {
    bool needs_reference() const { return true; }
    sams::pair_loss<float> operator()(const sams::pair_input<float>&) const { return {}; }
};
struct wrong_result {
    bool needs_reference() const { return true; }
    bool needs_lengths() const { return false; }
    float operator()(const sams::pair_input<float>&) const { return 0.0f; }
};
struct float_only {
    bool needs_reference() const { return true; }
    bool needs_lengths() const { return false; }
    sams::pair_loss<float> operator()(const sams::pair_input<float>&) const { return {}; }
};
static_assert(!sams::preference_loss<no_needs_lengths, float>);
static_assert(!sams::preference_loss<wrong_result, float>);
static_assert(sams::preference_loss<float_only, float>);
static_assert(!sams::preference_loss<float_only, double>);
static_assert(!sams::preference_loss<int, float>);

template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

template <class T>
doctest::Approx approx(double x) {
    return doctest::Approx(x).epsilon(tolerance<T>());
}

/// A pair with the given log-ratios u_w, u_l around reference log-probs -20 and -30.
template <class T>
sams::pair_input<T> pair_with(double u_w, double u_l, double n_w = 1.0, double n_l = 1.0) {
    return {static_cast<T>(-20.0 + u_w), static_cast<T>(-30.0 + u_l), T(-20), T(-30), static_cast<T>(n_w),
            static_cast<T>(n_l)};
}

const double ln2 = std::log(2.0);
const double ln3 = std::log(3.0);

}  // namespace

// ---------------------------------------------------------------------------------------------
// Closed forms. σ(ln 3) = 3/4, σ(-ln 3) = 1/4, σ(2 ln 3) = 9/10; softplus(-ln 3) = ln(4/3),
// softplus(ln 3) = ln 4.

TEST_CASE_TEMPLATE("sigmoid and cDPO match closed forms", T, float, double) {
    // β = 0.5, u_w = ln 3, u_l = -ln 3: h = 2 ln 3, βh = ln 3.
    // DPO: ℓ = -log σ(ln 3) = ln(4/3); ∂ℓ/∂h = -β σ(-ln 3) = -0.5/4 = -1/8.
    const auto p = pair_with<T>(ln3, -ln3);
    const auto dpo = sams::sigmoid_loss{.beta = 0.5}(p);
    CHECK(dpo.loss == approx<T>(std::log(4.0 / 3.0)));
    CHECK(dpo.d_policy_chosen == approx<T>(-0.125));
    CHECK(dpo.d_policy_rejected == approx<T>(0.125));
    CHECK(dpo.chosen_reward == approx<T>(0.5 * ln3));
    CHECK(dpo.rejected_reward == approx<T>(-0.5 * ln3));

    // cDPO ε = 1/4: ℓ = 3/4·ln(4/3) + 1/4·ln 4; ∂ℓ/∂h = β(-3/4·1/4 + 1/4·3/4) = 0.
    const auto c = sams::sigmoid_loss{.beta = 0.5, .label_smoothing = 0.25}(p);
    CHECK(c.loss == approx<T>(0.75 * std::log(4.0 / 3.0) + 0.25 * std::log(4.0)));
    CHECK(std::abs(double(c.d_policy_chosen)) < tolerance<T>());

    // h = 0: ℓ = ln 2 for every ε; ∂ℓ/∂h = β(ε - 1/2) = 0.5·(-1/4) = -1/8 at ε = 1/4.
    const auto z = sams::sigmoid_loss{.beta = 0.5, .label_smoothing = 0.25}(pair_with<T>(0.0, 0.0));
    CHECK(z.loss == approx<T>(ln2));
    CHECK(z.d_policy_chosen == approx<T>(-0.125));
    CHECK(z.d_policy_rejected == approx<T>(0.125));
}

TEST_CASE_TEMPLATE("robust matches closed forms", T, float, double) {
    // β = 0.5, βh = ln 3, ε = 1/4: ℓ = [3/4·ln(4/3) - 1/4·ln 4] / (1/2) = 1.5 ln(4/3) - 0.5 ln 4;
    // ∂ℓ/∂h = -β(3/4·1/4 + 1/4·3/4) / (1/2) = -0.5·(3/8)·2 = -3/8.
    const auto r = sams::robust_loss{.beta = 0.5, .label_smoothing = 0.25}(pair_with<T>(ln3, -ln3));
    CHECK(r.loss == approx<T>(1.5 * std::log(4.0 / 3.0) - 0.5 * std::log(4.0)));
    CHECK(r.d_policy_chosen == approx<T>(-0.375));
    CHECK(r.d_policy_rejected == approx<T>(0.375));
    CHECK(r.chosen_reward == approx<T>(0.5 * ln3));
}

TEST_CASE_TEMPLATE("ipo matches closed forms, plain and length-normalised", T, float, double) {
    // β = 1/4: target 1/(2β) = 2. u_w = 3, u_l = -2: h = 5, ℓ = 3² = 9, ∂ℓ/∂h = 2·3 = 6.
    const auto plain = sams::ipo_loss{.beta = 0.25}(pair_with<T>(3.0, -2.0));
    CHECK(plain.loss == approx<T>(9.0));
    CHECK(plain.d_policy_chosen == approx<T>(6.0));
    CHECK(plain.d_policy_rejected == approx<T>(-6.0));
    CHECK(plain.chosen_reward == approx<T>(0.75));
    CHECK(plain.rejected_reward == approx<T>(-0.5));

    // u_w = 6, n_w = 2; u_l = -4, n_l = 4: h̄ = 3 + 1 = 4, ℓ = (4-2)² = 4,
    // ∂ℓ/∂a_w = 2·2/2 = 2, ∂ℓ/∂a_l = -2·2/4 = -1. Rewards β u/n = 0.25·3, 0.25·(-1).
    const auto norm = sams::ipo_loss{.beta = 0.25, .length_normalize = true}(pair_with<T>(6.0, -4.0, 2.0, 4.0));
    CHECK(norm.loss == approx<T>(4.0));
    CHECK(norm.d_policy_chosen == approx<T>(2.0));
    CHECK(norm.d_policy_rejected == approx<T>(-1.0));
    CHECK(norm.chosen_reward == approx<T>(0.75));
    CHECK(norm.rejected_reward == approx<T>(-0.25));
    CHECK(sams::ipo_loss{.length_normalize = true}.needs_lengths());
    CHECK_FALSE(sams::ipo_loss{}.needs_lengths());
}

TEST_CASE_TEMPLATE("hinge matches closed forms and takes subgradient 0 at the kink", T, float, double) {
    const sams::hinge_loss hinge{.beta = 0.5};
    // h = 1: βh = 0.5, ℓ = 0.5, ∂ℓ/∂h = -β = -0.5.
    const auto inside = hinge(pair_with<T>(0.5, -0.5));
    CHECK(inside.loss == approx<T>(0.5));
    CHECK(inside.d_policy_chosen == approx<T>(-0.5));
    CHECK(inside.d_policy_rejected == approx<T>(0.5));
    // h = -4: ℓ = 1 + 2 = 3, slope -β.
    const auto wrong = hinge(pair_with<T>(-2.0, 2.0));
    CHECK(wrong.loss == approx<T>(3.0));
    CHECK(wrong.d_policy_chosen == approx<T>(-0.5));
    // h = 2: βh = 1 exactly (the kink): ℓ = 0 and, as relu'(0) = 0 in PyTorch, slope 0.
    const sams::pair_input<T> kink{T(1), T(-1), T(0), T(0), T(1), T(1)};
    const auto at = hinge(kink);
    CHECK(at.loss == T(0));
    CHECK(at.d_policy_chosen == T(0));
    CHECK(at.d_policy_rejected == T(0));
    // h = 3: past the margin, ℓ = 0, slope 0.
    const auto past = hinge(pair_with<T>(1.5, -1.5));
    CHECK(past.loss == T(0));
    CHECK(past.d_policy_chosen == T(0));
}

TEST_CASE_TEMPLATE("sigmoid_norm matches closed forms", T, float, double) {
    // β = 1, u_w = 2 ln 3, n_w = 2, u_l = -5 ln 3, n_l = 5: h̄ = ln 3 + ln 3 = 2 ln 3.
    // ℓ = -log σ(2 ln 3) = ln(10/9); ∂ℓ/∂h̄ = -σ(-2 ln 3) = -1/10;
    // ∂ℓ/∂a_w = -1/10 / 2 = -1/20, ∂ℓ/∂a_l = +1/10 / 5 = 1/50. Rewards β u/n = ln 3, -ln 3.
    const auto r = sams::sigmoid_norm_loss{.beta = 1.0}(pair_with<T>(2 * ln3, -5 * ln3, 2.0, 5.0));
    CHECK(r.loss == approx<T>(std::log(10.0 / 9.0)));
    CHECK(r.d_policy_chosen == approx<T>(-0.05));
    CHECK(r.d_policy_rejected == approx<T>(0.02));
    CHECK(r.chosen_reward == approx<T>(ln3));
    CHECK(r.rejected_reward == approx<T>(-ln3));
}

TEST_CASE_TEMPLATE("simpo matches closed forms and ignores the reference", T, float, double) {
    // β = 2, γ = 1, a_w = -10, n_w = 10, a_l = -30, n_l = 20: a_w/n_w - a_l/n_l = -1 + 1.5 = 0.5,
    // z = 2·0.5 - 1 = 0: ℓ = ln 2; ∂ℓ/∂a_w = -σ(0)·β/n_w = -0.1, ∂ℓ/∂a_l = σ(0)·β/n_l = 0.05;
    // rewards β a/n = -2 and -3.
    sams::pair_input<T> p{T(-10), T(-30), T(0), T(0), T(10), T(20)};
    const sams::simpo_loss simpo{.beta = 2.0, .gamma = 1.0};
    const auto r = simpo(p);
    CHECK(r.loss == approx<T>(ln2));
    CHECK(r.d_policy_chosen == approx<T>(-0.1));
    CHECK(r.d_policy_rejected == approx<T>(0.05));
    CHECK(r.chosen_reward == approx<T>(-2.0));
    CHECK(r.rejected_reward == approx<T>(-3.0));
    p.reference_chosen = T(-7);
    p.reference_rejected = T(3);
    CHECK(simpo(p).loss == r.loss);
    // ε = 1/4 at z = 0: ℓ = ln 2, dℓ/dz = ε - 1/2 = -1/4, ∂ℓ/∂a_w = 2·(-1/4)/10 = -0.05.
    const auto s = sams::simpo_loss{.beta = 2.0, .gamma = 1.0, .label_smoothing = 0.25}(p);
    CHECK(s.loss == approx<T>(ln2));
    CHECK(s.d_policy_chosen == approx<T>(-0.05));
    CHECK(s.d_policy_rejected == approx<T>(0.025));
}

TEST_CASE_TEMPLATE("nca_pair, apo_zero and sppo_hard match closed forms", T, float, double) {
    // β = 0.5, u_w = 2 ln 3, u_l = -2 ln 3: ρ_w = ln 3, ρ_l = -ln 3.
    const auto p = pair_with<T>(2 * ln3, -2 * ln3);
    // NCA: ℓ = softplus(-ln 3) + ½ softplus(ln 3) + ½ softplus(-ln 3) = 1.5 ln(4/3) + ln 2;
    // ∂ℓ/∂a_w = β(½·3/4 - 1/4) = 0.5/8 = 1/16; ∂ℓ/∂a_l = β·½·σ(-ln 3) = 0.5·1/8 = 1/16.
    const auto nca = sams::nca_pair_loss{.beta = 0.5}(p);
    CHECK(nca.loss == approx<T>(1.5 * std::log(4.0 / 3.0) + ln2));
    CHECK(nca.d_policy_chosen == approx<T>(1.0 / 16));
    CHECK(nca.d_policy_rejected == approx<T>(1.0 / 16));
    CHECK(nca.chosen_reward == approx<T>(ln3));
    // APO-zero: ℓ = σ(-ln 3) + σ(-ln 3) = 1/2; ∂ℓ/∂a_w = -β·3/4·1/4 = -3/32, ∂ℓ/∂a_l = +3/32.
    const auto apo = sams::apo_zero_loss{.beta = 0.5}(p);
    CHECK(apo.loss == approx<T>(0.5));
    CHECK(apo.d_policy_chosen == approx<T>(-3.0 / 32));
    CHECK(apo.d_policy_rejected == approx<T>(3.0 / 32));
    // SPPO-hard, β = 1/4 (targets ±2), u_w = 5, u_l = -1: ℓ = 3² + 1² = 10, ∂ = 2·3, 2·1.
    const auto sppo = sams::sppo_hard_loss{.beta = 0.25}(pair_with<T>(5.0, -1.0));
    CHECK(sppo.loss == approx<T>(10.0));
    CHECK(sppo.d_policy_chosen == approx<T>(6.0));
    CHECK(sppo.d_policy_rejected == approx<T>(2.0));
}

TEST_CASE("cDPO and robust with epsilon 0 equal sigmoid exactly") {
    sams::rng r(11);
    for (int i = 0; i < 200; ++i) {
        const double beta = r.uniform(0.01, 3.0);
        const sams::pair_input<double> p{r.uniform(-400, 0), r.uniform(-400, 0), r.uniform(-400, 0),
                                         r.uniform(-400, 0), 1.0, 1.0};
        const auto base = sams::sigmoid_loss{.beta = beta}(p);
        for (const auto& other : {sams::sigmoid_loss{.beta = beta, .label_smoothing = 0.0}(p),
                                  sams::robust_loss{.beta = beta, .label_smoothing = 0.0}(p)}) {
            CHECK(other.loss == base.loss);
            CHECK(other.d_policy_chosen == base.d_policy_chosen);
            CHECK(other.d_policy_rejected == base.d_policy_rejected);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Derivatives against central finite differences (double), including saturated |z| up to 50.

namespace {

struct fd_report {
    int checked = 0;
    int failed = 0;
    std::string first_failure;
};

template <class Loss>
void check_against_fd(const Loss& loss, const sams::pair_input<double>& p, fd_report& report) {
    const auto exact = loss(p);
    const auto at = [&](double a_w, double a_l) {
        auto q = p;
        q.policy_chosen = a_w;
        q.policy_rejected = a_l;
        return loss(q).loss;
    };
    // Absolute step: f''' ≤ β³ ≤ 8 keeps truncation near 1e-8·8/6; the step actually taken,
    // (a+δ) - (a-δ), is the denominator, so rounding of a ± δ does not bias the quotient.
    const double delta = 1e-4;
    for (int which = 0; which < 2; ++which) {
        const double a = which == 0 ? p.policy_chosen : p.policy_rejected;
        const double hi = a + delta, lo = a - delta;
        const double f_hi = which == 0 ? at(hi, p.policy_rejected) : at(p.policy_chosen, hi);
        const double f_lo = which == 0 ? at(lo, p.policy_rejected) : at(p.policy_chosen, lo);
        const double fd = (f_hi - f_lo) / (hi - lo);
        const double d = which == 0 ? exact.d_policy_chosen : exact.d_policy_rejected;
        const double allowed = 1e-6 * (1 + std::abs(d)) + 1e-11 * (1 + std::abs(exact.loss));
        ++report.checked;
        if (!(std::abs(fd - d) <= allowed)) {
            if (report.failed++ == 0)
                report.first_failure = std::string(Loss::name) + (which == 0 ? " d/da_w" : " d/da_l") +
                                       ": exact " + std::to_string(d) + ", finite difference " + std::to_string(fd);
        }
    }
}

}  // namespace

TEST_CASE("every loss's derivatives match central finite differences") {
    sams::rng r(2024);
    fd_report report;
    for (int draw = 0; draw < 150; ++draw) {
        const double beta = r.uniform(0.05, 2.0);
        const double eps = r.uniform(0.0, 0.45);
        const double gamma = r.uniform(-1.0, 2.0);
        const double z = r.uniform(-50.0, 50.0);  // the loss's logistic argument, up to saturation
        const double r_w = r.uniform(-300, -5), r_l = r.uniform(-300, -5), a_l = r.uniform(-300, -5);
        const double n_w = r.uniform(1, 300), n_l = r.uniform(1, 300);
        const double u_l = a_l - r_l;
        // Three pairs whose key argument is z: βh = z, βh̄ = z, and SimPO's β(a_w/n_w - a_l/n_l) - γ = z.
        const sams::pair_input<double> pairs[] = {
            {r_w + u_l + z / beta, a_l, r_w, r_l, n_w, n_l},
            {r_w + n_w * (z / beta + u_l / n_l), a_l, r_w, r_l, n_w, n_l},
            {n_w * ((z + gamma) / beta + a_l / n_l), a_l, r_w, r_l, n_w, n_l},
        };
        const auto losses = std::make_tuple(
            sams::sigmoid_loss{beta, eps}, sams::robust_loss{beta, eps}, sams::ipo_loss{beta, false},
            sams::ipo_loss{beta, true}, sams::sigmoid_norm_loss{beta, eps},
            sams::simpo_loss{beta, gamma, eps}, sams::nca_pair_loss{beta}, sams::apo_zero_loss{beta},
            sams::sppo_hard_loss{beta});
        for (const auto& p : pairs) {
            std::apply([&](const auto&... loss) { (check_against_fd(loss, p, report), ...); }, losses);
            // The hinge is not differentiable at βh = 1: test it only away from the kink.
            const double slack = 1 - beta * ((p.policy_chosen - p.reference_chosen) - u_l);
            if (std::abs(slack) > 1e-3) check_against_fd(sams::hinge_loss{beta}, p, report);
        }
    }
    INFO(report.first_failure);
    CHECK(report.checked > 8000);
    CHECK(report.failed == 0);
}

// ---------------------------------------------------------------------------------------------
// Saturation: |βh| = 1e4 gives finite values with the right asymptotes, in float and double.

TEST_CASE_TEMPLATE("losses stay finite with the right asymptotes at |beta h| = 1e4", T, float, double) {
    const double beta = 0.1;
    for (const double z : {-1e4, 1e4}) {
        CAPTURE(z);
        // a_w = z/(2β), a_l = -z/(2β), r = 0, n = 1: h = h̄ = z/β, u_w = -u_l = z/(2β).
        const sams::pair_input<T> p{static_cast<T>(z / (2 * beta)), static_cast<T>(-z / (2 * beta)), T(0), T(0),
                                    T(1), T(1)};
        const bool low = z < 0;
        const auto finite = [](const sams::pair_loss<T>& l) {
            return std::isfinite(l.loss) && std::isfinite(l.d_policy_chosen) && std::isfinite(l.d_policy_rejected) &&
                   std::isfinite(l.chosen_reward) && std::isfinite(l.rejected_reward);
        };
        const auto near = [](T got, double want) {
            return std::abs(double(got) - want) <= 1e-5 * (1 + std::abs(want));
        };
        // DPO: ℓ → -z for z → -∞ (softplus(-z) ≈ -z), ∂ℓ/∂a_w → -β; both → 0 for z → +∞.
        const auto dpo = sams::sigmoid_loss{beta}(p);
        CHECK(finite(dpo));
        CHECK(near(dpo.loss, low ? 1e4 : 0.0));
        CHECK(near(dpo.d_policy_chosen, low ? -beta : 0.0));
        CHECK(near(dpo.d_policy_rejected, low ? beta : 0.0));
        // cDPO ε = 0.1: ℓ → (1-ε)|z| or ε z; slope → -(1-ε)β or εβ.
        const auto c = sams::sigmoid_loss{beta, 0.1}(p);
        CHECK(finite(c));
        CHECK(near(c.loss, low ? 0.9e4 : 0.1e4));
        CHECK(near(c.d_policy_chosen, low ? -0.9 * beta : 0.1 * beta));
        // rDPO ε = 0.1: ℓ → (1-ε)|z|/(1-2ε) or -ε z/(1-2ε); slope → -(1-ε)β/0.8 or -εβ/0.8.
        const auto rb = sams::robust_loss{beta, 0.1}(p);
        CHECK(finite(rb));
        CHECK(near(rb.loss, low ? 0.9e4 / 0.8 : -0.1e4 / 0.8));
        CHECK(near(rb.d_policy_chosen, low ? -0.9 * beta / 0.8 : -0.1 * beta / 0.8));
        // IPO: exact quadratic, h = z/β = ±1e5, target 5.
        const auto ipo = sams::ipo_loss{beta}(p);
        CHECK(finite(ipo));
        CHECK(near(ipo.loss, (z / beta - 5) * (z / beta - 5)));
        CHECK(near(ipo.d_policy_chosen, 2 * (z / beta - 5)));
        // Hinge: 1 - z below the margin with slope -β, 0 above.
        const auto hinge = sams::hinge_loss{beta}(p);
        CHECK(finite(hinge));
        CHECK(near(hinge.loss, low ? 1 + 1e4 : 0.0));
        CHECK(near(hinge.d_policy_chosen, low ? -beta : 0.0));
        // sigmoid_norm with n = 1 is DPO.
        const auto sn = sams::sigmoid_norm_loss{beta}(p);
        CHECK(finite(sn));
        CHECK(near(sn.loss, low ? 1e4 : 0.0));
        CHECK(near(sn.d_policy_chosen, low ? -beta : 0.0));
        // SimPO, γ = 0.5, n = 1: argument z - 0.5.
        const auto simpo = sams::simpo_loss{beta, 0.5}(p);
        CHECK(finite(simpo));
        CHECK(near(simpo.loss, low ? 1e4 + 0.5 : 0.0));
        CHECK(near(simpo.d_policy_rejected, low ? beta : 0.0));
        // NCA, ρ_w = z/2, ρ_l = -z/2: ℓ → |z|/2 + |z|/4 (low) or |z|/4 (high).
        const auto nca = sams::nca_pair_loss{beta}(p);
        CHECK(finite(nca));
        CHECK(near(nca.loss, low ? 7500.0 : 2500.0));
        CHECK(near(nca.d_policy_chosen, low ? -beta : beta / 2));
        CHECK(near(nca.d_policy_rejected, low ? beta / 2 : 0.0));
        // APO-zero saturates at 2 (low) or 0 (high) with vanishing slopes.
        const auto apo = sams::apo_zero_loss{beta}(p);
        CHECK(finite(apo));
        CHECK(near(apo.loss, low ? 2.0 : 0.0));
        CHECK(near(apo.d_policy_chosen, 0.0));
        CHECK(near(apo.d_policy_rejected, 0.0));
        // SPPO-hard: exact quadratics, u_w = z/(2β) with target 5, u_l = -z/(2β) with target -5.
        const auto sppo = sams::sppo_hard_loss{beta}(p);
        const double uw = z / (2 * beta);
        CHECK(finite(sppo));
        CHECK(near(sppo.loss, 2 * (uw - 5) * (uw - 5)));
        CHECK(near(sppo.d_policy_chosen, 2 * (uw - 5)));
    }
}

// ---------------------------------------------------------------------------------------------
// evaluate_loss over a batch.

namespace {

/// Owns the buffers of a small batch; view() hands out the pair_batch.
template <class T>
struct batch_data {
    std::vector<T> a_w, a_l, r_w, r_l, n_w, n_l;

    sams::pair_batch<T> view() const {
        sams::pair_batch<T> b;
        b.policy_chosen = a_w;
        b.policy_rejected = a_l;
        b.reference_chosen = r_w;
        b.reference_rejected = r_l;
        b.chosen_length = n_w;
        b.rejected_length = n_l;
        return b;
    }
};

/// Four pairs with (u_w, u_l) = (0, 0), (ln 3, 0), (0, ln 3), (ln 3, -ln 3).
template <class T>
batch_data<T> four_pairs() {
    const T l3 = static_cast<T>(ln3);
    batch_data<T> d;
    d.r_w = {T(-7), T(-12), T(-5), T(-20)};
    d.r_l = {T(-9), T(-15), T(-8), T(-25)};
    d.a_w = {d.r_w[0], d.r_w[1] + l3, d.r_w[2], d.r_w[3] + l3};
    d.a_l = {d.r_l[0], d.r_l[1], d.r_l[2] + l3, d.r_l[3] - l3};
    d.n_w = {T(3), T(4), T(5), T(6)};
    d.n_l = {T(2), T(2), T(2), T(2)};
    return d;
}

}  // namespace

TEST_CASE_TEMPLATE("evaluate_loss fills per-pair values and batch means", T, float, double) {
    const auto data = four_pairs<T>();
    const auto stats = sams::evaluate_loss(sams::loss_config{.kind = sams::loss_kind::sigmoid, .beta = 1.0},
                                           data.view());
    REQUIRE(stats.size() == 4);
    // β = 1, h = 0, ln 3, -ln 3, 2 ln 3: ℓ = ln 2, ln(4/3), ln 4, ln(10/9);
    // ∂ℓ/∂a_w = -σ(-h) = -1/2, -1/4, -3/4, -1/10.
    const double loss[] = {ln2, std::log(4.0 / 3.0), std::log(4.0), std::log(10.0 / 9.0)};
    const double slope[] = {-0.5, -0.25, -0.75, -0.1};
    const double margin[] = {0.0, ln3, -ln3, 2 * ln3};
    for (std::size_t i = 0; i < 4; ++i) {
        CAPTURE(i);
        CHECK(stats.loss[i] == approx<T>(loss[i]));
        CHECK(stats.d_policy_chosen[i] == approx<T>(slope[i]));
        CHECK(stats.d_policy_rejected[i] == approx<T>(-slope[i]));
        CHECK(stats.margin[i] == approx<T>(margin[i]));
    }
    CHECK(stats.margin[0] == T(0));  // an exact tie is not counted as correct
    CHECK(stats.summary.loss == approx<T>((loss[0] + loss[1] + loss[2] + loss[3]) / 4));
    CHECK(stats.summary.accuracy == doctest::Approx(0.5));  // margins > 0: pairs 1 and 3
    CHECK(stats.summary.margin == approx<T>(ln3 / 2));
    CHECK(stats.summary.chosen_reward == approx<T>((0 + ln3 + 0 + ln3) / 4));
    CHECK(stats.summary.rejected_reward == approx<T>((0 + 0 + ln3 - ln3) / 4));
}

TEST_CASE("evaluate_loss through a loss_config equals the loss struct, for every kind") {
    const auto data = four_pairs<double>();
    const auto batch = data.view();
    for (int k = 0; k <= static_cast<int>(sams::loss_kind::sppo_hard); ++k) {
        const sams::loss_config config{.kind = static_cast<sams::loss_kind>(k),
                                       .beta = 0.7,
                                       .label_smoothing = 0.2,
                                       .simpo_gamma = 0.3,
                                       .length_normalize = true};
        CAPTURE(sams::loss_name(config.kind));
        const auto via_config = sams::evaluate_loss(config, batch);
        sams::visit_loss(config, [&](const auto& loss) {
            CHECK(loss.name == sams::loss_name(config.kind));
            CHECK(loss.needs_reference() == config.needs_reference());
            CHECK(loss.needs_lengths() == config.needs_lengths());
            const auto direct = sams::evaluate_loss(loss, batch);
            CHECK(direct.loss == via_config.loss);
            CHECK(direct.d_policy_chosen == via_config.d_policy_chosen);
            for (std::size_t i = 0; i < batch.size(); ++i) {
                const auto one = loss(sams::pair_input<double>{data.a_w[i], data.a_l[i], data.r_w[i], data.r_l[i],
                                                               data.n_w[i], data.n_l[i]});
                CHECK(via_config.loss[i] == one.loss);
                CHECK(via_config.d_policy_rejected[i] == one.d_policy_rejected);
                CHECK(via_config.margin[i] == one.chosen_reward - one.rejected_reward);
            }
        });
    }
}

TEST_CASE("loss_config parameters reach the loss: simpo gamma and smoothing, ipo normalisation") {
    // SimPO through the config, same point as the closed-form case: ℓ = ln 2, ∂ℓ/∂a_w = -0.05.
    const std::vector<double> a_w{-10}, a_l{-30}, n_w{10}, n_l{20};
    sams::pair_batch<double> b;
    b.policy_chosen = a_w;
    b.policy_rejected = a_l;
    b.chosen_length = n_w;
    b.rejected_length = n_l;
    const auto s = sams::evaluate_loss(
        sams::loss_config{.kind = sams::loss_kind::simpo, .beta = 2.0, .label_smoothing = 0.25, .simpo_gamma = 1.0},
        b);
    CHECK(s.loss[0] == doctest::Approx(ln2));
    CHECK(s.d_policy_chosen[0] == doctest::Approx(-0.05));
    // IPO normalised, u_w = 6, n_w = 2, u_l = -4, n_l = 4, β = 1/4: ℓ = 4 (closed form above).
    const std::vector<double> ipo_aw{-14}, ipo_al{-34}, ipo_rw{-20}, ipo_rl{-30}, ipo_nw{2}, ipo_nl{4};
    sams::pair_batch<double> ib;
    ib.policy_chosen = ipo_aw;
    ib.policy_rejected = ipo_al;
    ib.reference_chosen = ipo_rw;
    ib.reference_rejected = ipo_rl;
    ib.chosen_length = ipo_nw;
    ib.rejected_length = ipo_nl;
    const auto ipo = sams::evaluate_loss(
        sams::loss_config{.kind = sams::loss_kind::ipo, .beta = 0.25, .length_normalize = true}, ib);
    CHECK(ipo.loss[0] == doctest::Approx(4.0));
    CHECK(ipo.d_policy_rejected[0] == doctest::Approx(-1.0));
}

TEST_CASE("evaluate_loss: optional fields a loss does not need may be absent") {
    auto data = four_pairs<double>();
    // DPO reads no lengths; SimPO reads no reference.
    auto no_lengths = data.view();
    no_lengths.chosen_length = {};
    no_lengths.rejected_length = {};
    CHECK(sams::evaluate_loss(sams::loss_config{}, no_lengths).loss ==
          sams::evaluate_loss(sams::loss_config{}, data.view()).loss);
    auto no_reference = data.view();
    no_reference.reference_chosen = {};
    no_reference.reference_rejected = {};
    const sams::loss_config simpo{.kind = sams::loss_kind::simpo};
    CHECK(sams::evaluate_loss(simpo, no_reference).loss == sams::evaluate_loss(simpo, data.view()).loss);
    CHECK(sams::evaluate_loss(sams::loss_config{.kind = sams::loss_kind::ipo}, no_lengths).size() == 4);
}

TEST_CASE("float evaluation agrees with double") {
    const auto data_f = four_pairs<float>();
    const auto data_d = four_pairs<double>();
    for (int k = 0; k <= static_cast<int>(sams::loss_kind::sppo_hard); ++k) {
        const sams::loss_config config{.kind = static_cast<sams::loss_kind>(k), .beta = 0.5, .label_smoothing = 0.1};
        CAPTURE(sams::loss_name(config.kind));
        const auto f = sams::evaluate_loss(config, data_f.view());
        const auto d = sams::evaluate_loss(config, data_d.view());
        for (std::size_t i = 0; i < 4; ++i) {
            CHECK(double(f.loss[i]) == doctest::Approx(d.loss[i]).epsilon(1e-4));
            CHECK(double(f.d_policy_chosen[i]) == doctest::Approx(d.d_policy_chosen[i]).epsilon(1e-4));
        }
        CHECK(f.summary.loss == doctest::Approx(d.summary.loss).epsilon(1e-4));
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, the strong guarantee and allocations.

namespace {

template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const sams::invalid_argument& e) {
        return e.what();
    }
    return "(no exception)";
}

}  // namespace

TEST_CASE("evaluate_loss rejects bad batches with messages that name the field") {
    const auto good = four_pairs<double>();
    const sams::loss_config dpo{};
    const auto eval = [](const sams::loss_config& c, const sams::pair_batch<double>& b) {
        (void)sams::evaluate_loss(c, b);
    };

    CHECK_THROWS_WITH_AS(eval(dpo, sams::pair_batch<double>{}), doctest::Contains("the batch is empty"),
                         sams::invalid_argument);

    SUBCASE("span lengths") {
        const std::vector<double> three{-1, -2, -3};
        const std::vector<double> three_len{1, 2, 3};
        const auto with = [&](auto member, const std::vector<double>& v) {
            auto b = good.view();
            b.*member = v;
            return b;
        };
        using B = sams::pair_batch<double>;
        CHECK_THROWS_WITH_AS(eval(dpo, with(&B::policy_rejected, three)),
                             doctest::Contains("evaluate_loss: policy_rejected has length 3, expected the batch size 4"),
                             sams::invalid_argument);
        CHECK_THROWS_WITH_AS(eval(dpo, with(&B::reference_chosen, three)),
                             doctest::Contains("reference_chosen has length 3, expected the batch size 4"),
                             sams::invalid_argument);
        CHECK_THROWS_WITH_AS(eval(dpo, with(&B::reference_rejected, three)),
                             doctest::Contains("reference_rejected has length 3, expected the batch size 4"),
                             sams::invalid_argument);
        // Lengths are checked when present, even for a loss that does not read them.
        CHECK_THROWS_WITH_AS(eval(dpo, with(&B::chosen_length, three_len)),
                             doctest::Contains("chosen_length has length 3, expected the batch size 4"),
                             sams::invalid_argument);
        CHECK_THROWS_WITH_AS(eval(sams::loss_config{.kind = sams::loss_kind::sigmoid_norm},
                                  with(&B::rejected_length, three_len)),
                             doctest::Contains("rejected_length has length 3, expected the batch size 4"),
                             sams::invalid_argument);
        // One reference span without the other.
        auto half = good.view();
        half.reference_rejected = {};
        CHECK_THROWS_WITH_AS(eval(sams::loss_config{.kind = sams::loss_kind::simpo}, half),
                             doctest::Contains("reference_rejected has length 0, expected the batch size 4"),
                             sams::invalid_argument);
    }

    SUBCASE("missing reference or lengths") {
        auto no_ref = good.view();
        no_ref.reference_chosen = {};
        no_ref.reference_rejected = {};
        CHECK_THROWS_WITH_AS(eval(dpo, no_ref),
                             doctest::Contains("reference_chosen is empty, but the sigmoid loss needs the reference"),
                             sams::invalid_argument);
        for (const auto kind : {sams::loss_kind::robust, sams::loss_kind::ipo, sams::loss_kind::hinge,
                                sams::loss_kind::sigmoid_norm, sams::loss_kind::nca_pair, sams::loss_kind::apo_zero,
                                sams::loss_kind::sppo_hard}) {
            CAPTURE(sams::loss_name(kind));
            CHECK_THROWS_WITH_AS(eval(sams::loss_config{.kind = kind}, no_ref),
                                 doctest::Contains("reference_chosen is empty"), sams::invalid_argument);
        }
        auto only_rejected_missing = good.view();
        only_rejected_missing.reference_rejected = {};
        CHECK_THROWS_WITH_AS(eval(dpo, only_rejected_missing), doctest::Contains("reference_rejected is empty"),
                             sams::invalid_argument);

        auto no_len = good.view();
        no_len.chosen_length = {};
        no_len.rejected_length = {};
        for (const auto& config : {sams::loss_config{.kind = sams::loss_kind::sigmoid_norm},
                                   sams::loss_config{.kind = sams::loss_kind::simpo},
                                   sams::loss_config{.kind = sams::loss_kind::ipo, .length_normalize = true}}) {
            CAPTURE(sams::loss_name(config.kind));
            const std::string expected =
                "chosen_length is empty, but the " + std::string(sams::loss_name(config.kind)) +
                " loss is length-normalised";
            CHECK_THROWS_WITH_AS(eval(config, no_len), doctest::Contains(expected.c_str()), sams::invalid_argument);
        }
        auto no_rejected_len = good.view();
        no_rejected_len.rejected_length = {};
        CHECK_THROWS_WITH_AS(eval(sams::loss_config{.kind = sams::loss_kind::simpo}, no_rejected_len),
                             doctest::Contains("rejected_length is empty"), sams::invalid_argument);
    }

    SUBCASE("lengths must be positive") {
        auto data = good;
        data.n_w[1] = 0.0;
        CHECK_THROWS_WITH_AS(eval(sams::loss_config{.kind = sams::loss_kind::simpo}, data.view()),
                             doctest::Contains("chosen_length[1] is 0, expected a length > 0"),
                             sams::invalid_argument);
        data = good;
        data.n_l[3] = -2.0;
        CHECK_THROWS_WITH_AS(eval(dpo, data.view()), doctest::Contains("rejected_length[3] is -2, expected a length > 0"),
                             sams::invalid_argument);
    }

    SUBCASE("NaN and Inf in every field") {
        const double bad_values[] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity()};
        using V = std::vector<double> batch_data<double>::*;
        const std::pair<V, const char*> fields[] = {
            {&batch_data<double>::a_w, "policy_chosen[2]"},    {&batch_data<double>::a_l, "policy_rejected[2]"},
            {&batch_data<double>::r_w, "reference_chosen[2]"}, {&batch_data<double>::r_l, "reference_rejected[2]"},
            {&batch_data<double>::n_w, "chosen_length[2]"},    {&batch_data<double>::n_l, "rejected_length[2]"},
        };
        for (const auto& field : fields) {
            const V member = field.first;  // not a structured binding: clang 14 cannot capture those
            const char* const name = field.second;
            for (const double bad : bad_values) {
                auto data = good;
                (data.*member)[2] = bad;
                CAPTURE(name);
                CAPTURE(bad);
                const std::string what = message_of([&] { eval(dpo, data.view()); });
                CHECK(what.find(std::string("evaluate_loss: ") + name) != std::string::npos);
                CHECK(what.find("expected a finite value") != std::string::npos);
            }
        }
    }
}

TEST_CASE("evaluate_loss rejects bad parameters, from the config and from a loss struct") {
    const auto data = four_pairs<double>();
    const auto b = data.view();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto eval = [&](const sams::loss_config& c) { (void)sams::evaluate_loss(c, b); };
    CHECK_THROWS_WITH_AS(eval({.beta = 0.0}), doctest::Contains("loss_config.beta"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(eval({.beta = -1.0}), doctest::Contains("loss_config.beta"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(eval({.beta = nan}), doctest::Contains("loss_config.beta"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(eval({.label_smoothing = 0.5}), doctest::Contains("loss_config.label_smoothing"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS(eval({.label_smoothing = -0.1}), doctest::Contains("loss_config.label_smoothing"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS(eval({.kind = sams::loss_kind::simpo, .simpo_gamma = std::numeric_limits<double>::infinity()}),
                         doctest::Contains("loss_config.simpo_gamma"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS(eval({.kind = static_cast<sams::loss_kind>(99)}), doctest::Contains("loss_config.kind"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS(sams::visit_loss(sams::loss_config{.kind = static_cast<sams::loss_kind>(-1)},
                                          [](const auto&) { return 0; }),
                         doctest::Contains("loss_config.kind"), sams::invalid_argument);

    CHECK_THROWS_WITH_AS((void)sams::evaluate_loss(sams::sigmoid_loss{.beta = -1.0}, b),
                         doctest::Contains("sigmoid_loss.beta: must be a finite number > 0, got -1"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS((void)sams::evaluate_loss(sams::robust_loss{.beta = 1.0, .label_smoothing = 0.6}, b),
                         doctest::Contains("robust_loss.label_smoothing: must be in [0, 0.5), got 0.6"),
                         sams::invalid_argument);
    CHECK_THROWS_WITH_AS((void)sams::evaluate_loss(sams::simpo_loss{.gamma = nan}, b),
                         doctest::Contains("simpo_loss.gamma"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS((void)sams::evaluate_loss(sams::hinge_loss{.beta = 0.0}, b),
                         doctest::Contains("hinge_loss.beta"), sams::invalid_argument);
    for (const double bad : {0.0, -2.0, nan}) {
        CHECK_THROWS_AS(sams::ipo_loss{.beta = bad}.validate(), sams::invalid_argument);
        CHECK_THROWS_AS(sams::nca_pair_loss{.beta = bad}.validate(), sams::invalid_argument);
        CHECK_THROWS_AS(sams::apo_zero_loss{.beta = bad}.validate(), sams::invalid_argument);
        CHECK_THROWS_AS(sams::sppo_hard_loss{.beta = bad}.validate(), sams::invalid_argument);
        CHECK_THROWS_AS(sams::sigmoid_norm_loss{.beta = bad}.validate(), sams::invalid_argument);
    }
}

TEST_CASE("a rejected batch leaves the output untouched") {
    const auto data = four_pairs<double>();
    sams::pair_stats<double> out;
    sams::evaluate_loss(sams::loss_config{}, data.view(), out);
    const auto before = out;
    auto bad = data;
    bad.a_l[3] = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(sams::evaluate_loss(sams::loss_config{.beta = 0.3}, bad.view(), out), sams::invalid_argument);
    auto shorter = data.view();
    shorter.policy_chosen = shorter.policy_chosen.first(2);  // would shrink out if written
    CHECK_THROWS_AS(sams::evaluate_loss(sams::loss_config{.beta = 0.3}, shorter, out), sams::invalid_argument);
    CHECK_THROWS_AS(sams::evaluate_loss(sams::loss_config{.beta = -0.3}, data.view(), out), sams::invalid_argument);
    CHECK(out.loss == before.loss);
    CHECK(out.d_policy_chosen == before.d_policy_chosen);
    CHECK(out.d_policy_rejected == before.d_policy_rejected);
    CHECK(out.chosen_reward == before.chosen_reward);
    CHECK(out.rejected_reward == before.rejected_reward);
    CHECK(out.margin == before.margin);
    CHECK(out.summary.loss == before.summary.loss);
    CHECK(out.summary.accuracy == before.summary.accuracy);
}

TEST_CASE("evaluate_loss allocates nothing once the output has capacity") {
    const auto data = four_pairs<double>();
    const auto batch = data.view();
    sams::pair_stats<double> out;
    sams::evaluate_loss(sams::loss_config{}, batch, out);  // sizes the buffers
    const auto* storage = out.loss.data();
    for (int k = 0; k <= static_cast<int>(sams::loss_kind::sppo_hard); ++k) {
        const sams::loss_config config{.kind = static_cast<sams::loss_kind>(k), .label_smoothing = 0.1};
        const std::size_t before = sams_test::allocations();
        sams::evaluate_loss(config, batch, out);
        sams::evaluate_loss(squared_hinge_loss{}, batch, out);
        const std::size_t during = sams_test::allocations() - before;
        CHECK(during == 0);
    }
    CHECK(out.loss.data() == storage);
    // A smaller batch reuses the same buffers too.
    auto smaller = batch;
    smaller.policy_chosen = smaller.policy_chosen.first(2);
    smaller.policy_rejected = smaller.policy_rejected.first(2);
    smaller.reference_chosen = smaller.reference_chosen.first(2);
    smaller.reference_rejected = smaller.reference_rejected.first(2);
    smaller.chosen_length = {};
    smaller.rejected_length = {};
    const std::size_t before = sams_test::allocations();
    sams::evaluate_loss(sams::loss_config{}, smaller, out);
    CHECK(sams_test::allocations() == before);
    CHECK(out.size() == 2);
}

// ---------------------------------------------------------------------------------------------
// A user loss through evaluate_loss.

TEST_CASE_TEMPLATE("a user-defined loss plugs into evaluate_loss", T, float, double) {
    const auto data = four_pairs<T>();
    const auto stats = sams::evaluate_loss(squared_hinge_loss{.beta = 0.5}, data.view());
    // β = 1/2, h = 0, ln 3, -ln 3, 2 ln 3: slack = max(0, 1 - h/2) = 1, 0.45, 1.55, 0 (ln 3 > 1),
    // ℓ = slack², ∂ℓ/∂a_w = -2·β·slack = -slack.
    const double h[] = {0.0, ln3, -ln3, 2 * ln3};
    double mean = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        const double slack = std::max(0.0, 1 - 0.5 * h[i]);
        CHECK(stats.loss[i] == approx<T>(slack * slack));
        CHECK(stats.d_policy_chosen[i] == approx<T>(-slack));
        CHECK(stats.d_policy_rejected[i] == approx<T>(slack));
        CHECK(stats.margin[i] == approx<T>(0.5 * h[i]));
        mean += slack * slack / 4;
    }
    CHECK(stats.summary.loss == approx<T>(mean));
    CHECK(stats.summary.accuracy == doctest::Approx(0.5));
    // Its needs_reference() is honoured, and its validate() is called.
    auto no_ref = data.view();
    no_ref.reference_chosen = {};
    no_ref.reference_rejected = {};
    CHECK_THROWS_WITH_AS((void)sams::evaluate_loss(squared_hinge_loss{}, no_ref),
                         doctest::Contains("reference_chosen is empty, but the loss needs"), sams::invalid_argument);
    CHECK_THROWS_WITH_AS((void)sams::evaluate_loss(squared_hinge_loss{.beta = 0.0}, data.view()),
                         doctest::Contains("squared_hinge_loss.beta: must be > 0"), sams::invalid_argument);
}

TEST_CASE("loss names and config requirements") {
    CHECK(sams::loss_name(sams::loss_kind::sigmoid) == "sigmoid");
    CHECK(sams::loss_name(sams::loss_kind::simpo) == "simpo");
    CHECK(sams::loss_name(sams::loss_kind::sppo_hard) == "sppo_hard");
    CHECK(sams::loss_name(static_cast<sams::loss_kind>(42)) == "unknown");
    CHECK_FALSE(sams::loss_config{.kind = sams::loss_kind::simpo}.needs_reference());
    CHECK(sams::loss_config{.kind = sams::loss_kind::nca_pair}.needs_reference());
    CHECK_FALSE(sams::loss_config{.kind = sams::loss_kind::apo_zero}.needs_lengths());
}
