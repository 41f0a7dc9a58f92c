// The scheduler on sams::thrust_backend<float> behind a plain C++ interface, so that a LibTorch
// trainer can run SamS where its tensors live without compiling thrust: this header includes
// neither thrust nor torch, and its one source file (sams_thrust_session.cpp, or its .cu wrapper
// for the CUDA system) includes no torch. sams_torch_thrust.hpp turns tensors into the raw
// batch below.
//
// Pointers in raw_device_batch are backend memory: device memory when built for CUDA, host
// memory on thrust's CPP system. Each step copies the 4–6 B per-pair scalars to the host (one
// synchronisation); the B×D contexts are read in place and never leave the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <sams/core/decision.hpp>
#include <sams/scheduler/scheduler_config.hpp>

namespace sams::libtorch {

/// A 1-D float array in backend memory: pointer and element count (empty: absent).
struct raw_array {
    const float* data = nullptr;
    std::size_t size = 0;
};

/// One batch of B pairs as raw backend pointers. Optional arrays stay empty; `ids` is host memory.
struct raw_device_batch {
    raw_array policy_chosen{};        ///< a_w [B]
    raw_array policy_rejected{};      ///< a_l [B]
    raw_array reference_chosen{};     ///< r_w [B]; empty for reference-free losses
    raw_array reference_rejected{};   ///< r_l [B]
    raw_array chosen_length{};        ///< n_w [B]
    raw_array rejected_length{};      ///< n_l [B]
    const float* contexts = nullptr;  ///< rows×cols, row-major, unit column stride
    std::size_t rows = 0, cols = 0;
    std::size_t row_stride = 0;  ///< elements between rows; 0: contiguous (= cols)
    std::span<const std::int64_t> ids{};
};

struct thrust_session_options {
    bool allow_tf32 = false;  ///< CUDA only: TF32 GEMMs (see thrust_backend_options)
    bool allow_bf16 = false;  ///< CUDA only: bf16 GEMMs, before TF32 (see thrust_backend_options)
    void* stream = nullptr;   ///< CUDA only: a cudaStream_t to queue all work on; null: the default stream
};

/// sams::sams_scheduler<sams::thrust_backend<float>>, its host staging buffer reused across
/// steps, behind a pimpl. Use from one host thread at a time.
class thrust_session {
public:
    thrust_session(const scheduler_config& config, std::size_t context_dim, std::uint64_t seed,
                   const thrust_session_options& options = {});
    thrust_session(thrust_session&&) noexcept;
    thrust_session& operator=(thrust_session&&) noexcept;
    thrust_session(const thrust_session&) = delete;
    thrust_session& operator=(const thrust_session&) = delete;
    ~thrust_session();

    /// True when compiled for thrust's CUDA system (pointers must be device memory of the
    /// current device), false on the CPP system (host memory).
    [[nodiscard]] static bool built_for_cuda() noexcept;

    /// One scheduler step; throws sams::invalid_argument on a bad batch with the scheduler unchanged.
    void step(const raw_device_batch& batch, decision<float>& out);

    /// CUDA: queue further work on `stream` (a cudaStream_t), waiting for work already queued.
    /// Ignored on the CPP system, which has no streams.
    void set_stream(void* stream);

    [[nodiscard]] std::vector<std::uint8_t> serialize() const;
    /// A session resumed from serialize()'s bytes (from any backend's scheduler).
    [[nodiscard]] static thrust_session deserialize(std::span<const std::uint8_t> bytes,
                                                    const thrust_session_options& options = {});

    [[nodiscard]] const scheduler_config& config() const noexcept;
    [[nodiscard]] std::size_t context_dim() const noexcept;
    [[nodiscard]] std::uint64_t steps() const noexcept;
    /// Backend memory held by the scheduler (device memory under CUDA), and its peak.
    [[nodiscard]] std::size_t device_bytes() const noexcept;
    [[nodiscard]] std::size_t peak_device_bytes() const noexcept;

private:
    struct impl;
    explicit thrust_session(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

}  // namespace sams::libtorch
