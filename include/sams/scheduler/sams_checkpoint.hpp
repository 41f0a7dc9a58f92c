// Persistence of sams_scheduler: the sections of its checkpoint (header fields, RNGs, the
// reward's state, both nets with their Adam moments, the replay pool, the pending
// selection) over the byte format of checkpoint.hpp. Backend storage travels through a host
// buffer; reading checks every count and width against the bytes left, and every restored
// value (finite tensors, non-negative second moments, generator states, a consistent pool
// and pending selection, contexts within the accepted range) before it is used, so a
// checkpoint either restores a scheduler that can step or throws sams::checkpoint_error.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/views.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/scheduler/selection.hpp>

namespace sams::detail {

/// Writes the first `rows` rows of a backend matrix (row-major), preceded by its width.
template <backend Backend>
void write_rows(Backend& be, byte_writer& w, const backend_matrix_t<Backend>& mat, std::size_t rows,
                std::vector<backend_value_t<Backend>>& host) {
    using T = backend_value_t<Backend>;
    const std::size_t cols = rows == 0 ? 0 : be.cols(mat);
    w.put<std::uint64_t>(cols);
    host.resize(be.rows(mat) * cols);
    if (rows > 0) be.download(mat, std::span<T>(host));
    w.put_array(std::span<const T>(host.data(), rows * cols));
}
/// Writes the first `rows` elements of a backend vector.
template <backend Backend>
void write_rows(Backend& be, byte_writer& w, const backend_vector_t<Backend>& vec, std::size_t rows,
                std::vector<backend_value_t<Backend>>& host) {
    using T = backend_value_t<Backend>;
    host.resize(rows == 0 ? 0 : be.size(vec));
    if (rows > 0) be.download(vec, std::span<T>(host));
    w.put_array(std::span<const T>(host.data(), rows));
}
/// The range a restored array must lie in (always finite as well).
struct value_range {
    double lo = -std::numeric_limits<double>::max();
    double hi = std::numeric_limits<double>::max();
};
/// Contexts and the targets the nets train on: |x| < limits::max_abs_context, as for inputs.
inline constexpr value_range context_range{-0x1.fffffffffffffp+13,
                                           0x1.fffffffffffffp+13};  // the double below 2^14
static_assert(0x1.fffffffffffffp+13 < limits::max_abs_context && limits::max_abs_context == 0x1p14);
/// φ, f1 scores and f2 targets restored into the pool or the pending selection.
inline constexpr value_range activation_range{-limits::max_abs_restored_activation,
                                              limits::max_abs_restored_activation};

/// Throws checkpoint_error naming `what` unless every value is finite and within `range`.
template <class T>
void check_values(std::span<const T> values, const char* what, value_range range = {}) {
    for (std::size_t i = 0; i < values.size(); ++i) {
        const auto x = static_cast<double>(values[i]);
        if (!(std::isfinite(x) && x >= range.lo && x <= range.hi))
            throw checkpoint_error(std::string("checkpoint: ") + what + "[" + std::to_string(i) +
                                   "] = " + std::to_string(x) + " is " +
                                   (std::isfinite(x) ? "out of range" : "not finite"));
    }
}

/// Reads what write_rows wrote for a matrix of rows×cols into `mat` (left alone when rows == 0).
/// The rows must be in the file before anything is allocated, and every value in `range`.
template <backend Backend>
void read_rows(Backend& be, byte_reader& r, backend_matrix_t<Backend>& mat, std::size_t rows,
               std::size_t cols, const char* what, std::vector<backend_value_t<Backend>>& host,
               value_range range = {}) {
    using T = backend_value_t<Backend>;
    const auto stored_cols = r.get<std::uint64_t>(what);
    if (rows > 0 && stored_cols != cols)
        throw checkpoint_error(std::string("checkpoint: ") + what + " has width " +
                               std::to_string(stored_cols) + ", expected " + std::to_string(cols));
    r.require_elements(rows, cols * sizeof(T), what);  // so rows·cols cannot wrap below
    r.get_array(host, what, rows * cols);
    check_values(std::span<const T>(host), what, range);
    if (rows > 0) be.upload(matrix_view<const T>{host.data(), rows, cols, cols}, mat);
}
template <backend Backend>
void read_rows(Backend& be, byte_reader& r, backend_vector_t<Backend>& vec, std::size_t rows,
               const char* what, std::vector<backend_value_t<Backend>>& host, value_range range = {}) {
    using T = backend_value_t<Backend>;
    r.get_array(host, what, rows);
    check_values(std::span<const T>(host), what, range);
    if (rows > 0) be.upload(std::span<const T>(host), vec);
}

/// Every tensor and counter a net exposes through visit_state, each behind its name.
template <backend Backend, class Net>
void write_net(Backend& be, byte_writer& w, Net& net, std::vector<backend_value_t<Backend>>& host) {
    net.visit_state([&](const char* name, auto& tensor) {
        using V = std::remove_cvref_t<decltype(tensor)>;
        w.put_tag(name);
        if constexpr (std::is_same_v<V, std::uint64_t>) {
            w.put(tensor);
        } else if constexpr (std::is_same_v<V, backend_matrix_t<Backend>>) {
            w.put<std::uint64_t>(be.rows(tensor));
            write_rows(be, w, tensor, be.rows(tensor), host);
        } else {
            write_rows(be, w, tensor, be.size(tensor), host);
        }
    });
}
/// Adam steps a restored net may have taken: far beyond any run, and ++ can never wrap to
/// 0 (the bias correction 1 - β^0 = 0 would divide by zero).
inline constexpr std::uint64_t max_restored_steps = std::uint64_t{1} << 62;

/// Reads write_net's section into a net of the same shape (checked tensor by tensor), so
/// that the restored net computes finite values on accepted inputs and its next Adam steps
/// are bounded:
///   - parameter values |w| <= limits::max_abs_restored_weight;
///   - second moments v in [0, limits::max_restored_second_moment] (v < 0 makes √v NaN);
///   - first moments |m| <= 2K·√v + 2^-20 with K = (1-β1)/√((1-β2)(1-β1²/β2)): Adam's own
///     recursion keeps |m| <= K√v (Cauchy-Schwarz; the config ensures β1² < β2), so an honest state passes
///     with room for rounding and a forged m cannot make the update lr·m̂/(√v̂+ε) explode;
///   - the step count below max_restored_steps.
template <backend Backend, class Net>
void read_net(Backend& be, byte_reader& r, Net& net, std::vector<backend_value_t<Backend>>& host,
              const optimizer_config& opt) {
    using T = backend_value_t<Backend>;
    std::vector<std::vector<T>> first_moments;
    std::size_t second_index = 0;
    const double b1 = opt.beta1, b2 = opt.beta2;
    // The config is validated: β1 = 0 or β1² < β2, so the ratio is finite.
    const double ratio =
        b1 == 0.0 ? 1.0 / std::sqrt(1.0 - b2) : (1.0 - b1) / std::sqrt((1.0 - b2) * (1.0 - b1 * b1 / b2));
    const auto check_moments = [&](const char* name) {
        if (second_index >= first_moments.size())
            throw checkpoint_error(std::string("checkpoint: ") + name + " has no first moment");
        const std::vector<T>& m = first_moments[second_index++];
        if (m.size() != host.size())
            throw checkpoint_error(std::string("checkpoint: ") + name + " has the wrong size");
        for (std::size_t i = 0; i < m.size(); ++i) {
            const double bound = 2.0 * ratio * std::sqrt(static_cast<double>(host[i])) + 0x1p-20;
            if (!(std::abs(static_cast<double>(m[i])) <= bound))
                throw checkpoint_error(std::string("checkpoint: the first moment of ") + name + "[" +
                                       std::to_string(i) + "] is inconsistent with its second moment");
        }
    };
    net.visit_state([&](const char* name, auto& tensor) {
        using V = std::remove_cvref_t<decltype(tensor)>;
        r.expect_tag(name);
        const std::string_view n(name);
        const bool is_m = n.starts_with("adam_m."), is_v = n.starts_with("adam_v.");
        const value_range range =
            is_v   ? value_range{0.0, limits::max_restored_second_moment}
            : is_m ? value_range{}
                   : value_range{-limits::max_abs_restored_weight, limits::max_abs_restored_weight};
        if constexpr (std::is_same_v<V, std::uint64_t>) {
            tensor = r.get<std::uint64_t>(name);
            if (tensor >= max_restored_steps)
                throw checkpoint_error(std::string("checkpoint: ") + name + " = " + std::to_string(tensor) +
                                       " is out of range");
            return;
        } else if constexpr (std::is_same_v<V, backend_matrix_t<Backend>>) {
            const auto rows = r.get<std::uint64_t>(name);
            if (rows != be.rows(tensor))
                throw checkpoint_error(std::string("checkpoint: tensor ") + name + " has " +
                                       std::to_string(rows) + " rows, expected " +
                                       std::to_string(be.rows(tensor)));
            read_rows(be, r, tensor, be.rows(tensor), be.cols(tensor), name, host, range);
        } else {
            read_rows(be, r, tensor, be.size(tensor), name, host, range);
        }
        if (is_m) first_moments.push_back(host);
        if (is_v) check_moments(name);
    });
}

/// The checkpoint of a sams_scheduler (a friend of it). Layout, in order: scalar size,
/// configuration, context_dim, seed, step and update counts, the dropout / selection / pool
/// RNGs, then the tagged sections "reward", "exploit", "explore", "pool", "pending".
struct sams_checkpoint {
    template <class Scheduler>
    [[nodiscard]] static std::vector<std::uint8_t> serialize(const Scheduler& s) {
        using T = typename Scheduler::value_type;
        auto& be = *s.backend_;
        std::vector<T> host;
        byte_writer w;
        w.put<std::uint32_t>(static_cast<std::uint32_t>(sizeof(T)));
        write_config(w, s.config_);
        w.put<std::uint64_t>(s.context_dim_);
        w.put<std::uint64_t>(s.seed_);
        w.put<std::uint64_t>(s.step_count_);
        w.put<std::uint64_t>(s.update_count_);
        write_rng(w, s.dropout_rng_);
        write_rng(w, s.select_rng_);
        write_rng(w, s.pool_rng_);
        w.put_tag("reward");
        const typename Scheduler::reward_type::state_type reward_state = s.reward_.state();
        w.put(reward_state);
        w.put_tag("exploit");
        write_net(be, w, *s.exploit_, host);
        w.put_tag("explore");
        write_net(be, w, *s.explore_, host);

        const auto& pool = s.pool_;
        const std::size_t rows = pool.size();
        const std::size_t feature_rows = pool.with_features() ? rows : 0;
        w.put_tag("pool");
        w.put<std::uint64_t>(rows);
        w.put<std::uint64_t>(pool.seen());
        write_rows(be, w, pool.contexts(), rows, host);
        write_rows(be, w, pool.targets(), rows, host);
        write_rows(be, w, pool.features(), feature_rows, host);
        write_rows(be, w, pool.explore_targets(), feature_rows, host);

        const auto& p = s.pending_;
        w.put_tag("pending");
        w.put<std::uint8_t>(p.active ? 1 : 0);
        if (p.active) {
            const std::vector<std::uint64_t> selected(p.selected.begin(), p.selected.end());
            w.put<double>(p.progress);
            w.put_array(std::span<const std::uint64_t>(selected));
            w.put_array(std::span<const T>(p.margin));
            w.put_array(std::span<const T>(p.policy_chosen));
            w.put_array(std::span<const T>(p.chosen_length));
            w.put_array(std::span<const T>(p.chosen_reward));
            w.put_array(std::span<const T>(p.exploit_score));
            write_rows(be, w, p.contexts, p.size(), host);
            write_rows(be, w, p.features, p.size(), host);
        }
        return frame_checkpoint(w.bytes());
    }

    /// Rebuilds a scheduler from serialize()'s bytes; throws sams::checkpoint_error on any
    /// inconsistency (never reads out of bounds).
    template <class Scheduler>
    [[nodiscard]] static Scheduler deserialize(std::span<const std::uint8_t> bytes,
                                               typename Scheduler::backend_type be,
                                               std::optional<typename Scheduler::reward_type> reward) {
        using T = typename Scheduler::value_type;
        byte_reader r(unframe_checkpoint(bytes));
        const auto scalar_size = r.get<std::uint32_t>("value size");
        if (scalar_size != sizeof(T))
            throw checkpoint_error("checkpoint: written with " + std::to_string(scalar_size) +
                                   "-byte scalars, this scheduler uses " + std::to_string(sizeof(T)));
        const scheduler_config cfg = read_config(r);
        const auto dim = r.get<std::uint64_t>("context_dim");
        const auto seed = r.get<std::uint64_t>("seed");
        if (dim == 0) throw checkpoint_error("checkpoint: context_dim is 0");
        // Sizes first, against the caps and the bytes left: the nets are built from them.
        check_nets_fit(cfg, dim, sizeof(T), r.remaining());
        try {
            Scheduler s(cfg, static_cast<std::size_t>(dim), seed, std::move(be), std::move(reward));
            read_state(s, r);
            if (!r.at_end()) throw checkpoint_error("checkpoint: trailing bytes after the last section");
            return s;
        } catch (const checkpoint_error&) {
            throw;
        } catch (const invalid_argument& e) {  // e.g. the reward refusing its stored state
            throw checkpoint_error(std::string("checkpoint: a stored value is refused (") + e.what() + ")");
        } catch (const std::bad_alloc&) {
            throw checkpoint_error("checkpoint: out of memory building the stored scheduler");
        } catch (const std::length_error&) {
            throw checkpoint_error("checkpoint: the stored scheduler is too large to build");
        }
    }

private:
    /// Everything serialize() wrote after the header fields, into a freshly constructed
    /// scheduler of the stored configuration.
    template <class Scheduler>
    static void read_state(Scheduler& s, byte_reader& r) {
        using T = typename Scheduler::value_type;
        auto& be = *s.backend_;
        const scheduler_config& config = s.config_;
        std::vector<T> host;
        s.step_count_ = r.get<std::uint64_t>("step count");
        s.update_count_ = r.get<std::uint64_t>("update count");
        // One update per step after the first; far below 2^62, so the counters never wrap.
        if (s.step_count_ >= max_restored_steps || s.update_count_ > s.step_count_)
            throw checkpoint_error("checkpoint: inconsistent step / update counts " +
                                   std::to_string(s.step_count_) + " / " + std::to_string(s.update_count_));
        read_rng(r, s.dropout_rng_, "dropout rng");
        read_rng(r, s.select_rng_, "selection rng");
        read_rng(r, s.pool_rng_, "pool rng");
        r.expect_tag("reward");
        s.reward_.set_state(r.get<typename Scheduler::reward_type::state_type>("reward state"));
        r.expect_tag("exploit");
        read_net(be, r, *s.exploit_, host, config.opt);
        r.expect_tag("explore");
        read_net(be, r, *s.explore_, host, config.opt);

        r.expect_tag("pool");
        const auto size = r.get<std::uint64_t>("pool size");
        const auto seen = r.get<std::uint64_t>("pool seen");
        const std::size_t capacity = config.pool.capacity_rows;
        if (size > capacity || seen < size || (seen > size && size != capacity) || seen >= max_restored_steps)
            throw checkpoint_error("checkpoint: inconsistent pool size " + std::to_string(size) + " / seen " +
                                   std::to_string(seen) + " for capacity " + std::to_string(capacity));
        auto& pool = s.pool_;
        const auto rows = static_cast<std::size_t>(size);
        const std::size_t feature_rows = pool.with_features() ? rows : 0;
        const std::size_t e = config.net.feature_dim();
        // The pool's rows must be in the file before storage for them is allocated.
        r.require_elements(size, (s.context_dim_ + 1 + (pool.with_features() ? e + 1 : 0)) * sizeof(T),
                           "pool rows");
        pool.restore(be, seen);
        read_rows(be, r, pool.contexts(), rows, s.context_dim_, "pool contexts", host, context_range);
        read_rows(be, r, pool.targets(), rows, "pool targets", host, context_range);
        read_rows(be, r, pool.features(), feature_rows, e, "pool features", host, activation_range);
        read_rows(be, r, pool.explore_targets(), feature_rows, "pool explore targets", host,
                  activation_range);

        auto& p = s.pending_;
        r.expect_tag("pending");
        const auto flag = r.get<std::uint8_t>("pending flag");
        if (flag > 1)
            throw checkpoint_error("checkpoint: pending flag holds " + std::to_string(flag) +
                                   ", expected 0 or 1");
        p.active = flag == 1;
        if (!p.active) {
            if (s.step_count_ != 0) throw checkpoint_error("checkpoint: no pending selection after a step");
            return;
        }
        if (s.step_count_ == 0)
            throw checkpoint_error("checkpoint: a pending selection before the first step");
        // L = mean σ(-m) lies in [0, 1].
        p.progress = r.get<double>("pending progress");
        if (!(p.progress >= 0.0 && p.progress <= 1.0))
            throw checkpoint_error("checkpoint: pending progress " + std::to_string(p.progress) +
                                   " is not in [0, 1]");
        std::vector<std::uint64_t> sel;
        r.get_array(sel, "pending selection");
        r.get_array(p.margin, "pending margins");
        check_values(std::span<const T>(p.margin), "pending margins");
        const std::size_t B = p.margin.size();
        // The selection is what choose() makes: K = selection_size(ρ, B) rows, ascending.
        if (B == 0 || sel.size() != selection_size(config.select.ratio, B))
            throw checkpoint_error("checkpoint: pending selection of " + std::to_string(sel.size()) +
                                   " rows for a batch of " + std::to_string(B));
        p.selected.clear();
        for (std::size_t j = 0; j < sel.size(); ++j) {
            if (sel[j] >= B || (j > 0 && sel[j] <= sel[j - 1]))
                throw checkpoint_error("checkpoint: pending selection indices out of range or not ascending");
            p.selected.push_back(static_cast<std::size_t>(sel[j]));
        }
        r.get_array(p.policy_chosen, "pending chosen log-probs", B);
        check_values(std::span<const T>(p.policy_chosen), "pending chosen log-probs",
                     {-limits::max_abs_log_prob, limits::max_abs_log_prob});
        r.get_array(p.chosen_length, "pending chosen lengths");
        if ((!p.chosen_length.empty() || config.reward.length_normalized_chosen) &&
            p.chosen_length.size() != B)
            throw checkpoint_error("checkpoint: pending chosen lengths do not match the batch");
        check_values(std::span<const T>(p.chosen_length), "pending chosen lengths",
                     {limits::min_length, std::numeric_limits<double>::max()});
        r.get_array(p.chosen_reward, "pending chosen rewards", B);
        check_values(std::span<const T>(p.chosen_reward), "pending chosen rewards");
        r.get_array(p.exploit_score, "pending f1 scores", sel.size());
        check_values(std::span<const T>(p.exploit_score), "pending f1 scores", activation_range);
        read_rows(be, r, p.contexts, sel.size(), s.context_dim_, "pending contexts", host, context_range);
        read_rows(be, r, p.features, sel.size(), e, "pending features", host, activation_range);
    }
};

}  // namespace sams::detail
