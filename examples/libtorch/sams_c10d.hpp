// The torch.distributed (c10d) adapter: sams::communicator over any c10d::ProcessGroup, so
// distributed_scheduler runs on the process group a LibTorch trainer already has. Tested
// with gloo on the CPU (Debian's libtorch-dev 1.13 ships ProcessGroupGloo in libtorch_cpu;
// its header needs gloo's, from libgloo-dev, and USE_C10D_GLOO defined). For NCCL pass a
// CUDA device: host buffers are staged through device tensors (not exercised here: the
// Debian build has no CUDA).
#pragma once

#include <torch/torch.h>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sams/core/error.hpp>
#include <sams/distributed/communicator.hpp>

namespace sams::libtorch {

class c10d_communicator {
public:
    /// @param group   the trainer's process group (gloo, NCCL, MPI, ...)
    /// @param device  where the group's collectives take their tensors: CPU for gloo
    explicit c10d_communicator(c10::intrusive_ptr<c10d::ProcessGroup> group,
                               torch::Device device = torch::kCPU)
        : group_(std::move(group)), device_(device) {
        sams::detail::require(group_.defined(), "c10d_communicator", "the process group is null");
    }

    [[nodiscard]] int rank() const { return group_->getRank(); }
    [[nodiscard]] int size() const { return group_->getSize(); }
    [[nodiscard]] const c10::intrusive_ptr<c10d::ProcessGroup>& group() const noexcept { return group_; }

    /// c10d's allgather wants equal sizes: every rank sends max(counts) bytes, and the
    /// padding is dropped on receipt.
    void all_gather(std::span<const std::byte> send, std::span<std::byte> recv,
                    std::span<const std::size_t> counts) {
        constexpr const char* where = "c10d_communicator::all_gather";
        sams::detail::check_gather_args(send.size(), recv.size(), counts, rank(), size(), true, where);
        const std::size_t most = *std::max_element(counts.begin(), counts.end());
        if (most == 0) return;  // every rank knows the counts, so every rank skips
        std::vector<at::Tensor> in{padded(send, most)};
        std::vector<std::vector<at::Tensor>> out(1);
        for (int r = 0; r < size(); ++r)
            out[0].push_back(torch::empty({static_cast<std::int64_t>(most)}, bytes()));
        run(where, [&] { return group_->allgather(out, in); });
        unpad(out[0], recv, counts);
    }

    void gather(std::span<const std::byte> send, std::span<std::byte> recv,
                std::span<const std::size_t> counts, int root) {
        constexpr const char* where = "c10d_communicator::gather";
        sams::detail::check_root(root, size(), where);
        sams::detail::check_gather_args(send.size(), recv.size(), counts, rank(), size(), rank() == root,
                                        where);
        const std::size_t most = *std::max_element(counts.begin(), counts.end());
        if (most == 0) return;
        std::vector<at::Tensor> in{padded(send, most)};
        std::vector<std::vector<at::Tensor>> out(rank() == root ? 1 : 0);
        if (rank() == root)
            for (int r = 0; r < size(); ++r)
                out[0].push_back(torch::empty({static_cast<std::int64_t>(most)}, bytes()));
        c10d::GatherOptions o;
        o.rootRank = root;
        run(where, [&] { return group_->gather(out, in, o); });
        if (rank() == root) unpad(out[0], recv, counts);
    }

    void broadcast(std::span<std::byte> buffer, int root) {
        constexpr const char* where = "c10d_communicator::broadcast";
        sams::detail::check_root(root, size(), where);
        if (buffer.empty()) return;  // same size on every rank, so every rank skips
        std::vector<at::Tensor> t{staged(buffer.data(), buffer.size())};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        run(where, [&] { return group_->broadcast(t, o); });
        copy_back(t[0], buffer.data(), buffer.size());
    }

    void all_reduce(std::span<double> values, reduce_op op) {
        constexpr const char* where = "c10d_communicator::all_reduce";
        if (values.empty()) return;
        at::Tensor host =
            torch::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, torch::kFloat64);
        std::vector<at::Tensor> t{device_.is_cpu() ? host : host.to(device_)};
        c10d::AllreduceOptions o;
        o.reduceOp = op == reduce_op::sum   ? c10d::ReduceOp::SUM
                     : op == reduce_op::min ? c10d::ReduceOp::MIN
                                            : c10d::ReduceOp::MAX;
        run(where, [&] { return group_->allreduce(t, o); });
        if (!device_.is_cpu()) host.copy_(t[0].cpu());
    }

private:
    [[nodiscard]] torch::TensorOptions bytes() const {
        return torch::TensorOptions(torch::kUInt8).device(device_);
    }

    at::Tensor padded(std::span<const std::byte> send, std::size_t n) const {
        at::Tensor t = torch::zeros({static_cast<std::int64_t>(n)}, torch::kUInt8);
        if (!send.empty()) std::memcpy(t.data_ptr(), send.data(), send.size());
        return device_.is_cpu() ? t : t.to(device_);
    }
    at::Tensor staged(std::byte* data, std::size_t n) const {
        at::Tensor host = torch::from_blob(data, {static_cast<std::int64_t>(n)}, torch::kUInt8);
        return device_.is_cpu() ? host : host.to(device_);
    }
    void copy_back(const at::Tensor& t, std::byte* data, std::size_t n) const {
        if (device_.is_cpu()) return;  // the collective wrote into the caller's memory
        const at::Tensor host = t.cpu();
        std::memcpy(data, host.data_ptr(), n);
    }
    static void unpad(const std::vector<at::Tensor>& parts, std::span<std::byte> recv,
                      std::span<const std::size_t> counts) {
        std::size_t at = 0;
        for (std::size_t r = 0; r < parts.size(); ++r) {
            const at::Tensor host = parts[r].cpu();
            if (counts[r] > 0) std::memcpy(recv.data() + at, host.data_ptr(), counts[r]);
            at += counts[r];
        }
    }
    /// Runs one collective to completion; c10d's exceptions become sams::backend_error.
    template <class Start>
    static void run(const char* where, Start&& start) {
        try {
            start()->wait();
        } catch (const sams::error&) {
            throw;
        } catch (const std::exception& e) {
            throw sams::backend_error(std::string(where) + ": " + e.what());
        }
    }

    c10::intrusive_ptr<c10d::ProcessGroup> group_;
    torch::Device device_;
};

static_assert(sams::communicator<c10d_communicator>, "c10d_communicator must model sams::communicator");

}  // namespace sams::libtorch
