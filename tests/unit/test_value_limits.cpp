// The accepted value range (sams/core/limits.hpp, docs/limits.md): the loss family is finite
// at every corner of it in float and double, and just outside it the input is refused with
// a message that names the field and the bound, before anything is written.
#include <doctest/doctest.h>

#include <sams/core/limits.hpp>
#include <sams/loss/evaluate.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr sams::loss_kind all_kinds[] = {
    sams::loss_kind::sigmoid,      sams::loss_kind::robust, sams::loss_kind::ipo,
    sams::loss_kind::hinge,        sams::loss_kind::sigmoid_norm, sams::loss_kind::simpo,
    sams::loss_kind::nca_pair,     sams::loss_kind::apo_zero, sams::loss_kind::sppo_hard,
};

template <class T>
struct batch {
    std::vector<T> a_w, a_l, r_w, r_l, n_w, n_l;
    sams::pair_batch<T> view() const {
        return {.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = r_w, .reference_rejected = r_l,
                .chosen_length = n_w, .rejected_length = n_l};
    }
};

/// Every corner of the accepted box: log-probs in {-L, 0, L}, lengths in {1, big}.
template <class T>
batch<T> corners(double big_length) {
    const double L = sams::limits::max_abs_log_prob;
    const double values[] = {-L, 0.0, L};
    const double lengths[] = {sams::limits::min_length, big_length};
    batch<T> b;
    for (double aw : values)
        for (double al : values)
            for (double rw : values)
                for (double rl : values)
                    for (double nw : lengths)
                        for (double nl : lengths) {
                            b.a_w.push_back(T(aw));
                            b.a_l.push_back(T(al));
                            b.r_w.push_back(T(rw));
                            b.r_l.push_back(T(rl));
                            b.n_w.push_back(T(nw));
                            b.n_l.push_back(T(nl));
                        }
    return b;
}

template <class T>
bool all_finite(const sams::pair_stats<T>& s) {
    for (const auto* v : {&s.loss, &s.d_policy_chosen, &s.d_policy_rejected, &s.chosen_reward, &s.rejected_reward,
                          &s.margin})
        for (const T x : *v)
            if (!std::isfinite(x)) return false;
    return std::isfinite(s.summary.loss) && std::isfinite(s.summary.margin) &&
           std::isfinite(s.summary.chosen_reward) && std::isfinite(s.summary.rejected_reward);
}

template <class T>
void check_corners_finite() {
    const auto b = corners<T>(T(1e30));
    for (const auto kind : all_kinds) {
        for (const bool normalize : {false, true}) {
            for (const double beta : {sams::limits::min_beta, 0.1, sams::limits::max_beta}) {
                for (const double eps : {0.0, 0.25, sams::limits::max_robust_flip_rate}) {
                    if (eps > 0.25 && kind != sams::loss_kind::robust) continue;
                    sams::loss_config c{.kind = kind, .beta = beta, .label_smoothing = eps,
                                        .simpo_gamma = sams::limits::max_abs_simpo_gamma,
                                        .length_normalize = normalize};
                    CAPTURE(sams::loss_name(kind));
                    CAPTURE(normalize);
                    CAPTURE(beta);
                    CAPTURE(eps);
                    const auto s = sams::evaluate_loss(c, b.view());
                    CHECK(all_finite(s));
                }
            }
        }
    }
}

template <class T>
std::string refusal(const sams::loss_config& c, const batch<T>& b, sams::pair_stats<T>& out) {
    try {
        sams::evaluate_loss(c, b.view(), out);
    } catch (const sams::invalid_argument& e) {
        return e.what();
    }
    return "(accepted)";
}

}  // namespace

TEST_CASE_TEMPLATE("value limits: every loss is finite at every corner of the accepted range", T, float, double) {
    check_corners_finite<T>();
}

TEST_CASE("value limits: IPO and SPPO-hard at the log-prob bound match their closed forms") {
    const double L = sams::limits::max_abs_log_prob;
    batch<double> b{{L}, {-L}, {0.0}, {0.0}, {1.0}, {1.0}};
    const double beta = 0.1, target = 1.0 / (2 * beta);
    const auto ipo = sams::evaluate_loss(sams::loss_config{.kind = sams::loss_kind::ipo, .beta = beta}, b.view());
    CHECK(ipo.loss[0] == doctest::Approx((2 * L - target) * (2 * L - target)));
    CHECK(ipo.d_policy_chosen[0] == doctest::Approx(2 * (2 * L - target)));
    const auto sppo = sams::evaluate_loss(sams::loss_config{.kind = sams::loss_kind::sppo_hard, .beta = beta}, b.view());
    CHECK(sppo.loss[0] == doctest::Approx(2 * (L - target) * (L - target)));
    // The same in float stays finite (it overflowed to inf at 1e20 before the bound).
    batch<float> f{{float(L)}, {float(-L)}, {0.f}, {0.f}, {1.f}, {1.f}};
    const auto ipo_f = sams::evaluate_loss(sams::loss_config{.kind = sams::loss_kind::ipo, .beta = beta}, f.view());
    CHECK(std::isfinite(ipo_f.loss[0]));
    CHECK(double(ipo_f.loss[0]) == doctest::Approx(ipo.loss[0]).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("value limits: outside the range the batch is refused, naming the field, output untouched", T, float,
                   double) {
    const batch<T> good{{T(-3)}, {T(-4)}, {T(-3.5)}, {T(-3.5)}, {T(2)}, {T(3)}};
    sams::pair_stats<T> out;
    sams::evaluate_loss(sams::loss_config{}, good.view(), out);
    const auto before = out.loss;
    const sams::loss_config ipo{.kind = sams::loss_kind::ipo};
    const sams::loss_config ipo_norm{.kind = sams::loss_kind::ipo, .length_normalize = true};

    SUBCASE("|log-prob| of 1e20 (IPO and SPPO-hard returned inf and 1e20 gradients)") {
        auto b = good;
        b.a_w[0] = T(1e20);
        const std::string why = refusal(ipo, b, out);
        CHECK(why.find("policy_chosen[0] is 1") != std::string::npos);
        CHECK(why.find("expected a log-prob within ±1e9") != std::string::npos);
        b = good;
        b.r_l[0] = T(-1e20);
        CHECK(refusal(sams::loss_config{.kind = sams::loss_kind::sppo_hard}, b, out).find("reference_rejected[0]") !=
              std::string::npos);
        b = good;
        b.a_l[0] = std::nextafter(T(sams::limits::max_abs_log_prob), T(INFINITY)) * T(-1);
        CHECK(refusal(ipo, b, out).find("policy_rejected[0]") != std::string::npos);
    }
    SUBCASE("a denormal, fractional or zero length (length-normalised losses went non-finite)") {
        for (const T bad : {std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::min(), T(0.5)}) {
            auto b = good;
            b.n_w[0] = bad;
            CAPTURE(bad);
            CHECK(refusal(ipo_norm, b, out).find("chosen_length[0]") != std::string::npos);
            CHECK(refusal(ipo_norm, b, out).find("expected a length >= 1") != std::string::npos);
            b = good;
            b.n_l[0] = bad;
            CHECK(refusal(sams::loss_config{.kind = sams::loss_kind::simpo}, b, out).find("rejected_length[0]") !=
                  std::string::npos);
        }
    }
    SUBCASE("β outside [1e-6, 1e6] (β = 1e300 used to pass and then fail on the margin)") {
        for (const double beta : {1e300, 1e6 * 1.0000001, 1e-300, 0.99e-6}) {
            CAPTURE(beta);
            CHECK(refusal(sams::loss_config{.beta = beta}, good, out).find("loss_config.beta: must be in [1e-6, 1e6]") !=
                  std::string::npos);
            CHECK_THROWS_WITH_AS(sams::sigmoid_loss{.beta = beta}.validate(), doctest::Contains("sigmoid_loss.beta"),
                                 sams::invalid_argument);
        }
    }
    SUBCASE("rDPO's flip rate beyond 0.49 (it divides by 1 - 2ε) and an unbounded SimPO γ") {
        CHECK(refusal(sams::loss_config{.kind = sams::loss_kind::robust, .label_smoothing = 0.4999999999}, good, out)
                  .find("at most 0.49 for the robust loss") != std::string::npos);
        CHECK_THROWS_WITH_AS(sams::robust_loss{.label_smoothing = 0.495}.validate(),
                             doctest::Contains("robust_loss.label_smoothing"), sams::invalid_argument);
        CHECK(refusal(sams::loss_config{.kind = sams::loss_kind::simpo, .simpo_gamma = 1e38}, good, out)
                  .find("loss_config.simpo_gamma") != std::string::npos);
        CHECK_THROWS_AS(sams::simpo_loss{.gamma = -2e6}.validate(), sams::invalid_argument);
        // cDPO keeps the whole [0, 0.5): it does not divide.
        CHECK(refusal(sams::loss_config{.label_smoothing = 0.4999}, good, out) == "(accepted)");
        sams::evaluate_loss(sams::loss_config{}, good.view(), out);
    }
    CHECK(out.loss == before);
}
