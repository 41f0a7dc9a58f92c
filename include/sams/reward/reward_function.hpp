// The reward customisation point (docs/algorithm.md): what a scheduler hands a reward function about
// the previous ("pending") batch, and the concept a reward function models.
// docs/concepts.md has a minimal skeleton.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>

namespace sams {

/// Everything a reward function may use to reward the rows of batch t-1 at step t.
/// The per-pair spans cover the WHOLE previous batch (B_prev entries, or empty where
/// optional); `selected` names the rows being rewarded (one target each).
template <class T>
struct reward_inputs {
    std::span<const T> margin;                ///< m_i of batch t-1 (required)
    std::span<const T> policy_chosen;         ///< a_w of batch t-1 (required by sams_reward)
    std::span<const T> chosen_length;         ///< n_w of batch t-1; empty when the host has none
    std::span<const T> chosen_reward;         ///< chosen implicit reward of batch t-1; may be empty
    std::span<const std::size_t> selected;    ///< rows of batch t-1 to reward, each < B_prev
    double previous_progress = 0.0;           ///< L_{t-1}, progress_metric of batch t-1
    double current_progress = 0.0;            ///< L_t, progress_metric of batch t

    /// B_prev, the size of the previous batch.
    [[nodiscard]] constexpr std::size_t batch_size() const noexcept { return margin.size(); }
};

/// A reward function turns reward_inputs into one target per rewarded row, and exposes its
/// mutable state (e.g. a running mean) for checkpoints:
///
/// - `r.targets(in, out)` writes out[j], the target of row in.selected[j];
///   out.size() == in.selected.size(). It validates its inputs before changing any state
///   and throws sams::invalid_argument on bad input (strong guarantee).
/// - `R::state_type` is a trivially copyable struct holding everything that changes
///   between calls; `r.state()` returns it and `r.set_state(s)` restores it, so a resumed
///   run continues bit-identically. Checkpoints store its bytes, so it should have no
///   padding (use 8-byte members). A stateless reward uses an empty struct.
template <class R, class T>
concept reward_function =
    requires { typename R::state_type; } &&
    std::is_trivially_copyable_v<typename R::state_type> &&
    requires(R& r, const R& cr, const reward_inputs<T>& in, std::span<T> out,
             const typename R::state_type& s) {
        r.targets(in, out);
        { cr.state() } -> std::convertible_to<typename R::state_type>;
        r.set_state(s);
    };

}  // namespace sams
