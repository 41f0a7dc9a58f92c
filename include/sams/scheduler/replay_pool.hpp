// The replay pool of sams_scheduler: past (context, reward target) rows in backend storage,
// and with reward_config.reference_compat also their φ and stored f2 targets. Which slot a
// row goes to is reservoir_index's job; this type owns the rows, grows their storage
// geometrically up to the capacity, and gathers replayed rows for a lagged update.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <sams/backend/concept.hpp>
#include <sams/core/rng.hpp>
#include <sams/scheduler/reservoir.hpp>

namespace sams {

/// At most `capacity_rows` rows of width `context_dim` (contexts) plus one target each;
/// with `with_features`, also a φ row of width `feature_dim` and an f2 target per row.
/// The backend is passed to every call that touches storage (the scheduler owns it).
template <backend Backend>
class replay_pool {
public:
    using value_type = backend_value_t<Backend>;
    using matrix = backend_matrix_t<Backend>;
    using vector = backend_vector_t<Backend>;

    /// Throws sams::invalid_argument if capacity_rows is 0.
    replay_pool(std::size_t capacity_rows, std::size_t context_dim, std::size_t feature_dim,
                bool with_features)
        : index_(capacity_rows),
          context_dim_(context_dim),
          feature_dim_(feature_dim),
          with_features_(with_features) {}

    [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return index_.capacity(); }
    /// Rows ever offered (what the reservoir's acceptance probability depends on).
    [[nodiscard]] std::uint64_t seen() const noexcept { return index_.seen(); }
    /// Whether φ rows and f2 targets are stored (reference_compat).
    [[nodiscard]] bool with_features() const noexcept { return with_features_; }

    /// Up to m distinct stored slots, ascending, drawn uniformly (see reservoir_index::sample).
    /// Draw before offer() of the rows being rewarded, so none is replayed against itself.
    void sample(std::size_t m, rng& gen, std::vector<std::size_t>& slots) const {
        index_.sample(m, gen, slots);
    }

    /// x, y = the contexts and targets stored at `slots`.
    void gather(Backend& be, std::span<const std::size_t> slots, matrix& x, vector& y) const {
        be.gather_rows(contexts_, slots, x);
        be.gather(targets_, slots, y);
    }
    /// phi, y2 = the stored φ rows and f2 targets at `slots` (with_features() only).
    void gather_features(Backend& be, std::span<const std::size_t> slots, matrix& phi, vector& y2) const {
        be.gather_rows(phi_, slots, phi);
        be.gather(explore_targets_, slots, y2);
    }

    /// The k rows (contexts x, targets y, and with_features() φ rows phi and f2 targets y2)
    /// are offered in order; the reservoir keeps some and the storage grows to hold them.
    /// Draws from `gen` as reservoir_index::offer does; phi and y2 are unused without features.
    void offer(Backend& be, rng& gen, const matrix& x, const vector& y, const matrix& phi, const vector& y2) {
        const std::size_t k = be.rows(x);
        reserve(be, k);  // before the reservoir draws: a failed allocation leaves it as it was
        index_.offer(k, gen, offer_slots_);
        keep_rows_.clear();
        write_slots_.clear();
        for (std::size_t i = 0; i < k; ++i) {
            if (offer_slots_[i] < 0) continue;
            keep_rows_.push_back(i);
            write_slots_.push_back(static_cast<std::size_t>(offer_slots_[i]));
        }
        if (keep_rows_.empty()) return;
        be.gather_rows(x, keep_rows_, x_buf_);
        be.scatter_rows(x_buf_, write_slots_, contexts_);
        be.gather(y, keep_rows_, y_buf_);
        be.scatter(y_buf_, write_slots_, targets_);
        if (with_features_) {
            be.gather_rows(phi, keep_rows_, phi_buf_);
            be.scatter_rows(phi_buf_, write_slots_, phi_);
            be.gather(y2, keep_rows_, y2_buf_);
            be.scatter(y2_buf_, write_slots_, explore_targets_);
        }
    }

    /// Storage for `extra` more rows (up to the capacity), so that offering them allocates
    /// nothing. Changes no stored row and no reservoir state.
    void reserve(Backend& be, std::size_t extra) { grow(be, size() + std::min(extra, capacity() - size())); }

    /// Sets the reservoir's count (a checkpoint's) and sizes storage for its rows, whose
    /// contents the caller then writes through the storage accessors.
    void restore(Backend& be, std::uint64_t seen) {
        index_.set_state({static_cast<std::uint64_t>(index_.capacity()), seen});
        if (index_.size() > 0) grow(be, index_.size());
    }

    // Storage, for persistence (the first size() rows are meaningful).
    [[nodiscard]] const matrix& contexts() const noexcept { return contexts_; }
    [[nodiscard]] const vector& targets() const noexcept { return targets_; }
    [[nodiscard]] const matrix& features() const noexcept { return phi_; }
    [[nodiscard]] const vector& explore_targets() const noexcept { return explore_targets_; }
    [[nodiscard]] matrix& contexts() noexcept { return contexts_; }
    [[nodiscard]] vector& targets() noexcept { return targets_; }
    [[nodiscard]] matrix& features() noexcept { return phi_; }
    [[nodiscard]] vector& explore_targets() noexcept { return explore_targets_; }

private:
    /// Grows storage geometrically up to the capacity, never beyond it; keeps stored rows.
    void grow(Backend& be, std::size_t needed) {
        if (needed <= rows_allocated_) return;
        std::size_t rows = rows_allocated_ == 0 ? needed : rows_allocated_;
        while (rows < needed) rows *= 2;
        rows = std::min(rows, index_.capacity());
        if (rows_allocated_ == 0) {
            be.resize(contexts_, rows, context_dim_);
            be.resize(targets_, rows);
        } else {
            be.resize_rows_preserve(contexts_, rows);
            be.resize_preserve(targets_, rows);
        }
        if (with_features_) {
            if (rows_allocated_ == 0) {
                be.resize(phi_, rows, feature_dim_);
                be.resize(explore_targets_, rows);
            } else {
                be.resize_rows_preserve(phi_, rows);
                be.resize_preserve(explore_targets_, rows);
            }
        }
        rows_allocated_ = rows;
    }

    reservoir_index index_;
    std::size_t context_dim_, feature_dim_;
    bool with_features_;
    std::size_t rows_allocated_ = 0;
    matrix contexts_, phi_;
    vector targets_, explore_targets_;
    // Scratch of offer(), reused across updates (not state).
    matrix x_buf_, phi_buf_;
    vector y_buf_, y2_buf_;
    std::vector<std::ptrdiff_t> offer_slots_;
    std::vector<std::size_t> keep_rows_, write_slots_;
};

}  // namespace sams
