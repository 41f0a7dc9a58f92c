// Per-example memory of gradient agreement: for every example id, the running mean over its
// visits of the cosine between its gradient sketch and the trusted direction. Bounded by a
// capacity; when full, the least recently visited id is forgotten.
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
    explicit agreement_memory(std::size_t capacity) : capacity_(capacity) {
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
            unlink(slot);
        } else {
            if (index_.size() < capacity_) {
                slot = slots_.size();
                slots_.push_back({});
                links_.push_back({});
            } else {
                slot = tail_;  // least recently visited
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
        return e.mean();
    }

    /// The remembered mean of `id`, if it is in memory.
    [[nodiscard]] std::optional<double> mean(std::int64_t id) const {
        const auto it = index_.find(id);
        if (it == index_.end()) return std::nullopt;
        return slots_[it->second].mean();
    }
    [[nodiscard]] bool contains(std::int64_t id) const { return index_.count(id) != 0; }

    /// The entries from the most to the least recently visited (the order load() restores).
    [[nodiscard]] std::vector<agreement_entry> entries() const {
        std::vector<agreement_entry> out;
        out.reserve(index_.size());
        for (std::size_t s = head_; s != npos; s = links_[s].next) out.push_back(slots_[s]);
        return out;
    }

    /// Replaces the contents with `entries` (most recent first) and the eviction count with
    /// `evictions` (as a checkpoint stores them), after checking all entries:
    /// at most capacity() entries, distinct ids, visits ≥ 1, finite means in [−1, 1].
    /// Throws sams::invalid_argument and leaves the memory unchanged otherwise.
    void assign(std::span<const agreement_entry> entries, std::uint64_t evictions = 0) {
        constexpr const char* where = "sams::agreement_memory::assign";
        detail::require(entries.size() <= capacity_, where, [&] {
            return "entries: " + std::to_string(entries.size()) + " exceed the capacity " + std::to_string(capacity_);
        });
        agreement_memory fresh(capacity_);
        fresh.evictions_ = evictions;
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
        }
        *this = std::move(fresh);
    }

private:
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
    struct link {
        std::size_t prev = npos, next = npos;
    };

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
    std::uint64_t evictions_ = 0;
};

}  // namespace sams
