// Per-example memory of gradient agreement: for every example id, the running mean of the
// cosine between its gradient sketch and the trusted direction over its visits. Bounded by
// a capacity; when full, the least recently visited id is forgotten. A histogram of the
// remembered means is kept up to date so the noise model can be fitted in O(bins).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <sams/core/error.hpp>

namespace sams {

/// One remembered example, as checkpoints store it.
struct agreement_entry {
    std::int64_t id = 0;
    double sum = 0.0;             ///< Σ cosines over the visits
    std::uint64_t visits = 0;     ///< ≥ 1
    std::uint64_t last_step = 0;  ///< the scheduler step of the latest visit
    [[nodiscard]] double mean() const noexcept { return sum / static_cast<double>(visits); }
    friend bool operator==(const agreement_entry&, const agreement_entry&) = default;
};

class agreement_memory {
public:
    /// Histogram bins over [−1, 1] (cosines); fine enough that binning moves a fitted mean
    /// by less than 0.001.
    static constexpr std::size_t histogram_bins = 2048;

    explicit agreement_memory(std::size_t capacity) : capacity_(capacity), hist_(histogram_bins, 0) {
        detail::require(capacity > 0, "sams::agreement_memory: capacity", "must be >= 1");
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }
    /// Ids forgotten so far because the memory was full.
    [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_; }

    /// Adds one visit of `id` with agreement `cosine` (finite, in [−1, 1]) at `step` and
    /// returns the id's updated mean. A new id takes a free slot or, when the memory is full,
    /// the slot of the least recently visited id.
    double record(std::int64_t id, double cosine, std::uint64_t step) {
        auto it = index_.find(id);
        std::size_t slot;
        if (it != index_.end()) {
            slot = it->second;
            remove_from_histogram(slots_[slot].mean());
            unlink(slot);
        } else {
            if (index_.size() < capacity_) {
                slot = slots_.size();
                slots_.push_back({});
                links_.push_back({});
            } else {
                slot = tail_;  // least recently visited
                remove_from_histogram(slots_[slot].mean());
                unlink(slot);
                index_.erase(slots_[slot].id);
                ++evictions_;
            }
            slots_[slot] = agreement_entry{id, 0.0, 0, 0};
            index_.emplace(id, slot);
        }
        agreement_entry& e = slots_[slot];
        e.sum += cosine;
        e.visits += 1;
        e.last_step = step;
        push_front(slot);
        add_to_histogram(e.mean());
        return e.mean();
    }

    /// The remembered mean of `id`, if it is in memory.
    [[nodiscard]] std::optional<double> mean(std::int64_t id) const {
        const auto it = index_.find(id);
        if (it == index_.end()) return std::nullopt;
        return slots_[it->second].mean();
    }
    [[nodiscard]] bool contains(std::int64_t id) const { return index_.count(id) != 0; }

    /// Counts of remembered means per bin; bin b covers [−1 + b·w, −1 + (b+1)·w), w = 2/bins.
    [[nodiscard]] std::span<const std::uint64_t> histogram() const noexcept { return hist_; }
    [[nodiscard]] static double bin_center(std::size_t b) noexcept {
        return -1.0 + (static_cast<double>(b) + 0.5) * (2.0 / static_cast<double>(histogram_bins));
    }

    /// The entries from the most to the least recently visited (the order load() restores).
    [[nodiscard]] std::vector<agreement_entry> entries() const {
        std::vector<agreement_entry> out;
        out.reserve(index_.size());
        for (std::size_t s = head_; s != npos; s = links_[s].next) out.push_back(slots_[s]);
        return out;
    }

    /// Replaces the contents with `entries` (most recent first), after checking all of them:
    /// at most capacity() entries, distinct ids, visits ≥ 1, finite means in [−1, 1].
    /// Throws sams::invalid_argument and leaves the memory unchanged otherwise.
    void assign(std::span<const agreement_entry> entries) {
        constexpr const char* where = "sams::agreement_memory::assign";
        detail::require(entries.size() <= capacity_, where, [&] {
            return "entries: " + std::to_string(entries.size()) + " exceed the capacity " + std::to_string(capacity_);
        });
        agreement_memory fresh(capacity_);
        fresh.evictions_ = evictions_;
        for (std::size_t i = entries.size(); i-- > 0;) {
            const agreement_entry& e = entries[i];
            detail::require(e.visits >= 1, where, "entries: every entry needs visits >= 1");
            const double m = e.mean();
            detail::require(std::isfinite(m) && std::abs(m) <= 1.0 + 1e-9, where,
                            "entries: every mean must be finite and in [-1, 1]");
            detail::require(!fresh.contains(e.id), where, [&] { return "entries: id " + std::to_string(e.id) + " repeats"; });
            const std::size_t slot = fresh.slots_.size();
            fresh.slots_.push_back(e);
            fresh.links_.push_back({});
            fresh.index_.emplace(e.id, slot);
            fresh.push_front(slot);
            fresh.add_to_histogram(m);
        }
        *this = std::move(fresh);
    }

    void set_evictions(std::uint64_t n) noexcept { evictions_ = n; }

private:
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
    struct link {
        std::size_t prev = npos, next = npos;
    };

    static std::size_t bin_of(double m) noexcept {
        const double x = (m + 1.0) * 0.5 * static_cast<double>(histogram_bins);
        if (!(x > 0.0)) return 0;
        return std::min(static_cast<std::size_t>(x), histogram_bins - 1);
    }
    void add_to_histogram(double m) noexcept { ++hist_[bin_of(m)]; }
    void remove_from_histogram(double m) noexcept { --hist_[bin_of(m)]; }

    void unlink(std::size_t s) noexcept {
        link& l = links_[s];
        if (l.prev != npos) links_[l.prev].next = l.next; else head_ = l.next;
        if (l.next != npos) links_[l.next].prev = l.prev; else tail_ = l.prev;
        l = {};
    }
    void push_front(std::size_t s) noexcept {
        links_[s] = {npos, head_};
        if (head_ != npos) links_[head_].prev = s;
        head_ = s;
        if (tail_ == npos) tail_ = s;
    }

    std::size_t capacity_;
    std::unordered_map<std::int64_t, std::size_t> index_;
    std::vector<agreement_entry> slots_;
    std::vector<link> links_;
    std::size_t head_ = npos, tail_ = npos;
    std::vector<std::uint64_t> hist_;
    std::uint64_t evictions_ = 0;
};

}  // namespace sams
