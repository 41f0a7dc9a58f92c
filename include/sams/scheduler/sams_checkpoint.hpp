// Persistence of sams_scheduler: the sections of its checkpoint (header fields, RNGs, the
// reward's state, both nets with their Adam moments, the replay pool, the pending
// selection) over the byte format of checkpoint.hpp. Backend storage travels through a host
// buffer; reading checks every count and width and throws sams::checkpoint_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/scheduler_config.hpp>

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
/// Reads what write_rows wrote for a matrix of rows×cols into `mat` (left alone when rows == 0).
template <backend Backend>
void read_rows(Backend& be, byte_reader& r, backend_matrix_t<Backend>& mat, std::size_t rows,
               std::size_t cols, const char* what, std::vector<backend_value_t<Backend>>& host) {
    using T = backend_value_t<Backend>;
    const auto stored_cols = r.get<std::uint64_t>(what);
    if (rows > 0 && stored_cols != cols)
        throw checkpoint_error(std::string("checkpoint: ") + what + " has width " +
                               std::to_string(stored_cols) + ", expected " + std::to_string(cols));
    r.get_array(host, what, rows * cols);
    if (rows > 0) be.upload(matrix_view<const T>{host.data(), rows, cols, cols}, mat);
}
template <backend Backend>
void read_rows(Backend& be, byte_reader& r, backend_vector_t<Backend>& vec, std::size_t rows,
               const char* what, std::vector<backend_value_t<Backend>>& host) {
    using T = backend_value_t<Backend>;
    r.get_array(host, what, rows);
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
/// Reads write_net's section into a net of the same shape (checked tensor by tensor).
template <backend Backend, class Net>
void read_net(Backend& be, byte_reader& r, Net& net, std::vector<backend_value_t<Backend>>& host) {
    net.visit_state([&](const char* name, auto& tensor) {
        using V = std::remove_cvref_t<decltype(tensor)>;
        r.expect_tag(name);
        if constexpr (std::is_same_v<V, std::uint64_t>) {
            tensor = r.get<std::uint64_t>(name);
        } else if constexpr (std::is_same_v<V, backend_matrix_t<Backend>>) {
            const auto rows = r.get<std::uint64_t>(name);
            if (rows != be.rows(tensor))
                throw checkpoint_error(std::string("checkpoint: tensor ") + name + " has " +
                                       std::to_string(rows) + " rows, expected " +
                                       std::to_string(be.rows(tensor)));
            read_rows(be, r, tensor, be.rows(tensor), be.cols(tensor), name, host);
        } else {
            read_rows(be, r, tensor, be.size(tensor), name, host);
        }
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
        if (dim == 0 || dim > (std::uint64_t{1} << 32))
            throw checkpoint_error("checkpoint: implausible context_dim");
        Scheduler s(cfg, static_cast<std::size_t>(dim), seed, std::move(be), std::move(reward));
        read_state(s, r);
        if (!r.at_end()) throw checkpoint_error("checkpoint: trailing bytes after the last section");
        return s;
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
        read_rng(r, s.dropout_rng_, "dropout rng");
        read_rng(r, s.select_rng_, "selection rng");
        read_rng(r, s.pool_rng_, "pool rng");
        r.expect_tag("reward");
        s.reward_.set_state(r.get<typename Scheduler::reward_type::state_type>("reward state"));
        r.expect_tag("exploit");
        read_net(be, r, *s.exploit_, host);
        r.expect_tag("explore");
        read_net(be, r, *s.explore_, host);

        r.expect_tag("pool");
        const auto size = r.get<std::uint64_t>("pool size");
        const auto seen = r.get<std::uint64_t>("pool seen");
        const std::size_t capacity = config.pool.capacity_rows;
        if (size > capacity || seen < size || (seen > size && size != capacity))
            throw checkpoint_error("checkpoint: inconsistent pool size " + std::to_string(size) + " / seen " +
                                   std::to_string(seen) + " for capacity " + std::to_string(capacity));
        auto& pool = s.pool_;
        const auto rows = static_cast<std::size_t>(size);
        const std::size_t feature_rows = pool.with_features() ? rows : 0;
        const std::size_t e = config.net.feature_dim();
        pool.restore(be, seen);
        read_rows(be, r, pool.contexts(), rows, s.context_dim_, "pool contexts", host);
        read_rows(be, r, pool.targets(), rows, "pool targets", host);
        read_rows(be, r, pool.features(), feature_rows, e, "pool features", host);
        read_rows(be, r, pool.explore_targets(), feature_rows, "pool explore targets", host);

        auto& p = s.pending_;
        r.expect_tag("pending");
        p.active = r.get<std::uint8_t>("pending flag") != 0;
        if (!p.active) return;
        p.progress = r.get<double>("pending progress");
        std::vector<std::uint64_t> sel;
        r.get_array(sel, "pending selection");
        r.get_array(p.margin, "pending margins");
        const std::size_t B = p.margin.size();
        if (sel.empty() || sel.size() > B)
            throw checkpoint_error("checkpoint: pending selection of " + std::to_string(sel.size()) +
                                   " rows for a batch of " + std::to_string(B));
        p.selected.clear();
        for (const auto i : sel) {
            if (i >= B) throw checkpoint_error("checkpoint: pending selection index out of range");
            p.selected.push_back(static_cast<std::size_t>(i));
        }
        r.get_array(p.policy_chosen, "pending chosen log-probs", B);
        r.get_array(p.chosen_length, "pending chosen lengths");
        if (!p.chosen_length.empty() && p.chosen_length.size() != B)
            throw checkpoint_error("checkpoint: pending chosen lengths do not match the batch");
        r.get_array(p.chosen_reward, "pending chosen rewards", B);
        r.get_array(p.exploit_score, "pending f1 scores", sel.size());
        read_rows(be, r, p.contexts, sel.size(), s.context_dim_, "pending contexts", host);
        read_rows(be, r, p.features, sel.size(), e, "pending features", host);
    }
};

}  // namespace sams::detail
