// The library's documented caps (docs/limits.md): upper bounds on every size a configuration
// or a checkpoint can ask for, the accepted range of input values, and overflow-checked
// size arithmetic. One list, read by config validation, the nets, the loss family and the
// checkpoint decoder, so a value the library accepts can never hang it, exhaust memory by
// itself or overflow its arithmetic.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

namespace sams::limits {

// ---- sizes ----------------------------------------------------------------------------------
/// Widths: net.hidden, the context width D and the feature width E = H·(N-2)/s.
inline constexpr std::uint64_t max_width = std::uint64_t{1} << 20;
/// Depths: net.depth and net.explore_depth (layers, so a loop over them is short).
inline constexpr std::uint64_t max_depth = 1024;
/// Trainable parameters of one net (f1 or f2). Each is held four times (value, gradient,
/// two Adam moments). The paper's f1 at D = 4096 has about 0.25·2^30.
inline constexpr std::uint64_t max_net_parameters = std::uint64_t{1} << 32;
/// Full-batch training steps per lagged update: opt.exploit_steps and opt.explore_steps (the
/// paper uses 4; 38914 steps on a tiny net took 12 s under ASan in the fuzzer).
inline constexpr std::uint64_t max_train_steps = std::uint64_t{1} << 12;
/// pool.replay_batches (P): rows replayed per update = P·K.
inline constexpr std::uint64_t max_replay_batches = std::uint64_t{1} << 16;
/// pool.capacity_rows.
inline constexpr std::uint64_t max_pool_rows = std::uint64_t{1} << 32;
/// Elements the full pool holds: capacity_rows·(D + 1) (+ capacity_rows·(E + 1) with
/// reward.reference_compat).
inline constexpr std::uint64_t max_pool_elements = std::uint64_t{1} << 36;
/// What a checkpoint may restore into a net: |parameter| <= max_abs_restored_weight (trained
/// weights start at 1/√fan_in and move by at most the learning rate per Adam step), and Adam
/// second moments v <= max_restored_second_moment (|gradient| up to 2^32).
inline constexpr double max_abs_restored_weight = 256.0;
inline constexpr double max_restored_second_moment = 0x1p64;
/// |value| of restored activations: f1's features φ and scores, f2's stored targets.
inline constexpr double max_abs_restored_activation = 0x1p30;
/// Size of a checkpoint file that load() reads into memory.
inline constexpr std::uint64_t max_checkpoint_bytes = std::uint64_t{1} << 40;

// ---- values ---------------------------------------------------------------------------------
/// β of every loss: [min_beta, max_beta]. Keeps the margins β·h and IPO's target 1/(2β)
/// finite in float for every accepted log-prob.
inline constexpr double min_beta = 1e-6;
inline constexpr double max_beta = 1e6;
/// |log-prob| (policy and reference) that the loss family and the schedulers accept. A
/// sequence log-prob of 10^5 tokens at the float floor of a softmax (≈ -104 per token)
/// is about 10^7; beyond 10^9 no loss of the family stays meaningful in float.
inline constexpr double max_abs_log_prob = 1e9;
/// Response lengths n_w, n_l are token counts: at least 1 (so u/n never exceeds |u|).
inline constexpr double min_length = 1.0;
/// rDPO's assumed flip rate ε (label_smoothing of the robust loss): it divides by 1 - 2ε.
inline constexpr double max_robust_flip_rate = 0.49;
/// Smallest Adam ε (opt.eps) and LayerNorm ε (net.layer_norm_eps). They are doubles in the
/// configuration and cast to the scheduler's value type: a smaller one rounds to 0 in float,
/// where Adam's m/(√v + ε) is then 0/0 for a parameter whose gradient is 0, and LayerNorm's
/// 1/√(var + ε) is 1/0 for a constant row. At ε >= 1e-12, an Adam update whose second moment
/// has underflowed (|g| < 2^-75 in float) is at most lr·2^-75/ε < 3e-11·lr.
inline constexpr double min_epsilon = 1e-12;
/// |γ| of SimPO.
inline constexpr double max_abs_simpo_gamma = 1e6;
/// A scheduler accepts context values with |x| < max_abs_context = 2^14 (and so do restored
/// pools and pending rows, for contexts and pool targets). The nets' activations grow
/// linearly with the inputs, their squared errors and Adam's second moments with the fourth
/// power; this bound keeps them finite in float at realistic widths (docs/limits.md). A
/// power of two, so a backend can check it exactly by scaling (see sams_scheduler::prepare).
inline constexpr int max_abs_context_log2 = 14;
inline constexpr double max_abs_context = 16384.0;

}  // namespace sams::limits

namespace sams::detail {

/// a·b, or nothing when it does not fit in 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
    return a * b;
}
/// a + b, or nothing when it does not fit in 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
    if (b > std::numeric_limits<std::uint64_t>::max() - a) return std::nullopt;
    return a + b;
}

/// Parameters of f1 (input width d, width h, depth n) or nothing on overflow:
/// input layer h·d + h, n-2 residual blocks of h·h + 3h (linear, LayerNorm γ and β),
/// output layer h + 1.
[[nodiscard]] constexpr std::optional<std::uint64_t> residual_net_parameters(std::uint64_t d, std::uint64_t h,
                                                                             std::uint64_t n) noexcept {
    if (n < 2) return std::nullopt;
    const auto input = checked_mul(h, d);
    const auto square = checked_mul(h, h);
    if (!input || !square) return std::nullopt;
    const auto block = checked_add(*square, 3 * h);  // h < 2^32 here (h·h fitted), so 3h cannot wrap
    if (!block) return std::nullopt;
    const auto blocks = checked_mul(*block, n - 2);
    if (!blocks) return std::nullopt;
    auto total = checked_add(*input, h);
    if (total) total = checked_add(*total, *blocks);
    if (total) total = checked_add(*total, h + 1);
    return total;
}

}  // namespace sams::detail
