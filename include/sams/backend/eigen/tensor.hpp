// The owning matrix and vector of sams::eigen_backend: aligned host storage that keeps its
// capacity when it shrinks (so a net's buffers stop allocating once the largest batch has
// been seen), exposed to the kernels as Eigen maps.
#pragma once

#include <cstddef>
#include <limits>
#include <string>

#include <Eigen/Core>

#include <sams/core/error.hpp>

namespace sams {
namespace detail {

inline Eigen::Index eigen_index(std::size_t n) noexcept { return static_cast<Eigen::Index>(n); }

inline std::size_t checked_element_count(std::size_t rows, std::size_t cols, const char* where) {
    if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols)
        detail::fail(where, "rows x cols overflows std::size_t");
    return rows * cols;
}

/// Aligned element storage that grows on demand and never shrinks.
template <class T>
class eigen_storage {
public:
    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(buffer_.size()); }
    [[nodiscard]] T* data() noexcept { return buffer_.data(); }
    [[nodiscard]] const T* data() const noexcept { return buffer_.data(); }

    /// Makes room for n elements; old contents are lost if storage has to grow.
    void reserve_discard(std::size_t n) {
        if (n > capacity()) buffer_.resize(eigen_index(n));
    }
    /// Makes room for n elements, keeping the first capacity() ones.
    void reserve_preserve(std::size_t n) {
        if (n > capacity()) buffer_.conservativeResize(eigen_index(n));
    }

private:
    Eigen::Matrix<T, Eigen::Dynamic, 1> buffer_;
};

}  // namespace detail

/// Row-major rows×cols matrix owned by sams::eigen_backend (the backend's `matrix`).
template <class T>
class eigen_matrix {
public:
    using value_type = T;
    using plain_type = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using map_type = Eigen::Map<plain_type, Eigen::AlignedMax>;
    using const_map_type = Eigen::Map<const plain_type, Eigen::AlignedMax>;

    eigen_matrix() = default;
    eigen_matrix(std::size_t rows, std::size_t cols) { resize(rows, cols); }

    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
    [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
    [[nodiscard]] std::size_t size() const noexcept { return rows_ * cols_; }
    /// Elements the storage holds without reallocating.
    [[nodiscard]] std::size_t capacity() const noexcept { return storage_.capacity(); }
    [[nodiscard]] T* data() noexcept { return storage_.data(); }
    [[nodiscard]] const T* data() const noexcept { return storage_.data(); }
    [[nodiscard]] T& operator()(std::size_t r, std::size_t c) noexcept { return data()[r * cols_ + c]; }
    [[nodiscard]] const T& operator()(std::size_t r, std::size_t c) const noexcept {
        return data()[r * cols_ + c];
    }

    /// The matrix as an Eigen expression (valid until the next resize).
    [[nodiscard]] map_type map() noexcept {
        return map_type(data(), detail::eigen_index(rows_), detail::eigen_index(cols_));
    }
    [[nodiscard]] const_map_type map() const noexcept {
        return const_map_type(data(), detail::eigen_index(rows_), detail::eigen_index(cols_));
    }

    /// New shape, contents unspecified; allocates only when rows·cols exceeds capacity().
    void resize(std::size_t rows, std::size_t cols) {
        storage_.reserve_discard(detail::checked_element_count(rows, cols, "eigen_matrix::resize"));
        rows_ = rows;
        cols_ = cols;
    }
    /// New row count, same cols; existing rows keep their values (row-major: a prefix).
    void resize_rows_preserve(std::size_t rows) {
        storage_.reserve_preserve(detail::checked_element_count(rows, cols_, "eigen_matrix::resize_rows_preserve"));
        rows_ = rows;
    }

private:
    detail::eigen_storage<T> storage_;
    std::size_t rows_ = 0;
    std::size_t cols_ = 0;
};

/// Vector owned by sams::eigen_backend (the backend's `vector`).
template <class T>
class eigen_vector {
public:
    using value_type = T;
    using plain_type = Eigen::Matrix<T, Eigen::Dynamic, 1>;
    using map_type = Eigen::Map<plain_type, Eigen::AlignedMax>;
    using const_map_type = Eigen::Map<const plain_type, Eigen::AlignedMax>;

    eigen_vector() = default;
    explicit eigen_vector(std::size_t n) { resize(n); }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return storage_.capacity(); }
    [[nodiscard]] T* data() noexcept { return storage_.data(); }
    [[nodiscard]] const T* data() const noexcept { return storage_.data(); }
    [[nodiscard]] T& operator[](std::size_t i) noexcept { return data()[i]; }
    [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return data()[i]; }

    [[nodiscard]] map_type map() noexcept { return map_type(data(), detail::eigen_index(size_)); }
    [[nodiscard]] const_map_type map() const noexcept { return const_map_type(data(), detail::eigen_index(size_)); }

    /// New size, contents unspecified; allocates only when n exceeds capacity().
    void resize(std::size_t n) {
        storage_.reserve_discard(n);
        size_ = n;
    }
    /// New size; the first min(old, n) elements keep their values.
    void resize_preserve(std::size_t n) {
        storage_.reserve_preserve(n);
        size_ = n;
    }

private:
    detail::eigen_storage<T> storage_;
    std::size_t size_ = 0;
};

}  // namespace sams
