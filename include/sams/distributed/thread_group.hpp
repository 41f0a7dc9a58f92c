// An in-process group of R ranks, one thread each: a communicator for tests, for
// simulating a data-parallel run on one machine, and for hosts that shard a batch over
// threads. A rank that waits longer than the timeout in a collective (a peer never
// arrived) throws instead of hanging.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <sams/core/error.hpp>
#include <sams/distributed/communicator.hpp>

namespace sams {

/// The shared state of R thread ranks; `communicator(r)` hands out rank r's endpoint.
class thread_group {
public:
    /// @param size     R ≥ 1
    /// @param timeout  how long a rank waits for its peers in one collective before it throws
    explicit thread_group(int size, std::chrono::milliseconds timeout = std::chrono::seconds(60))
        : size_(size), timeout_(timeout), slots_(size > 0 ? static_cast<std::size_t>(size) : 0) {
        detail::require(size >= 1, "thread_group: size", "must be >= 1");
    }
    thread_group(const thread_group&) = delete;
    thread_group& operator=(const thread_group&) = delete;

    [[nodiscard]] int size() const noexcept { return size_; }

    /// Rank r's endpoint; it refers to this group, which must outlive it.
    class endpoint {
    public:
        [[nodiscard]] int rank() const noexcept { return rank_; }
        [[nodiscard]] int size() const noexcept { return group_->size_; }

        void all_gather(std::span<const std::byte> send, std::span<std::byte> recv,
                        std::span<const std::size_t> counts) {
            detail::check_gather_args(send.size(), recv.size(), counts, rank_, size(), true,
                                      "thread_group::all_gather");
            exchange(send, recv, counts, -1);
        }
        void gather(std::span<const std::byte> send, std::span<std::byte> recv,
                    std::span<const std::size_t> counts, int root) {
            detail::check_root(root, size(), "thread_group::gather");
            detail::check_gather_args(send.size(), recv.size(), counts, rank_, size(), rank_ == root,
                                      "thread_group::gather");
            exchange(send, recv, counts, root);
        }
        void broadcast(std::span<std::byte> buffer, int root) {
            detail::check_root(root, size(), "thread_group::broadcast");
            group_->slot(rank_) = {buffer.data(), buffer.size()};
            group_->wait(rank_);
            const auto& from = group_->slot(root);
            detail::require(from.size == buffer.size(), "thread_group::broadcast", [&] {
                return "rank " + std::to_string(rank_) + " has " + std::to_string(buffer.size()) +
                       " bytes, the root " + std::to_string(from.size);
            });
            if (rank_ != root && !buffer.empty()) std::memcpy(buffer.data(), from.data, buffer.size());
            group_->wait(rank_);
        }
        void all_reduce(std::span<double> values, reduce_op op) {
            group_->slot(rank_) = {values.data(), values.size() * sizeof(double)};
            group_->wait(rank_);
            // Every rank reduces in rank order, so all of them get the same bits.
            std::vector<double> result(values.size());
            for (int r = 0; r < size(); ++r) {
                const auto& s = group_->slot(r);
                detail::require(s.size == values.size() * sizeof(double), "thread_group::all_reduce",
                                "ranks passed different numbers of values");
                for (std::size_t i = 0; i < values.size(); ++i) {
                    double v;
                    std::memcpy(&v, static_cast<const std::byte*>(s.data) + i * sizeof(double),
                                sizeof(double));
                    if (r == 0)
                        result[i] = v;
                    else if (op == reduce_op::sum)
                        result[i] += v;
                    else if (op == reduce_op::min)
                        result[i] = v < result[i] ? v : result[i];
                    else
                        result[i] = v > result[i] ? v : result[i];
                }
            }
            group_->wait(rank_);  // nobody reads `values` any more
            std::copy(result.begin(), result.end(), values.begin());
        }

    private:
        friend class thread_group;
        endpoint(thread_group& g, int r) : group_(&g), rank_(r) {}

        void exchange(std::span<const std::byte> send, std::span<std::byte> recv,
                      std::span<const std::size_t> counts, int root) {
            group_->slot(rank_) = {send.data(), send.size()};
            group_->wait(rank_);
            if (root < 0 || root == rank_) {
                std::size_t at = 0;
                for (int r = 0; r < size(); ++r) {
                    const auto& s = group_->slot(r);
                    const std::size_t n = counts[static_cast<std::size_t>(r)];
                    detail::require(s.size == n, "thread_group::gather",
                                    "a rank's send size differs from counts");
                    if (n > 0) std::memcpy(recv.data() + at, s.data, n);
                    at += n;
                }
            }
            group_->wait(rank_);
        }

        thread_group* group_;
        int rank_;
    };

    [[nodiscard]] endpoint communicator(int rank) {
        detail::require(rank >= 0 && rank < size_, "thread_group::communicator", "rank out of range");
        return endpoint(*this, rank);
    }

private:
    struct posted {
        const void* data = nullptr;
        std::size_t size = 0;
    };
    posted& slot(int r) { return slots_[static_cast<std::size_t>(r)]; }

    /// A reusable barrier with a timeout.
    void wait(int rank) {
        std::unique_lock lock(mutex_);
        const std::size_t generation = generation_;
        if (++arrived_ == size_) {
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
            return;
        }
        if (!cv_.wait_for(lock, timeout_, [&] { return generation_ != generation; }))
            throw error("thread_group: rank " + std::to_string(rank) +
                        " timed out waiting for its peers in a collective");
    }

    int size_;
    std::chrono::milliseconds timeout_;
    std::vector<posted> slots_;
    std::mutex mutex_;
    std::condition_variable cv_;
    int arrived_ = 0;
    std::size_t generation_ = 0;
};

static_assert(communicator<thread_group::endpoint>,
              "sams::thread_group::endpoint must model sams::communicator");

}  // namespace sams
