// Adapters between a GPU trainer's buffers and the scheduler on sams::thrust_backend:
// zero-copy views of thrust::device_vector, thrust::device_ptr and raw device pointers, a
// device_pair_batch that holds them, and host_staging, which copies the batch's few per-pair
// scalars (log-probs, lengths) to the host while the B×D contexts stay on the device.
//
// Why the scalars are staged: the decision (selected indices, weights) is made and returned
// on the host, and the loss family that feeds it runs there on B-element arrays, so a device
// round trip is needed each step anyway; staging 4–6 × B scalars into one pinned buffer with
// one stream synchronisation costs microseconds, whereas the contexts (B×D, e.g. 64×4096
// floats) are read only by the nets and never leave the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <thrust/device_ptr.h>
#include <thrust/device_vector.h>

#include <sams/backend/thrust/thrust_backend.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// A non-owning 1-D array in device memory (host memory on thrust's CPP/OMP systems):
/// pointer and element count. Converts from thrust::device_vector, thrust::device_ptr + count
/// and a raw device pointer + count, e.g. what tensor.data_ptr() of a host framework gives.
template <class T>
struct device_array {
    const T* data = nullptr;
    std::size_t size = 0;

    constexpr device_array() = default;
    constexpr device_array(const T* p, std::size_t n) noexcept : data(p), size(n) {}
    device_array(thrust::device_ptr<const T> p, std::size_t n) noexcept : data(thrust::raw_pointer_cast(p)), size(n) {}
    device_array(thrust::device_ptr<T> p, std::size_t n) noexcept : data(thrust::raw_pointer_cast(p)), size(n) {}
    template <class Alloc>
    device_array(const thrust::device_vector<T, Alloc>& v)  // NOLINT(google-explicit-constructor): a view, like std::span
        : data(thrust::raw_pointer_cast(v.data())), size(v.size()) {}

    [[nodiscard]] constexpr bool empty() const noexcept { return size == 0; }
};

/// A row-major rows×cols view of device memory (row_stride 0: contiguous rows), checked
/// against the vector's size. The scheduler reads it in place: no copy to the host.
template <class T, class Alloc>
matrix_view<const T> device_matrix(const thrust::device_vector<T, Alloc>& v, std::size_t rows, std::size_t cols,
                                   std::size_t row_stride = 0) {
    const matrix_view<const T> view{thrust::raw_pointer_cast(v.data()), rows, cols, row_stride};
    detail::require(view.stride() >= cols, "device_matrix: row_stride", "must be 0 or >= cols");
    detail::require(rows == 0 || (rows - 1) * view.stride() + cols <= v.size(), "device_matrix: v",
                    "holds " + std::to_string(v.size()) + " elements, fewer than rows x row_stride needs");
    return view;
}

/// The same over a thrust::device_ptr (no size to check against).
template <class T>
matrix_view<const T> device_matrix(thrust::device_ptr<const T> p, std::size_t rows, std::size_t cols,
                                   std::size_t row_stride = 0) {
    return {thrust::raw_pointer_cast(p), rows, cols, row_stride};
}
template <class T>
matrix_view<const T> device_matrix(thrust::device_ptr<T> p, std::size_t rows, std::size_t cols,
                                   std::size_t row_stride = 0) {
    return {thrust::raw_pointer_cast(p), rows, cols, row_stride};
}

/// One batch as a GPU trainer holds it: the fields of sams::pair_batch, with the scalar
/// arrays in device memory. Optional arrays stay empty. `ids` (diagnostics only) is host memory.
template <class T>
struct device_pair_batch {
    device_array<T> policy_chosen{};       ///< a_w
    device_array<T> policy_rejected{};     ///< a_l
    device_array<T> reference_chosen{};    ///< r_w; empty for reference-free losses
    device_array<T> reference_rejected{};  ///< r_l
    device_array<T> chosen_length{};       ///< n_w
    device_array<T> rejected_length{};     ///< n_l
    matrix_view<const T> contexts{};       ///< B×D contexts in device memory; stays there
    std::span<const std::int64_t> ids{};   ///< optional, host memory

    [[nodiscard]] constexpr std::size_t size() const noexcept { return policy_chosen.size; }
};

/// Copies the per-pair scalars of a device_pair_batch into host memory it owns and returns
/// a sams::pair_batch over them whose `contexts` still point to device memory, ready for
/// sams_scheduler<thrust_backend<T>>::step(). Each array is one cudaMemcpyAsync into one
/// pinned buffer on the backend's stream, followed by one synchronisation, so the copies are
/// ordered after the host's kernels that produced the log-probs on that stream.
///
///     sams::host_staging<float> staging;                 // reuse across steps: no allocation
///     const auto& batch = staging.stage(device_batch, scheduler.backend());
///     const auto decision = scheduler.step(batch);
///
/// The returned batch is valid until the next stage() call or the staging object's end.
template <class T>
class host_staging {
public:
    host_staging() = default;
    host_staging(const host_staging&) = delete;
    host_staging& operator=(const host_staging&) = delete;

    const pair_batch<T>& stage(const device_pair_batch<T>& batch, const thrust_backend<T>& be) {
        constexpr const char* where = "host_staging::stage";
        const device_array<T>* fields[] = {&batch.policy_chosen,  &batch.policy_rejected, &batch.reference_chosen,
                                           &batch.reference_rejected, &batch.chosen_length, &batch.rejected_length};
        static constexpr const char* names[] = {"policy_chosen",      "policy_rejected", "reference_chosen",
                                                "reference_rejected", "chosen_length",   "rejected_length"};
        std::size_t total = 0;
        for (std::size_t f = 0; f < 6; ++f) {
            thrust_backend<T>::check_pointer(fields[f]->data, fields[f]->size, where, names[f]);
            total += fields[f]->size;
        }
        T* host = reserve(total);
        std::size_t offset = 0;
        std::span<const T> spans[6];
        for (std::size_t f = 0; f < 6; ++f) {
            be.copy_to_host_async(fields[f]->data, fields[f]->size, host + offset, where);
            spans[f] = std::span<const T>(host + offset, fields[f]->size);
            offset += fields[f]->size;
        }
        be.synchronize();
        staged_ = pair_batch<T>{spans[0], spans[1], spans[2], spans[3], spans[4], spans[5], batch.contexts, batch.ids};
        return staged_;
    }

    /// The batch of the last stage() call.
    [[nodiscard]] const pair_batch<T>& batch() const noexcept { return staged_; }

private:
    T* reserve(std::size_t n) {
#if SAMS_THRUST_CUDA
        host_.reserve(n, "host_staging::stage");
        return host_.data();
#else
        if (host_.size() < n) host_.resize(n);
        return host_.data();
#endif
    }

#if SAMS_THRUST_CUDA
    detail::pinned_host_buffer<T> host_;
#else
    std::vector<T> host_;
#endif
    pair_batch<T> staged_{};
};

}  // namespace sams
