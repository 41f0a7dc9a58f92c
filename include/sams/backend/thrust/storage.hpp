// The owning matrix and vector of sams::thrust_backend: raw device allocations (cudaMalloc
// under CUDA, aligned host memory on the CPP/OMP systems) that keep their capacity when
// they shrink, and a shared account of the bytes they hold (thrust_backend::device_bytes()).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include <sams/backend/thrust/config.hpp>
#include <sams/core/error.hpp>

#if SAMS_THRUST_CUDA
#include <sams/backend/cuda/runtime.cuh>
#endif

namespace sams {

template <class T>
class thrust_backend;

namespace detail {

#if SAMS_THRUST_CUDA
using device_stream = cudaStream_t;
#else
/// Host systems have no streams; the type keeps the storage code identical.
struct device_stream {};
#endif

/// Bytes of device memory held through one backend (and its copies): every matrix, vector
/// and scratch buffer the backend has sized, plus thrust's cached temporaries.
class device_memory_account {
public:
    void add(std::size_t bytes) noexcept {
        const std::size_t now = bytes_.fetch_add(bytes) + bytes;
        std::size_t peak = peak_.load();
        while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
        }
    }
    void remove(std::size_t bytes) noexcept { bytes_.fetch_sub(bytes); }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_.load(); }
    [[nodiscard]] std::size_t peak() const noexcept { return peak_.load(); }

private:
    std::atomic<std::size_t> bytes_{0};
    std::atomic<std::size_t> peak_{0};
};

inline std::size_t checked_bytes(std::size_t count, std::size_t element_size, const char* where) {
    if (count > std::numeric_limits<std::size_t>::max() / element_size)
        detail::fail(where, "the element count overflows std::size_t bytes");
    return count * element_size;
}

inline std::size_t checked_product(std::size_t rows, std::size_t cols, const char* where) {
    if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols)
        detail::fail(where, "rows x cols overflows std::size_t");
    return rows * cols;
}

/// Raw allocation where the backend computes; the alignment (256 bytes) suits cuBLAS and
/// vector loads on the host alike.
inline void* device_allocate(std::size_t bytes, const char* where) {
#if SAMS_THRUST_CUDA
    return cuda_allocate(bytes, where);  // cudaMalloc aligns to at least 256 bytes
#else
    (void)where;
    if (bytes == 0) return nullptr;
    return ::operator new(bytes, std::align_val_t{256});
#endif
}

inline void device_release(void* p) noexcept {
#if SAMS_THRUST_CUDA
    cuda_release(p);
#else
    if (p != nullptr) ::operator delete(p, std::align_val_t{256});
#endif
}

/// Device-to-device copy of `bytes`, ordered on `stream`.
inline void device_copy_bytes(void* dst, const void* src, std::size_t bytes, device_stream stream, const char* where) {
    if (bytes == 0 || dst == src) return;
#if SAMS_THRUST_CUDA
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), where);
#else
    (void)stream;
    (void)where;
    std::memmove(dst, src, bytes);
#endif
}

/// Element storage that grows on demand and never shrinks (the backend concept's storage
/// rule), charging what it holds to a device_memory_account.
template <class T>
class device_buffer {
public:
    device_buffer() = default;
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          capacity_(std::exchange(other.capacity_, 0)),
          account_(std::move(other.account_)) {}
    device_buffer& operator=(device_buffer&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            capacity_ = std::exchange(other.capacity_, 0);
            account_ = std::move(other.account_);
        }
        return *this;
    }
    ~device_buffer() { release(); }

    [[nodiscard]] T* data() noexcept { return data_; }
    [[nodiscard]] const T* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

    /// Room for n elements; old contents are lost if the storage has to grow. The new block
    /// is obtained before the old one is released, so a failed allocation changes nothing.
    void reserve_discard(std::size_t n, const std::shared_ptr<device_memory_account>& account, const char* where) {
        adopt(account);
        if (n <= capacity_) return;
        T* fresh = static_cast<T*>(device_allocate(checked_bytes(n, sizeof(T), where), where));
        replace(fresh, n);
    }

    /// Room for n elements keeping the first capacity() ones (copied on `stream`).
    void reserve_preserve(std::size_t n, const std::shared_ptr<device_memory_account>& account, device_stream stream,
                          const char* where) {
        adopt(account);
        if (n <= capacity_) return;
        T* fresh = static_cast<T*>(device_allocate(checked_bytes(n, sizeof(T), where), where));
        try {
            device_copy_bytes(fresh, data_, capacity_ * sizeof(T), stream, where);
        } catch (...) {
            device_release(fresh);
            throw;
        }
        replace(fresh, n);  // cudaFree waits for the copy: it synchronises the device
    }

private:
    void adopt(const std::shared_ptr<device_memory_account>& account) {
        if (account_ == account) return;
        // Moving between accounts (a buffer sized by another backend) moves its bytes too.
        if (account_) account_->remove(capacity_ * sizeof(T));
        account_ = account;
        if (account_) account_->add(capacity_ * sizeof(T));
    }
    void replace(T* fresh, std::size_t n) noexcept {
        device_release(data_);
        if (account_) {
            account_->remove(capacity_ * sizeof(T));
            account_->add(n * sizeof(T));
        }
        data_ = fresh;
        capacity_ = n;
    }
    void release() noexcept {
        device_release(data_);
        if (account_) account_->remove(capacity_ * sizeof(T));
        data_ = nullptr;
        capacity_ = 0;
    }

    T* data_ = nullptr;
    std::size_t capacity_ = 0;
    std::shared_ptr<device_memory_account> account_;
};

#if SAMS_THRUST_CUDA
/// Thrust's temporary storage (reductions) from a cache of device blocks, instead of a
/// cudaMalloc/cudaFree pair per algorithm call: cudaFree synchronises the whole device,
/// which would serialise the backend's stream with the host. Blocks are reused in stream
/// order, so sharing them between calls on one stream is safe.
class cached_temporary_allocator {
public:
    using value_type = char;

    explicit cached_temporary_allocator(std::shared_ptr<device_memory_account> account)
        : account_(std::move(account)) {}
    cached_temporary_allocator(const cached_temporary_allocator&) = delete;
    cached_temporary_allocator& operator=(const cached_temporary_allocator&) = delete;
    ~cached_temporary_allocator() {
        for (auto& [size, p] : free_) release_block(p, size);
        for (auto& [p, size] : used_) release_block(p, size);
    }

    char* allocate(std::ptrdiff_t n) {
        const auto bytes = static_cast<std::size_t>(n);
        auto it = free_.lower_bound(bytes);
        char* p = nullptr;
        std::size_t size = bytes;
        if (it != free_.end()) {
            size = it->first;
            p = it->second;
            free_.erase(it);
        } else {
            p = static_cast<char*>(cuda_allocate(bytes, "thrust_backend: temporary storage"));
            account_->add(bytes);
        }
        used_.emplace(p, size);
        return p;
    }
    void deallocate(char* p, std::size_t) {
        const auto it = used_.find(p);
        if (it == used_.end()) return;
        free_.emplace(it->second, p);
        used_.erase(it);
    }

private:
    void release_block(char* p, std::size_t size) noexcept {
        cuda_release(p);
        account_->remove(size);
    }
    std::shared_ptr<device_memory_account> account_;
    std::multimap<std::size_t, char*> free_;
    std::map<char*, std::size_t> used_;
};
#endif

}  // namespace detail

/// Row-major rows×cols matrix in the thrust backend's memory (device memory under CUDA):
/// the backend's `matrix`. Move-only; shaped and filled through sams::thrust_backend.
template <class T>
class thrust_matrix {
public:
    using value_type = T;

    thrust_matrix() = default;

    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
    [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
    [[nodiscard]] std::size_t size() const noexcept { return rows_ * cols_; }
    /// Elements the storage holds without reallocating.
    [[nodiscard]] std::size_t capacity() const noexcept { return storage_.capacity(); }
    /// Raw pointer to element (0, 0) in the backend's memory space; row r starts at r·cols().
    [[nodiscard]] T* data() noexcept { return storage_.data(); }
    [[nodiscard]] const T* data() const noexcept { return storage_.data(); }

private:
    friend class thrust_backend<T>;
    detail::device_buffer<T> storage_;
    std::size_t rows_ = 0;
    std::size_t cols_ = 0;
};

/// Vector in the thrust backend's memory: the backend's `vector`. Move-only.
template <class T>
class thrust_vector {
public:
    using value_type = T;

    thrust_vector() = default;

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return storage_.capacity(); }
    [[nodiscard]] T* data() noexcept { return storage_.data(); }
    [[nodiscard]] const T* data() const noexcept { return storage_.data(); }

private:
    friend class thrust_backend<T>;
    detail::device_buffer<T> storage_;
    std::size_t size_ = 0;
};

}  // namespace sams
