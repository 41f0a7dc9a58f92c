// The MPI adapter (needs <mpi.h>; CMake: -DSAMS_WITH_MPI=ON links MPI::MPI_CXX). It works on
// a duplicate of the host's communicator, so the library's messages never match the host's,
// and turns MPI error codes into sams::backend_error.
// sams-umbrella: exclude (needs <mpi.h>: include it explicitly, build with -DSAMS_WITH_MPI=ON)
#pragma once

#include <climits>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <mpi.h>

#include <sams/core/error.hpp>
#include <sams/distributed/communicator.hpp>

namespace sams {

class mpi_communicator {
public:
    /// Duplicates `comm` (collective over it). MPI must be initialised and stay so until
    /// this object is destroyed.
    explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) {
        check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
        // Errors come back as codes (and become exceptions) instead of aborting the job.
        check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }
    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;
    mpi_communicator(mpi_communicator&& o) noexcept
        : comm_(std::exchange(o.comm_, MPI_COMM_NULL)), rank_(o.rank_), size_(o.size_) {}
    mpi_communicator& operator=(mpi_communicator&& o) noexcept {
        if (this != &o) {
            release();
            comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
            rank_ = o.rank_;
            size_ = o.size_;
        }
        return *this;
    }
    ~mpi_communicator() { release(); }

    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] int size() const noexcept { return size_; }
    [[nodiscard]] MPI_Comm native() const noexcept { return comm_; }

    void all_gather(std::span<const std::byte> send, std::span<std::byte> recv,
                    std::span<const std::size_t> counts) {
        constexpr const char* where = "mpi_communicator::all_gather";
        detail::check_gather_args(send.size(), recv.size(), counts, rank_, size_, true, where);
        layout(counts, where);
        check(MPI_Allgatherv(send.data(), counts_[static_cast<std::size_t>(rank_)], MPI_BYTE, recv.data(),
                             counts_.data(), displs_.data(), MPI_BYTE, comm_),
              "MPI_Allgatherv");
    }
    void gather(std::span<const std::byte> send, std::span<std::byte> recv,
                std::span<const std::size_t> counts, int root) {
        constexpr const char* where = "mpi_communicator::gather";
        detail::check_root(root, size_, where);
        detail::check_gather_args(send.size(), recv.size(), counts, rank_, size_, rank_ == root, where);
        layout(counts, where);
        check(MPI_Gatherv(send.data(), counts_[static_cast<std::size_t>(rank_)], MPI_BYTE, recv.data(),
                          counts_.data(), displs_.data(), MPI_BYTE, root, comm_),
              "MPI_Gatherv");
    }
    void broadcast(std::span<std::byte> buffer, int root) {
        detail::check_root(root, size_, "mpi_communicator::broadcast");
        check(MPI_Bcast(buffer.data(), to_int(buffer.size(), "mpi_communicator::broadcast"), MPI_BYTE, root,
                        comm_),
              "MPI_Bcast");
    }
    void all_reduce(std::span<double> values, reduce_op op) {
        const MPI_Op mop = op == reduce_op::sum ? MPI_SUM : op == reduce_op::min ? MPI_MIN : MPI_MAX;
        check(MPI_Allreduce(MPI_IN_PLACE, values.data(),
                            to_int(values.size(), "mpi_communicator::all_reduce"), MPI_DOUBLE, mop, comm_),
              "MPI_Allreduce");
    }

private:
    static int to_int(std::size_t n, const char* where) {
        // MPI counts are int: a larger message would need derived datatypes.
        detail::require(n <= static_cast<std::size_t>(INT_MAX), where,
                        [&] { return std::to_string(n) + " elements exceed MPI's int count limit"; });
        return static_cast<int>(n);
    }
    void layout(std::span<const std::size_t> counts, const char* where) {
        counts_.resize(counts.size());
        displs_.resize(counts.size());
        std::size_t at = 0;
        for (std::size_t r = 0; r < counts.size(); ++r) {
            counts_[r] = to_int(counts[r], where);
            displs_[r] = to_int(at, where);
            at += counts[r];
        }
        (void)to_int(at, where);
    }
    static void check(int code, const char* call) {
        if (code == MPI_SUCCESS) return;
        char text[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(code, text, &len);
        throw backend_error(std::string("mpi_communicator: ") + call +
                            " failed: " + std::string(text, text + len));
    }
    void release() noexcept {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
        comm_ = MPI_COMM_NULL;
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0;
    int size_ = 1;
    std::vector<int> counts_, displs_;
};

static_assert(communicator<mpi_communicator>, "sams::mpi_communicator must model sams::communicator");

}  // namespace sams
