// The preference_loss concept (docs/losses.md): what a per-pair loss takes, what it answers, and
// the requirements a user-supplied loss must meet to plug into evaluate_loss and the scheduler.
#pragma once

#include <concepts>

namespace sams {

/// The inputs of one preference pair (docs/concepts.md), as evaluate_loss hands them to a loss.
/// Fields the batch does not carry are passed as neutral values: reference log-probs as 0,
/// lengths as 1. A loss that reads them declares so through needs_reference() /
/// needs_lengths(), and evaluate_loss then guarantees they are real (lengths > 0).
template <class T>
struct pair_input {
    T policy_chosen;       ///< a_w, summed policy log-prob of the chosen response
    T policy_rejected;     ///< a_l
    T reference_chosen;    ///< r_w (0 when the batch has no reference)
    T reference_rejected;  ///< r_l (0 when the batch has no reference)
    T chosen_length;       ///< n_w in tokens (1 when the batch has no lengths)
    T rejected_length;     ///< n_l (1 when the batch has no lengths)
};

/// A loss's answer for one pair: the value, its exact derivatives with respect to the two
/// policy log-probs (reference log-probs and lengths are constants), and the implicit
/// rewards that define the margin m = chosen_reward - rejected_reward.
template <class T>
struct pair_loss {
    T loss;               ///< ℓ
    T d_policy_chosen;    ///< ∂ℓ/∂a_w
    T d_policy_rejected;  ///< ∂ℓ/∂a_l
    T chosen_reward;      ///< β u_w; β u_w / n_w for length-normalised losses; SimPO: β a_w / n_w
    T rejected_reward;    ///< β u_l; β u_l / n_l for length-normalised losses; SimPO: β a_l / n_l
};

/// A per-pair preference loss with exact derivatives (skeleton: docs/concepts.md).
///
/// `l(p)` returns the loss, ∂ℓ/∂a_w, ∂ℓ/∂a_l and the implicit rewards for one pair;
/// `needs_reference()` says whether it reads r_w, r_l and `needs_lengths()` whether it reads
/// n_w, n_l, so that evaluate_loss can reject a batch that lacks them. An optional
/// `validate()` member that throws sams::invalid_argument is called before any evaluation.
template <class L, class T>
concept preference_loss = requires(const L& l, const pair_input<T>& p) {
    { l(p) } -> std::same_as<pair_loss<T>>;
    { l.needs_reference() } -> std::convertible_to<bool>;
    { l.needs_lengths() } -> std::convertible_to<bool>;
};

}  // namespace sams
