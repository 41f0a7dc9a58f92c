// evaluate_loss(): a preference loss over a whole batch. Validates the batch against what the
// loss reads, then fills per-pair values, derivatives, implicit rewards, margins and batch means.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/views.hpp>
#include <sams/loss/concept.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/loss/losses.hpp>
#include <sams/loss/pair_stats.hpp>

namespace sams {
namespace detail {

inline constexpr const char* evaluate_loss_where = "evaluate_loss";

/// "the sigmoid loss" for shipped losses, "the loss" for a user type without a name.
template <class Loss>
std::string loss_label() {
    if constexpr (requires { std::string_view(Loss::name); })
        return "the " + std::string(Loss::name) + " loss";
    else
        return "the loss";
}

/// A field of the batch: length B, every value finite; log-probs within ±limits::max_abs_log_prob,
/// lengths (`positive`) at least limits::min_length. Within these every shipped loss is finite
/// in float and double (docs/limits.md).
template <class T>
void check_loss_field(std::span<const T> values, std::size_t batch_size, const char* name, bool positive) {
    if (values.size() != batch_size)
        fail(evaluate_loss_where, std::string(name) + " has length " + std::to_string(values.size()) +
                                      ", expected the batch size " + std::to_string(batch_size) +
                                      " (the length of policy_chosen)");
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (!std::isfinite(values[i]))
            fail(evaluate_loss_where, std::string(name) + "[" + std::to_string(i) + "] is " +
                                          number_text(double(values[i])) + ", expected a finite value");
        if (positive && !(values[i] > T(0)))
            fail(evaluate_loss_where, std::string(name) + "[" + std::to_string(i) + "] is " +
                                          number_text(double(values[i])) + ", expected a length > 0");
        if (positive && !(double(values[i]) >= limits::min_length))
            fail(evaluate_loss_where, std::string(name) + "[" + std::to_string(i) + "] is " +
                                          number_text(double(values[i])) + ", expected a length >= 1 (a token count)");
        if (!positive && !(std::abs(double(values[i])) <= limits::max_abs_log_prob))
            fail(evaluate_loss_where, std::string(name) + "[" + std::to_string(i) + "] is " +
                                          number_text(double(values[i])) + ", expected a log-prob within ±1e9");
    }
}

/// Everything evaluate_loss checks before it writes anything (contexts and ids are the
/// scheduler's business). Optional fields come in pairs: when a batch carries one reference
/// (or length) span it must carry both, even for a loss that ignores them.
template <class T, class Loss>
void check_loss_inputs(const Loss& loss, const pair_batch<T>& batch) {
    if constexpr (requires { loss.validate(); }) loss.validate();
    const std::size_t n = batch.size();
    if (n == 0)
        fail(evaluate_loss_where,
             "the batch is empty (policy_chosen has length 0), expected at least one pair");
    check_loss_field(batch.policy_chosen, n, "policy_chosen", false);
    check_loss_field(batch.policy_rejected, n, "policy_rejected", false);

    const bool needs_reference = static_cast<bool>(loss.needs_reference());
    if (needs_reference && batch.reference_chosen.empty())
        fail(evaluate_loss_where, "reference_chosen is empty, but " + loss_label<Loss>() +
                                      " needs the reference log-probs r_w and r_l");
    if (needs_reference && batch.reference_rejected.empty())
        fail(evaluate_loss_where, "reference_rejected is empty, but " + loss_label<Loss>() +
                                      " needs the reference log-probs r_w and r_l");
    if (needs_reference || batch.has_reference()) {
        check_loss_field(batch.reference_chosen, n, "reference_chosen", false);
        check_loss_field(batch.reference_rejected, n, "reference_rejected", false);
    }

    const bool needs_lengths = static_cast<bool>(loss.needs_lengths());
    if (needs_lengths && batch.chosen_length.empty())
        fail(evaluate_loss_where, "chosen_length is empty, but " + loss_label<Loss>() +
                                      " is length-normalised and needs the lengths n_w and n_l");
    if (needs_lengths && batch.rejected_length.empty())
        fail(evaluate_loss_where, "rejected_length is empty, but " + loss_label<Loss>() +
                                      " is length-normalised and needs the lengths n_w and n_l");
    if (needs_lengths || batch.has_lengths()) {
        check_loss_field(batch.chosen_length, n, "chosen_length", true);
        check_loss_field(batch.rejected_length, n, "rejected_length", true);
    }
}

/// The evaluation proper, on a batch that check_loss_inputs accepted.
template <class T, class Loss>
void evaluate_checked(const Loss& loss, const pair_batch<T>& batch, pair_stats<T>& out) {
    const std::size_t n = batch.size();
    const bool has_reference = batch.has_reference();
    const bool has_lengths = batch.has_lengths();
    out.resize(n);
    // Batch means in double: a float running sum over thousands of pairs drifts visibly.
    double sum_loss = 0.0, sum_correct = 0.0, sum_margin = 0.0, sum_chosen = 0.0, sum_rejected = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const pair_input<T> p{batch.policy_chosen[i],
                              batch.policy_rejected[i],
                              has_reference ? batch.reference_chosen[i] : T(0),
                              has_reference ? batch.reference_rejected[i] : T(0),
                              has_lengths ? batch.chosen_length[i] : T(1),
                              has_lengths ? batch.rejected_length[i] : T(1)};
        const pair_loss<T> r = loss(p);
        const T margin = r.chosen_reward - r.rejected_reward;
        out.loss[i] = r.loss;
        out.d_policy_chosen[i] = r.d_policy_chosen;
        out.d_policy_rejected[i] = r.d_policy_rejected;
        out.chosen_reward[i] = r.chosen_reward;
        out.rejected_reward[i] = r.rejected_reward;
        out.margin[i] = margin;
        sum_loss += double(r.loss);
        sum_correct += margin > T(0) ? 1.0 : 0.0;
        sum_margin += double(margin);
        sum_chosen += double(r.chosen_reward);
        sum_rejected += double(r.rejected_reward);
    }
    const double count = static_cast<double>(n);
    out.summary = {sum_loss / count, sum_correct / count, sum_margin / count, sum_chosen / count,
                   sum_rejected / count};
}

}  // namespace detail

/// Evaluates `loss` on every pair of `batch` into `out`: ℓ_i, ∂ℓ_i/∂a_w,i, ∂ℓ_i/∂a_l,i, the
/// implicit rewards, the margins m_i = chosen_reward - rejected_reward and the batch means
/// (accuracy = mean 1[m_i > 0]).
///
/// @tparam T     float or double; all per-pair arithmetic is in T, the means in double.
/// @tparam Loss  a model of sams::preference_loss<Loss, T> (docs/concepts.md).
/// @throws sams::invalid_argument, before anything is written to `out`, when the loss's
///   validate() rejects its parameters, the batch is empty, a span's length differs from
///   policy_chosen's, the loss needs reference log-probs or lengths the batch lacks, a length
///   is <= 0, or any value read is NaN or Inf. Contexts and ids are not checked.
/// Allocates nothing when `out`'s vectors already have capacity for the batch. If a user
/// loss throws from operator(), `out` is left valid but partly overwritten.
template <class T, class Loss>
    requires(!std::same_as<std::remove_cvref_t<Loss>, loss_config>)
void evaluate_loss(const Loss& loss, const pair_batch<T>& batch, pair_stats<T>& out) {
    static_assert(std::floating_point<T>, "sams::evaluate_loss: the batch's value type must be float or double");
    static_assert(preference_loss<Loss, T>,
                  "sams::evaluate_loss: the loss type does not model sams::preference_loss<Loss, T>. It needs "
                  "`sams::pair_loss<T> operator()(const sams::pair_input<T>&) const`, "
                  "`bool needs_reference() const` and `bool needs_lengths() const`; "
                  "see the skeleton in docs/concepts.md");
    if constexpr (std::floating_point<T> && preference_loss<Loss, T>) {  // no error cascade after the asserts
        detail::check_loss_inputs(loss, batch);
        detail::evaluate_checked(loss, batch, out);
    }
}

/// As above, returning a fresh pair_stats.
template <class T, class Loss>
    requires(!std::same_as<std::remove_cvref_t<Loss>, loss_config>)
[[nodiscard]] pair_stats<T> evaluate_loss(const Loss& loss, const pair_batch<T>& batch) {
    pair_stats<T> out;
    evaluate_loss(loss, batch, out);
    return out;
}

/// Evaluates the loss that `config` selects (see loss_config and docs/losses.md). Validates
/// `config` first; otherwise as the overload for a loss struct.
template <class T>
void evaluate_loss(const loss_config& config, const pair_batch<T>& batch, pair_stats<T>& out) {
    config.validate();
    visit_loss(config, [&](const auto& loss) { evaluate_loss(loss, batch, out); });
}

/// As above, returning a fresh pair_stats.
template <class T>
[[nodiscard]] pair_stats<T> evaluate_loss(const loss_config& config, const pair_batch<T>& batch) {
    pair_stats<T> out;
    evaluate_loss(config, batch, out);
    return out;
}

}  // namespace sams
