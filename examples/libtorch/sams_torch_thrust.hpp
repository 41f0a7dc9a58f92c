// LibTorch tensors into the thrust session (sams_thrust_session.hpp): the scheduler runs on
// sams::thrust_backend<float> where the tensors live, reading the contexts in place. This
// header includes torch but no thrust; the session's source includes thrust but no torch.
//
// Conversions, each one copy made only when needed (the converted tensors live as long as
// the device_batch): dtype to float32; log-probs and lengths to contiguous [B]; contexts to
// unit column stride (any row stride is read in place). The device is never changed: CUDA
// tensors for a session built for CUDA, CPU tensors for one built for thrust's CPP system.
#pragma once

#include <torch/torch.h>

#if defined(SAMS_TORCH_HAS_CUDA) && SAMS_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <cstddef>
#include <cstdint>
#include <string>

#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/scheduler/scheduler_config.hpp>

#include "sams_thrust_session.hpp"
#include "sams_torch.hpp"

namespace sams::libtorch {

/// The device type a thrust_session reads: CUDA when built for CUDA, else the CPU.
[[nodiscard]] inline c10::DeviceType thrust_session_device_type() noexcept {
    return thrust_session::built_for_cuda() ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
}

/// batch_tensors (contexts included, as a [B, D] tensor) as a raw_device_batch on the
/// tensors' own device. Validates shapes, dtypes and devices; messages name the tensor and
/// what was expected. Not copyable (the raw batch points into it).
class device_batch {
public:
    explicit device_batch(const batch_tensors& t, c10::DeviceType expected = thrust_session_device_type()) {
        const torch::Tensor& a_w = t.policy_chosen;
        if (!a_w.defined()) detail::reject(where, "policy_chosen", "is undefined, expected a [B] tensor");
        if (a_w.dim() != 1)
            detail::reject(where, "policy_chosen", "has shape " + detail::shape_text(a_w) + ", expected [B]");
        if (a_w.device().type() != expected)
            detail::reject(where, "policy_chosen",
                           "is on device " + a_w.device().str() + ", expected a " +
                               (expected == c10::DeviceType::CUDA
                                    ? "CUDA tensor (the thrust session was built for CUDA)"
                                    : "CPU tensor (the thrust session was built for thrust's CPP system)"));
        device_ = a_w.device();
        const std::int64_t b = a_w.size(0);
        batch_.policy_chosen = per_pair_array(a_w, "policy_chosen", b, false, policy_chosen_);
        batch_.policy_rejected =
            per_pair_array(t.policy_rejected, "policy_rejected", b, false, policy_rejected_);
        if (t.reference_chosen.defined() || t.reference_rejected.defined()) {
            batch_.reference_chosen =
                per_pair_array(t.reference_chosen, "reference_chosen", b, false, reference_chosen_);
            batch_.reference_rejected =
                per_pair_array(t.reference_rejected, "reference_rejected", b, false, reference_rejected_);
        }
        if (t.chosen_length.defined() || t.rejected_length.defined()) {
            batch_.chosen_length = per_pair_array(t.chosen_length, "chosen_length", b, true, chosen_length_);
            batch_.rejected_length =
                per_pair_array(t.rejected_length, "rejected_length", b, true, rejected_length_);
        }
        contexts(t.contexts, b);
        if (t.ids.defined()) {
            const torch::Tensor& id = t.ids;
            if (id.dim() != 1 || id.size(0) != b || id.scalar_type() != torch::kLong)
                detail::reject(
                    where, "ids",
                    "has " + detail::describe(id) + ", expected int64 [" + std::to_string(b) + "]");
            ids_ = id.detach().to(torch::kCPU).contiguous();  // host memory: diagnostics only
            batch_.ids = {ids_.data_ptr<std::int64_t>(), static_cast<std::size_t>(ids_.numel())};
        }
    }

    device_batch(const device_batch&) = delete;
    device_batch& operator=(const device_batch&) = delete;

    [[nodiscard]] const raw_device_batch& view() const noexcept { return batch_; }
    [[nodiscard]] torch::Device device() const noexcept { return device_; }
    /// True when at least one tensor had to be converted.
    [[nodiscard]] bool copied() const noexcept { return copied_; }

private:
    static constexpr const char* where = "sams::libtorch::device_batch";

    void same_device(const torch::Tensor& t, const std::string& name) const {
        if (t.device() != device_)
            detail::reject(
                where, name,
                "is on device " + t.device().str() + ", expected " + device_.str() + " like policy_chosen");
    }

    raw_array per_pair_array(const torch::Tensor& t, const std::string& name, std::int64_t b, bool counts,
                             torch::Tensor& keep) {
        if (!t.defined())
            detail::reject(where, name, "is undefined, expected a [" + std::to_string(b) + "] tensor");
        if (t.dim() != 1 || t.size(0) != b)
            detail::reject(where, name,
                           "has shape " + detail::shape_text(t) + ", expected [" + std::to_string(b) +
                               "] (one value per pair, like policy_chosen)");
        if (!t.is_floating_point() && !(counts && detail::is_index_like(t)))
            detail::reject(where, name,
                           "has dtype " + std::string(c10::toString(t.scalar_type())) +
                               ", expected float32 (or another floating type, converted once)" +
                               (counts ? " or an integer count" : ""));
        same_device(t, name);
        keep = t.detach();
        if (keep.scalar_type() != torch::kFloat) {
            copied_ = true;
            keep = keep.to(torch::kFloat);
        }
        if (!keep.is_contiguous()) {
            copied_ = true;
            keep = keep.contiguous();
        }
        return {keep.data_ptr<float>(), static_cast<std::size_t>(keep.numel())};
    }

    void contexts(const torch::Tensor& c, std::int64_t b) {
        if (!c.defined())
            detail::reject(where, "contexts",
                           "is undefined, expected a [" + std::to_string(b) + ", D] tensor");
        if (c.dim() != 2 || c.size(0) != b)
            detail::reject(
                where, "contexts",
                "has shape " + detail::shape_text(c) + ", expected [" + std::to_string(b) + ", D]");
        if (!c.is_floating_point())
            detail::reject(
                where, "contexts",
                "has dtype " + std::string(c10::toString(c.scalar_type())) + ", expected a floating type");
        same_device(c, "contexts");
        contexts_ = c.detach();
        if (contexts_.scalar_type() != torch::kFloat) {
            copied_ = true;
            contexts_ = contexts_.to(torch::kFloat);
        }
        const std::int64_t rows = contexts_.size(0), cols = contexts_.size(1);
        // In place when rows are unit-stride and do not overlap (expand() gives row stride 0).
        const bool unit_columns = cols <= 1 || contexts_.stride(1) == 1;
        const bool rows_apart = rows <= 1 || contexts_.stride(0) >= cols;
        if (!unit_columns || !rows_apart) {
            copied_ = true;
            contexts_ = contexts_.contiguous();
        }
        batch_.contexts = contexts_.data_ptr<float>();
        batch_.rows = static_cast<std::size_t>(rows);
        batch_.cols = static_cast<std::size_t>(cols);
        batch_.row_stride = rows > 1 ? static_cast<std::size_t>(contexts_.stride(0)) : 0;
    }

    torch::Tensor policy_chosen_, policy_rejected_, reference_chosen_, reference_rejected_;
    torch::Tensor chosen_length_, rejected_length_, contexts_, ids_;
    raw_device_batch batch_{};
    torch::Device device_ = torch::kCPU;
    bool copied_ = false;
};

/// A thrust_session for tensors on `device`: checks the device type against the session's
/// build and, on CUDA, allocates on that device and queues work on its current stream
/// (unless options.stream is set).
[[nodiscard]] inline thrust_session make_thrust_session(const scheduler_config& config,
                                                        std::size_t context_dim, std::uint64_t seed,
                                                        torch::Device device,
                                                        thrust_session_options options = {}) {
    if (device.type() != thrust_session_device_type())
        detail::reject("sams::libtorch::make_thrust_session", "device",
                       "is " + device.str() + ", expected " +
                           c10::DeviceTypeName(thrust_session_device_type(), /*lower_case=*/true) +
                           " (the device type this thrust session was built for)");
#if defined(SAMS_TORCH_HAS_CUDA) && SAMS_TORCH_HAS_CUDA
    if (device.is_cuda()) {
        const c10::cuda::CUDAGuard guard(device);
        if (options.stream == nullptr)
            options.stream = at::cuda::getCurrentCUDAStream(device.index()).stream();
        return thrust_session(config, context_dim, seed, options);
    }
#endif
    return thrust_session(config, context_dim, seed, options);
}

/// One scheduler step of `session` on `t` (contexts [B, D] on the tensors' device). On CUDA the
/// work is queued on the current CUDA stream of the tensors' device, so it is ordered after the
/// kernels that produced the tensors. Throws sams::invalid_argument on a bad batch, with the
/// session unchanged.
inline void thrust_step(thrust_session& session, const batch_tensors& t, decision<float>& out) {
    const device_batch batch(t);
    if (batch.view().cols != session.context_dim())
        detail::reject("sams::libtorch::thrust_step", "contexts",
                       "have " + std::to_string(batch.view().cols) +
                           " columns, expected the session's context_dim " +
                           std::to_string(session.context_dim()));
#if defined(SAMS_TORCH_HAS_CUDA) && SAMS_TORCH_HAS_CUDA
    if (batch.device().is_cuda()) {
        const c10::cuda::CUDAGuard guard(batch.device());
        session.set_stream(at::cuda::getCurrentCUDAStream(batch.device().index()).stream());
        session.step(batch.view(), out);
        return;
    }
#endif
    session.step(batch.view(), out);
}

}  // namespace sams::libtorch
