// Shared by the distributed tests (threads in tests/unit, MPI in tests/mpi, gloo in
// examples/libtorch): a deterministic stream of global batches, a rank's slice of one, the
// schedulers under test, and the bit-level comparison of a rank's decision with the
// single-process decision over the whole batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>
#include <sams/guided/guided_scheduler.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/sams_scheduler.hpp>
#include <sams/scheduler/scheduler_config.hpp>

namespace sams_test {

using T = float;
using sams_cpu = sams::sams_scheduler<sams::eigen_backend<T>>;

/// One global batch of G pairs: log-probs, reference, lengths, ids, contexts, sketches.
struct global_batch {
    std::size_t G = 0, D = 0, k = 0;
    std::vector<T> a_w, a_l, r_w, r_l, n_w, n_l, ctx, sk;
    std::vector<std::int64_t> ids;

    /// Pairs [lo, lo + n) as a rank would hold them (views into this object).
    [[nodiscard]] sams::pair_batch<T> slice(std::size_t lo, std::size_t n) const {
        sams::pair_batch<T> b;
        b.policy_chosen = std::span<const T>(a_w).subspan(lo, n);
        b.policy_rejected = std::span<const T>(a_l).subspan(lo, n);
        b.reference_chosen = std::span<const T>(r_w).subspan(lo, n);
        b.reference_rejected = std::span<const T>(r_l).subspan(lo, n);
        b.chosen_length = std::span<const T>(n_w).subspan(lo, n);
        b.rejected_length = std::span<const T>(n_l).subspan(lo, n);
        b.ids = std::span<const std::int64_t>(ids).subspan(lo, n);
        if (D) b.contexts = {ctx.data() + lo * D, n, D, D};
        if (k) b.sketches = {sk.data() + lo * k, n, k, k};
        return b;
    }
    [[nodiscard]] sams::pair_batch<T> whole() const { return slice(0, G); }
};

/// The batch of step `t`: a policy that slowly improves, so SamS's reward is not constant.
inline global_batch make_batch(std::size_t G, std::size_t D, std::size_t k, std::uint64_t t,
                               std::uint64_t seed = 7) {
    global_batch b;
    b.G = G;
    b.D = D;
    b.k = k;
    sams::rng g(seed, 1000 + t);
    const double drift = 0.02 * static_cast<double>(t);
    for (std::size_t i = 0; i < G; ++i) {
        b.a_w.push_back(static_cast<T>(-10.0 + drift + 2.0 * g.normal()));
        b.a_l.push_back(static_cast<T>(-10.0 - drift + 2.0 * g.normal()));
        b.r_w.push_back(static_cast<T>(-10.0 + g.normal()));
        b.r_l.push_back(static_cast<T>(-10.0 + g.normal()));
        b.n_w.push_back(static_cast<T>(4 + (g() % 60)));
        b.n_l.push_back(static_cast<T>(4 + (g() % 60)));
        b.ids.push_back(static_cast<std::int64_t>(t * G + i));
    }
    for (std::size_t i = 0; i < G * D; ++i) b.ctx.push_back(static_cast<T>(g.normal()));
    for (std::size_t i = 0; i < G * k; ++i) b.sk.push_back(static_cast<T>(g.normal()));
    return b;
}

inline sams::scheduler_config small_config() {
    sams::scheduler_config c;
    c.net.hidden = 16;
    c.net.depth = 3;
    c.net.block_size = 4;
    c.net.explore_depth = 2;
    c.pool.capacity_rows = 48;
    c.pool.replay_batches = 2;
    c.opt.learning_rate = 1e-3;
    c.opt.exploit_steps = 2;
    c.opt.explore_steps = 2;
    c.opt.early_stop_mse = 0.0;
    c.select.rule = sams::selection_rule::softmax_sample;  // draws from the RNG every step
    c.select.warmup_steps = 3;
    return c;
}

/// Bitwise equality (0.0 and -0.0 differ, as they would in a replay).
template <class V>
bool same_bits(const std::vector<V>& a, const V* b, std::size_t n) {
    return a.size() == n && (n == 0 || std::memcmp(a.data(), b, n * sizeof(V)) == 0);
}

/// Empty when `local` is exactly pairs [lo, lo + n) of `global`; otherwise what differs.
inline std::string compare_slice(const sams::decision<T>& local, const sams::decision<T>& global,
                                 std::size_t lo, std::size_t n) {
    std::vector<std::size_t> expected;
    for (const std::size_t i : global.selected)
        if (i >= lo && i < lo + n) expected.push_back(i - lo);
    if (local.selected != expected) return "selected";
    if (!same_bits(local.mask, global.mask.data() + lo, n)) return "mask";
    if (!same_bits(local.weight, global.weight.data() + lo, n)) return "weight";
    if (!same_bits(local.loss, global.loss.data() + lo, n)) return "loss";
    if (!same_bits(local.d_policy_chosen, global.d_policy_chosen.data() + lo, n)) return "d_policy_chosen";
    if (!same_bits(local.d_policy_rejected, global.d_policy_rejected.data() + lo, n))
        return "d_policy_rejected";
    if (global.score.empty() ? !local.score.empty() : !same_bits(local.score, global.score.data() + lo, n))
        return "score";
    if (local.metrics.step != global.metrics.step ||
        std::memcmp(&local.metrics.selected_loss, &global.metrics.selected_loss, sizeof(double)) != 0 ||
        std::memcmp(&local.metrics.batch_loss, &global.metrics.batch_loss, sizeof(double)) != 0)
        return "metrics";
    return {};
}

/// The schedulers under test, by name; all built the same way on every rank.
enum class kind { sams, full, uniform, loss, margin };
inline const char* name(kind k) {
    switch (k) {
        case kind::sams:
            return "sams_scheduler";
        case kind::full:
            return "full_batch";
        case kind::uniform:
            return "uniform_selector";
        case kind::loss:
            return "loss_selector";
        default:
            return "margin_selector";
    }
}

/// Calls f(scheduler) with a freshly built scheduler of kind `k` (context width D).
template <class F>
void with_scheduler(kind k, std::size_t D, F&& f) {
    const sams::scheduler_config c = small_config();
    switch (k) {
        case kind::sams:
            f(sams_cpu(c, D, 42));
            break;
        case kind::full:
            f(sams::full_batch<T>(c.loss, c.select));
            break;
        case kind::uniform:
            f(sams::uniform_selector<T>(c.loss, c.select, 42));
            break;
        case kind::loss:
            f(sams::loss_selector<T>(c.loss, c.select));
            break;
        case kind::margin:
            f(sams::margin_selector<T>(c.loss, c.select));
            break;
    }
}

/// Guided selection: a batch whose ids repeat (so the agreement memory is used), the
/// trusted pairs of step t, and a configuration that refreshes every 4 steps.
inline global_batch guided_batch(std::size_t G, std::size_t D, std::size_t k, std::uint64_t t) {
    global_batch b = make_batch(G, D, k, t);
    for (auto& id : b.ids) id %= 29;
    return b;
}
inline global_batch trusted_batch(std::size_t n, std::size_t k, std::uint64_t t) {
    return make_batch(n, 0, k, t, /*seed=*/11);  // its own stream: another seed
}
inline sams::guided_config guided_cfg(std::size_t k, sams::guided_drop drop = sams::guided_drop::estimated) {
    sams::guided_config c;
    c.sketch_dim = k;
    c.drop = drop;
    c.drop_fraction = 0.3;
    c.refresh_interval = 4;
    c.memory_capacity = 20;  // smaller than the ids in use: eviction too
    return c;
}

inline constexpr kind all_kinds[] = {kind::sams, kind::full, kind::uniform, kind::loss, kind::margin};

}  // namespace sams_test
