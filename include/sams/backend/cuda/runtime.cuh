// The CUDA runtime and cuBLAS pieces of sams::thrust_backend (nvcc only): error translation
// to sams::backend_error, pointer checks, raw device and pinned allocations, the cuBLAS
// handle, and a caching allocator for thrust's temporary storage.
#pragma once

#if !defined(__CUDACC__)
#error "sams/backend/cuda/*.cuh are CUDA headers: compile this translation unit with nvcc"
#endif

#include <cstddef>
#include <cstdint>
#include <map>
#include <new>
#include <string>
#include <utility>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <sams/core/error.hpp>

namespace sams::detail {

/// Throws sams::backend_error("<where>: <CUDA error name>: <CUDA error text>") unless ok.
inline void cuda_check(cudaError_t status, const char* where) {
    if (status == cudaSuccess) return;
    throw backend_error(std::string(where) + ": " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

/// Throws sams::backend_error with cuBLAS's own status text unless ok.
inline void cublas_check(cublasStatus_t status, const char* where) {
    if (status == CUBLAS_STATUS_SUCCESS) return;
    throw backend_error(std::string(where) + ": cuBLAS: " + cublasGetStatusString(status));
}

/// Checks a pointer handed to the backend by the host: null (when count > 0), misaligned
/// for its element type, or device memory of another device are sams::invalid_argument
/// naming the argument. Host memory (pageable or pinned) and managed memory pass: every
/// transfer uses cudaMemcpyDefault, which reads both under unified addressing.
inline void check_user_pointer(const void* p, std::size_t count, std::size_t alignment, const char* where,
                               const char* name) {
    if (count == 0) return;
    if (p == nullptr) throw invalid_argument(std::string(where) + ": " + name + " is null");
    if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0)
        throw invalid_argument(std::string(where) + ": " + name + " is not aligned to " + std::to_string(alignment) +
                               " bytes (the size of its element type)");
    cudaPointerAttributes attr{};
    const cudaError_t st = cudaPointerGetAttributes(&attr, p);
    if (st != cudaSuccess) {
        (void)cudaGetLastError();  // not sticky: clear it so the next call does not report it
        throw invalid_argument(std::string(where) + ": " + name + " is not a pointer CUDA can use (" +
                               cudaGetErrorString(st) + ")");
    }
    if (attr.type == cudaMemoryTypeDevice) {
        int current = 0;
        cuda_check(cudaGetDevice(&current), where);
        if (attr.device != current)
            throw invalid_argument(std::string(where) + ": " + name + " points to memory of CUDA device " +
                                   std::to_string(attr.device) + ", but the backend runs on device " +
                                   std::to_string(current));
    }
}

/// cudaMalloc that reports failure as sams::backend_error (never returns null for n > 0).
inline void* cuda_allocate(std::size_t bytes, const char* where) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t st = cudaMalloc(&p, bytes);
    if (st != cudaSuccess) {
        (void)cudaGetLastError();
        throw backend_error(std::string(where) + ": cudaMalloc of " + std::to_string(bytes) +
                            " bytes failed: " + cudaGetErrorString(st));
    }
    return p;
}

/// cudaFree for destructors: errors cannot be thrown from there and are dropped.
inline void cuda_release(void* p) noexcept {
    if (p != nullptr) (void)cudaFree(p);
}

/// A cuBLAS handle created on first use (so a default-constructed backend needs no GPU)
/// and bound to the backend's stream.
class cublas_context {
public:
    cublas_context() = default;
    cublas_context(const cublas_context&) = delete;
    cublas_context& operator=(const cublas_context&) = delete;
    ~cublas_context() {
        if (handle_ != nullptr) (void)cublasDestroy(handle_);
    }

    cublasHandle_t get(cudaStream_t stream) {
        if (handle_ == nullptr) {
            cublas_check(cublasCreate(&handle_), "thrust_backend: cublasCreate");
            bound_ = nullptr;
            bound_valid_ = false;
        }
        if (!bound_valid_ || bound_ != stream) {
            cublas_check(cublasSetStream(handle_, stream), "thrust_backend: cublasSetStream");
            bound_ = stream;
            bound_valid_ = true;
        }
        return handle_;
    }

private:
    cublasHandle_t handle_ = nullptr;
    cudaStream_t bound_ = nullptr;
    bool bound_valid_ = false;
};

/// Page-locked host memory that grows on demand, so device-to-host copies of several small
/// arrays can be queued on a stream and waited for once.
template <class T>
class pinned_host_buffer {
public:
    pinned_host_buffer() = default;
    pinned_host_buffer(const pinned_host_buffer&) = delete;
    pinned_host_buffer& operator=(const pinned_host_buffer&) = delete;
    ~pinned_host_buffer() {
        if (data_ != nullptr) (void)cudaFreeHost(data_);
    }
    void reserve(std::size_t n, const char* where) {
        if (n <= capacity_) return;
        void* p = nullptr;
        cuda_check(cudaMallocHost(&p, n * sizeof(T)), where);
        if (data_ != nullptr) (void)cudaFreeHost(data_);
        data_ = static_cast<T*>(p);
        capacity_ = n;
    }
    [[nodiscard]] T* data() noexcept { return data_; }

private:
    T* data_ = nullptr;
    std::size_t capacity_ = 0;
};

}  // namespace sams::detail
