// The communicator concept: the few collectives that data-parallel scheduling needs
// (docs/distributed.md), and the single-process communicator that is the default. The
// library brings no transport of its own: adapters wrap the host's (MPI in
// sams/distributed/mpi.hpp, torch.distributed in examples/libtorch/sams_c10d.hpp).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>

#include <sams/core/error.hpp>

namespace sams {

/// Element-wise reductions for communicator::all_reduce.
enum class reduce_op { sum, min, max };

/// What sams::distributed_scheduler needs from a process group of size() ranks. Every call
/// is collective: all ranks call it, in the same order, with the same counts and root.
///
///  - `all_gather(send, recv, counts)`: rank r contributes counts[r] bytes (send.size() ==
///    counts[rank()]); every rank receives the concatenation in rank order in recv
///    (recv.size() == Σ counts). Counts may differ between ranks, and may be 0.
///  - `gather(send, recv, counts, root)`: the same, but only `root` receives (recv is
///    ignored elsewhere and may be empty).
///  - `broadcast(buffer, root)`: root's bytes replace every other rank's (same size everywhere).
///  - `all_reduce(values, op)`: element-wise over ranks, in place, identical on every rank.
///
/// Adapters throw sams::error (or a subclass) when their transport fails.
template <class C>
concept communicator = requires(C& c, std::span<const std::byte> send, std::span<std::byte> recv,
                                std::span<const std::size_t> counts, std::span<double> values, int root) {
    { c.rank() } -> std::convertible_to<int>;
    { c.size() } -> std::convertible_to<int>;
    c.all_gather(send, recv, counts);
    c.gather(send, recv, counts, root);
    c.broadcast(recv, root);
    c.all_reduce(values, reduce_op::sum);
};

namespace detail {

/// The argument checks every adapter shares: counts has one entry per rank, send matches
/// this rank's count and recv their sum (where it is used).
inline void check_gather_args(std::size_t send_size, std::size_t recv_size,
                              std::span<const std::size_t> counts, int rank, int size, bool receives,
                              const char* where) {
    require(counts.size() == static_cast<std::size_t>(size), where, [&] {
        return "counts has " + std::to_string(counts.size()) + " entries, expected one per rank (" +
               std::to_string(size) + ")";
    });
    require(send_size == counts[static_cast<std::size_t>(rank)], where, [&] {
        return "send has " + std::to_string(send_size) + " bytes, counts[" + std::to_string(rank) + "] is " +
               std::to_string(counts[static_cast<std::size_t>(rank)]);
    });
    if (!receives) return;
    std::size_t total = 0;
    for (const std::size_t n : counts) total += n;
    require(recv_size == total, where, [&] {
        return "recv has " + std::to_string(recv_size) + " bytes, expected the sum of counts (" +
               std::to_string(total) + ")";
    });
}

inline void check_root(int root, int size, const char* where) {
    require(root >= 0 && root < size, where, [&] {
        return "root " + std::to_string(root) + " is not a rank of this group of " + std::to_string(size);
    });
}

}  // namespace detail

/// One process, one rank: every collective is a copy (or nothing). The default, so a
/// single-GPU trainer pays nothing for the distributed code path.
class single_process_communicator {
public:
    [[nodiscard]] int rank() const noexcept { return 0; }
    [[nodiscard]] int size() const noexcept { return 1; }

    void all_gather(std::span<const std::byte> send, std::span<std::byte> recv,
                    std::span<const std::size_t> counts) {
        detail::check_gather_args(send.size(), recv.size(), counts, 0, 1, true,
                                  "single_process_communicator::all_gather");
        if (!send.empty()) std::memcpy(recv.data(), send.data(), send.size());
    }
    void gather(std::span<const std::byte> send, std::span<std::byte> recv,
                std::span<const std::size_t> counts, int root) {
        detail::check_root(root, 1, "single_process_communicator::gather");
        all_gather(send, recv, counts);
    }
    void broadcast(std::span<std::byte>, int root) {
        detail::check_root(root, 1, "single_process_communicator::broadcast");
    }
    void all_reduce(std::span<double>, reduce_op) {}
};

static_assert(communicator<single_process_communicator>,
              "sams::single_process_communicator must model sams::communicator");

}  // namespace sams
