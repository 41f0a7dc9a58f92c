// Bookkeeping of the replay pool (docs/algorithm.md): which slot of a fixed-capacity row store each
// new row goes to (reservoir sampling, Algorithm R), and uniform draws of filled slots.
// The rows themselves live in the caller's storage; this class never allocates per row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>

namespace sams {

/// Slot assignment for a replay pool of `capacity` rows. Once full, the pool holds a
/// uniform sample of all rows ever offered: after N offers, each of them is in the pool
/// with probability capacity/N. The filled slots are always 0 … size()-1.
class reservoir_index {
public:
    /// What a checkpoint stores; `capacity` is kept to detect a mismatched pool.
    struct state_type {
        std::uint64_t capacity = 0;
        std::uint64_t seen = 0;
    };

    /// Throws sams::invalid_argument if capacity is 0.
    explicit reservoir_index(std::size_t capacity) : capacity_(capacity) {
        detail::require(capacity > 0, "sams::reservoir_index", "capacity must be >= 1");
    }

    /// Rows currently stored: min(seen, capacity).
    [[nodiscard]] std::size_t size() const noexcept {
        return seen_ < capacity_ ? static_cast<std::size_t>(seen_) : capacity_;
    }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// Rows offered since construction (or the last clear()).
    [[nodiscard]] std::uint64_t seen() const noexcept { return seen_; }
    [[nodiscard]] bool full() const noexcept { return seen_ >= capacity_; }

    /// Offers n new rows, in order. slots[r] (resized to n) is the slot to write row r into,
    /// or -1 if the row is dropped. The first `capacity` rows ever offered fill slots 0, 1,
    /// 2, … in order; after that row number t (0-based over all offers) replaces a slot
    /// drawn uniformly from [0, t] when that draw is < capacity (Algorithm R). Two rows of
    /// one call may get the same slot: write them in order, so the later row wins.
    /// Draws one rng::below per row once the pool is full, none before.
    void offer(std::size_t n, rng& gen, std::vector<std::ptrdiff_t>& slots) {
        slots.resize(n);
        for (std::size_t r = 0; r < n; ++r) {
            const std::uint64_t t = seen_++;
            if (t < capacity_) {
                slots[r] = static_cast<std::ptrdiff_t>(t);
            } else {
                const std::uint64_t j = gen.below(t + 1);
                slots[r] = j < capacity_ ? static_cast<std::ptrdiff_t>(j) : -1;
            }
        }
    }

    /// min(m, size()) distinct filled slots, uniformly without replacement, ascending.
    /// Selection sampling (Knuth's Algorithm S): one rng::below per filled slot scanned,
    /// no scratch memory. When m ≥ size() every filled slot is returned and no draw is made.
    /// Sample before offering the current batch, so a batch is never replayed against itself.
    void sample(std::size_t m, rng& gen, std::vector<std::size_t>& slots) const {
        const std::size_t n = size();
        if (m >= n) {
            slots.resize(n);
            for (std::size_t i = 0; i < n; ++i) slots[i] = i;
            return;
        }
        slots.clear();
        slots.reserve(m);
        std::size_t needed = m;
        for (std::size_t i = 0; i < n && needed > 0; ++i) {
            // Take slot i with probability needed / (slots left), exact in integers.
            if (gen.below(n - i) < needed) {
                slots.push_back(i);
                --needed;
            }
        }
    }

    /// Forgets every row (the caller's storage may keep stale bytes; they are never sampled).
    void clear() noexcept { seen_ = 0; }

    [[nodiscard]] state_type state() const noexcept { return {static_cast<std::uint64_t>(capacity_), seen_}; }
    /// Restores state(); throws sams::invalid_argument if the capacity differs.
    void set_state(const state_type& s) {
        detail::require(s.capacity == capacity_, "sams::reservoir_index::set_state",
                        [&] { return "state capacity " + std::to_string(s.capacity) + " does not match this pool's capacity " +
                            std::to_string(capacity_); });
        seen_ = s.seen;
    }

private:
    std::size_t capacity_;
    std::uint64_t seen_ = 0;
};

}  // namespace sams
