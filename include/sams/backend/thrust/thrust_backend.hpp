// sams::thrust_backend<T>: the backend concept (backend/concept.hpp) on thrust. Under nvcc
// with THRUST_DEVICE_SYSTEM_CUDA everything lives in device memory and runs on one CUDA
// stream: elementwise kernels and reductions are thrust algorithms, GEMMs and row/column
// sums are cuBLAS. On the CPP/OMP systems the same thrust code runs on the host and GEMMs
// fall back to Eigen, which is how CPU-only CI tests the backend's logic.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>

#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>

#include <sams/backend/concept.hpp>
#include <sams/backend/preconditions.hpp>
#include <sams/backend/thrust/config.hpp>
#include <sams/backend/thrust/functors.hpp>
#include <sams/backend/thrust/storage.hpp>
#include <sams/backend/types.hpp>
#include <sams/core/error.hpp>
#include <sams/core/views.hpp>

#if SAMS_THRUST_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <thrust/system/cuda/execution_policy.h>

#include <sams/backend/cuda/runtime.cuh>
#else
#include <Eigen/Core>

#include <sams/backend/eigen/gemm.hpp>
#endif

namespace sams {

/// Construction options of sams::thrust_backend.
struct thrust_backend_options {
    /// CUDA, float only: GEMMs may use TF32 tensor cores (cuBLAS CUBLAS_COMPUTE_32F_FAST_TF32):
    /// about 10 mantissa bits per product instead of 23, several times the fp32 GEMM rate.
    /// Off by default; ignored for double and on the host systems.
    bool allow_tf32 = false;
    /// CUDA, float only: GEMMs may use bf16 tensor cores (CUBLAS_COMPUTE_32F_FAST_16BF: inputs
    /// rounded to 8 mantissa bits, fp32 accumulation and output), about twice the TF32 rate
    /// again. Takes precedence over allow_tf32. Off by default; ignored like allow_tf32.
    bool allow_bf16 = false;
};

namespace detail {

/// What every copy of one thrust_backend shares: the stream, the cuBLAS handle, the memory
/// account and the scratch buffers.
template <class T>
struct thrust_backend_state {
    std::shared_ptr<device_memory_account> account = std::make_shared<device_memory_account>();
    bool allow_tf32 = false;
    bool allow_bf16 = false;
    device_buffer<T> row_a, row_b;  // per-row scratch of the LayerNorm kernels
#if SAMS_THRUST_CUDA
    cudaStream_t stream = nullptr;  // the legacy default stream until set_stream()
    cublas_context cublas;
    cached_temporary_allocator temporaries{account};
    device_buffer<std::size_t> indices;  // host index spans, uploaded for gather/scatter
    device_buffer<T> ones;               // all-ones vector for row/column sums through GEMV
    std::size_t ones_filled = 0;
#endif
};

}  // namespace detail

/// The thrust backend for float or double.
///
/// Copies of a backend share one state (stream, cuBLAS handle, scratch, memory account),
/// like copies of a stream handle; a backend and its copies must be used from one host
/// thread at a time. Matrices and vectors are move-only and live where the backend computes.
///
/// CUDA: all work is queued on stream() (the legacy default stream unless set_stream() was
/// called). upload() accepts host or device source pointers (cudaMemcpyDefault under
/// unified addressing); download() and the value-returning calls (all_finite, mse_loss)
/// synchronise the stream. CUDA and cuBLAS failures throw sams::backend_error carrying the
/// CUDA error text; null, misaligned or other-device pointers throw sams::invalid_argument.
template <class T>
class thrust_backend {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "sams::thrust_backend<T>: T must be float or double");

public:
    using value_type = T;
    using matrix = thrust_matrix<T>;
    using vector = thrust_vector<T>;

    thrust_backend() : state_(std::make_shared<detail::thrust_backend_state<T>>()) {}
    explicit thrust_backend(const thrust_backend_options& options) : thrust_backend() {
        state_->allow_tf32 = options.allow_tf32;
        state_->allow_bf16 = options.allow_bf16;
    }
    // No move operations on purpose: a "moved" backend is a copy, so it never holds a null state.
    thrust_backend(const thrust_backend&) = default;
    thrust_backend& operator=(const thrust_backend&) = default;
    ~thrust_backend() = default;

    // ---- backend-specific controls ----------------------------------------------------------

    /// Opt in to (or out of) TF32 GEMMs; see thrust_backend_options::allow_tf32.
    void set_allow_tf32(bool allow) noexcept { state_->allow_tf32 = allow; }
    [[nodiscard]] bool allow_tf32() const noexcept { return state_->allow_tf32; }
    /// Opt in to (or out of) bf16 GEMMs; see thrust_backend_options::allow_bf16.
    void set_allow_bf16(bool allow) noexcept { state_->allow_bf16 = allow; }
    [[nodiscard]] bool allow_bf16() const noexcept { return state_->allow_bf16; }

    /// Bytes of backend memory (device memory under CUDA) currently held by the matrices and
    /// vectors this backend (or a copy) has sized, plus its scratch and cached temporaries.
    [[nodiscard]] std::size_t device_bytes() const noexcept { return state_->account->bytes(); }
    /// The largest value device_bytes() has had.
    [[nodiscard]] std::size_t peak_device_bytes() const noexcept { return state_->account->peak(); }

    /// Waits for all work queued by this backend (a no-op on the host systems).
    void synchronize() const {
#if SAMS_THRUST_CUDA
        detail::cuda_check(cudaStreamSynchronize(state_->stream), "thrust_backend::synchronize");
#endif
    }

#if SAMS_THRUST_CUDA
    /// Runs all further work on `stream` (e.g. the host framework's current stream, so that
    /// its stream order holds). Work already queued on the previous stream is waited for first.
    void set_stream(cudaStream_t stream) {
        if (stream == state_->stream) return;
        synchronize();
        state_->stream = stream;
    }
    [[nodiscard]] cudaStream_t stream() const noexcept { return state_->stream; }
#endif

    /// Copies n elements from `src` (device memory, or any memory under CUDA's unified
    /// addressing) to host memory `dst`, queued on the backend's stream; completes at the
    /// next synchronize(). Used by the staging helpers of sams/adapters/thrust.hpp.
    void copy_to_host_async(const T* src, std::size_t n, T* dst, const char* where) const {
        if (n == 0) return;
#if SAMS_THRUST_CUDA
        detail::cuda_check(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDefault, state_->stream), where);
#else
        (void)where;
        std::memcpy(dst, src, n * sizeof(T));
#endif
    }

    /// Checks a pointer the host hands over (null when count > 0, misaligned for T, or, under
    /// CUDA, device memory of another device) and throws sams::invalid_argument naming `name`.
    static void check_pointer(const void* p, std::size_t count, const char* where, const char* name) {
#if SAMS_THRUST_CUDA
        detail::check_user_pointer(p, count, alignof(T), where, name);
#else
        if (count == 0) return;
        if (p == nullptr) detail::fail(where, std::string(name) + " is null");
        if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
            detail::fail(where, std::string(name) + " is not aligned to " + std::to_string(alignof(T)) +
                                    " bytes (the size of its element type)");
#endif
    }

    // ---- shapes, resizing, fills, copies --------------------------------------------------

    [[nodiscard]] std::size_t rows(const matrix& m) const noexcept { return m.rows_; }
    [[nodiscard]] std::size_t cols(const matrix& m) const noexcept { return m.cols_; }
    [[nodiscard]] std::size_t size(const vector& v) const noexcept { return v.size_; }

    void resize(matrix& m, std::size_t rows, std::size_t cols) {
        constexpr const char* where = "thrust_backend::resize";
        m.storage_.reserve_discard(detail::checked_product(rows, cols, where), state_->account, where);
        m.rows_ = rows;
        m.cols_ = cols;
    }
    void resize(vector& v, std::size_t n) {
        v.storage_.reserve_discard(n, state_->account, "thrust_backend::resize");
        v.size_ = n;
    }
    void resize_rows_preserve(matrix& m, std::size_t rows) {
        constexpr const char* where = "thrust_backend::resize_rows_preserve";
        m.storage_.reserve_preserve(detail::checked_product(rows, m.cols_, where), state_->account, stream_handle(),
                                    where);
        m.rows_ = rows;
    }
    void resize_preserve(vector& v, std::size_t n) {
        v.storage_.reserve_preserve(n, state_->account, stream_handle(), "thrust_backend::resize_preserve");
        v.size_ = n;
    }

    void fill(matrix& m, T value) { fill_n(m.data(), m.size(), value, "thrust_backend::fill"); }
    void fill(vector& v, T value) { fill_n(v.data(), v.size(), value, "thrust_backend::fill"); }

    void copy(const matrix& src, matrix& dst) {
        if (&src == &dst) return;
        resize(dst, src.rows_, src.cols_);
        detail::device_copy_bytes(dst.data(), src.data(), src.size() * sizeof(T), stream_handle(),
                                  "thrust_backend::copy");
    }
    void copy(const vector& src, vector& dst) {
        if (&src == &dst) return;
        resize(dst, src.size_);
        detail::device_copy_bytes(dst.data(), src.data(), src.size_ * sizeof(T), stream_handle(),
                                  "thrust_backend::copy");
    }
    /// Row-major flattening copy.
    void copy(const matrix& src, vector& dst) {
        resize(dst, src.size());
        detail::device_copy_bytes(dst.data(), src.data(), src.size() * sizeof(T), stream_handle(),
                                  "thrust_backend::copy");
    }

    // ---- host transfers -------------------------------------------------------------------

    /// dst = src. Under CUDA src.data may be host or device memory (one cudaMemcpy2DAsync
    /// with cudaMemcpyDefault on the backend's stream); on the host systems it is host memory.
    void upload(matrix_view<const T> src, matrix& dst) {
        constexpr const char* where = "thrust_backend::upload";
        detail::require(src.stride() >= src.cols, where, "src.row_stride must be >= src.cols");
        check_pointer(src.data, src.rows * src.cols, where, "src.data");
        resize(dst, src.rows, src.cols);
        if (dst.size() == 0) return;
#if SAMS_THRUST_CUDA
        detail::cuda_check(cudaMemcpy2DAsync(dst.data(), src.cols * sizeof(T), src.data, src.stride() * sizeof(T),
                                             src.cols * sizeof(T), src.rows, cudaMemcpyDefault, state_->stream),
                           where);
#else
        if (src.stride() == src.cols) {
            std::memcpy(dst.data(), src.data, dst.size() * sizeof(T));
        } else {
            for (std::size_t r = 0; r < src.rows; ++r)
                std::memcpy(dst.data() + r * src.cols, src.row(r), src.cols * sizeof(T));
        }
#endif
    }
    void upload(std::span<const T> src, vector& dst) {
        constexpr const char* where = "thrust_backend::upload";
        check_pointer(src.data(), src.size(), where, "src");
        resize(dst, src.size());
        copy_in(dst.data(), src.data(), src.size(), where);
    }
    /// dst = src (row-major); synchronises the stream, so dst is ready on return.
    void download(const matrix& src, std::span<T> dst) {
        constexpr const char* where = "thrust_backend::download";
        detail::require(dst.size() == src.size(), where,
                        "dst.size() must equal rows * cols of the source matrix");
        check_pointer(dst.data(), dst.size(), where, "dst");
        copy_to_host_async(src.data(), src.size(), dst.data(), where);
        synchronize();
    }
    void download(const vector& src, std::span<T> dst) {
        constexpr const char* where = "thrust_backend::download";
        detail::require(dst.size() == src.size_, where,
                        "dst.size() must equal the size of the source vector");
        check_pointer(dst.data(), dst.size(), where, "dst");
        copy_to_host_async(src.data(), src.size_, dst.data(), where);
        synchronize();
    }

    [[nodiscard]] bool all_finite(const matrix& m) const { return count_not_finite(m.data(), m.size()) == 0; }
    [[nodiscard]] bool all_finite(const vector& v) const { return count_not_finite(v.data(), v.size_) == 0; }

    // ---- row and element movement -----------------------------------------------------------

    void gather_rows(const matrix& src, std::span<const std::size_t> idx, matrix& dst) {
        constexpr const char* where = "thrust_backend::gather_rows";
        detail::require(&src != &dst, where, "src and dst must be different matrices");
        detail::check_indices(idx, src.rows_, where);
        resize(dst, idx.size(), src.cols_);
        const std::size_t n = dst.size();
        if (n == 0) return;
        for_each_index(n, detail::gather_rows_fn<T>{src.data(), dst.data(), device_indices(idx, where), src.cols_},
                       where);
    }
    void gather(const vector& src, std::span<const std::size_t> idx, vector& dst) {
        constexpr const char* where = "thrust_backend::gather";
        detail::require(&src != &dst, where, "src and dst must be different vectors");
        detail::check_indices(idx, src.size_, where);
        resize(dst, idx.size());
        if (idx.empty()) return;
        for_each_index(idx.size(), detail::gather_fn<T>{src.data(), dst.data(), device_indices(idx, where)}, where);
    }
    void set_rows(matrix& dst, std::size_t first_row, const matrix& src) {
        constexpr const char* where = "thrust_backend::set_rows";
        detail::require(&src != &dst, where, "src and dst must be different matrices");
        detail::require(src.cols_ == dst.cols_ || src.rows_ == 0, where,
                        "src must have as many columns as dst");
        detail::require(first_row <= dst.rows_ && src.rows_ <= dst.rows_ - first_row, where,
                        "first_row + rows(src) must be <= rows(dst)");
        if (src.size() == 0) return;
        detail::device_copy_bytes(dst.data() + first_row * dst.cols_, src.data(), src.size() * sizeof(T),
                                  stream_handle(), where);
    }
    void set_range(vector& dst, std::size_t first, const vector& src) {
        constexpr const char* where = "thrust_backend::set_range";
        detail::require(&src != &dst, where, "src and dst must be different vectors");
        detail::require(first <= dst.size_ && src.size_ <= dst.size_ - first, where,
                        "first + size(src) must be <= size(dst)");
        if (src.size_ == 0) return;
        detail::device_copy_bytes(dst.data() + first, src.data(), src.size_ * sizeof(T), stream_handle(), where);
    }
    void scatter_rows(const matrix& src, std::span<const std::size_t> idx, matrix& dst) {
        constexpr const char* where = "thrust_backend::scatter_rows";
        detail::require(&src != &dst, where, "src and dst must be different matrices");
        detail::require(idx.size() == src.rows_, where, "idx.size() must equal rows(src)");
        detail::require(src.cols_ == dst.cols_ || src.rows_ == 0, where,
                        "src must have as many columns as dst");
        detail::check_indices(idx, dst.rows_, where);
        const std::size_t n = src.size();
        if (n == 0) return;
        for_each_index(n, detail::scatter_rows_fn<T>{src.data(), dst.data(), device_indices(idx, where), src.cols_},
                       where);
    }
    void scatter(const vector& src, std::span<const std::size_t> idx, vector& dst) {
        constexpr const char* where = "thrust_backend::scatter";
        detail::require(&src != &dst, where, "src and dst must be different vectors");
        detail::require(idx.size() == src.size_, where, "idx.size() must equal size(src)");
        detail::check_indices(idx, dst.size_, where);
        if (idx.empty()) return;
        for_each_index(idx.size(), detail::scatter_fn<T>{src.data(), dst.data(), device_indices(idx, where)}, where);
    }
    void axpby(T a, const vector& x, T b, const vector& y, vector& out) {
        constexpr const char* where = "thrust_backend::axpby";
        detail::require(x.size_ == y.size_, where, "x and y must have the same size");
        resize(out, x.size_);
        transform2(x.data(), y.data(), out.data(), x.size_, detail::axpby_fn<T>{a, b}, where);
    }

    // ---- compute kernels --------------------------------------------------------------------

    /// c = alpha·op(a)·op(b) + beta·c. CUDA: cuBLAS (TF32 or bf16 when opted in), computing the
    /// row-major product as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ; host systems: Eigen.
    void gemm(transpose ta, transpose tb, T alpha, const matrix& a, const matrix& b, T beta, matrix& c) {
        constexpr const char* where = "thrust_backend::gemm";
        const auto [m, n, k] =
            detail::check_gemm(ta, tb, a.rows_, a.cols_, b.rows_, b.cols_, &c == &a || &c == &b, beta == T(0),
                               c.rows_, c.cols_, where);
        const bool at = ta == transpose::yes;
        const bool bt = tb == transpose::yes;
        if (beta == T(0)) resize(c, m, n);
        if (m == 0 || n == 0) return;
        if (k == 0) {  // an empty sum: c = beta·c (beta == 0 ignores c's old contents, NaN included)
            if (beta == T(0))
                fill_n(c.data(), c.size(), T(0), where);
            else
                transform1(c.data(), c.data(), c.size(), detail::scale_fn<T>{beta}, where);
            return;
        }
#if SAMS_THRUST_CUDA
        check_int_dims(m, n, k, where);
        const cublasHandle_t h = state_->cublas.get(state_->stream);
        const auto op_of = [](bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; };
        const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
        const int ld_b = static_cast<int>(std::max<std::size_t>(1, b.cols_));
        const int ld_a = static_cast<int>(std::max<std::size_t>(1, a.cols_));
        const int ld_c = static_cast<int>(n);
        if constexpr (std::is_same_v<T, float>) {
            if (state_->allow_bf16 || state_->allow_tf32)
                detail::cublas_check(
                    cublasGemmEx(h, op_of(bt), op_of(at), M, N, K, &alpha, b.data(), CUDA_R_32F, ld_b, a.data(),
                                 CUDA_R_32F, ld_a, &beta, c.data(), CUDA_R_32F, ld_c,
                                 state_->allow_bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F_FAST_TF32,
                                 CUBLAS_GEMM_DEFAULT),
                    where);
            else
                detail::cublas_check(cublasSgemm(h, op_of(bt), op_of(at), M, N, K, &alpha, b.data(), ld_b, a.data(),
                                                 ld_a, &beta, c.data(), ld_c),
                                     where);
        } else {
            detail::cublas_check(cublasDgemm(h, op_of(bt), op_of(at), M, N, K, &alpha, b.data(), ld_b, a.data(), ld_a,
                                             &beta, c.data(), ld_c),
                                 where);
        }
#else
        auto cm = map(c.data(), m, n);
        const auto am = map(a.data(), a.rows_, a.cols_);
        const auto bm = map(b.data(), b.rows_, b.cols_);
        if (!at && !bt)
            detail::tiled_gemm(alpha, am, bm, beta, cm);
        else if (!at && bt)
            detail::tiled_gemm(alpha, am, bm.transpose(), beta, cm);
        else if (at && !bt)
            detail::tiled_gemm(alpha, am.transpose(), bm, beta, cm);
        else
            detail::tiled_gemm(alpha, am.transpose(), bm.transpose(), beta, cm);
#endif
    }

    void column_sums(const matrix& a, vector& out) {
        resize(out, a.cols_);
        column_sums_raw(a.data(), a.rows_, a.cols_, out.data(), "thrust_backend::column_sums");
    }

    void add_bias(const vector& bias, matrix& z) {
        constexpr const char* where = "thrust_backend::add_bias";
        detail::require(bias.size_ == z.cols_, where, "size(bias) must equal cols(z)");
        if (z.size() == 0) return;
        for_each_index(z.size(),
                       detail::bias_activation_fn<T>{z.data(), nullptr, bias.data(), z.cols_, activation::relu}, where);
    }

    /// z += bias, then a = act(z): one fused pass over z.
    void bias_activation(activation act, const vector& bias, matrix& z, matrix& a) {
        constexpr const char* where = "thrust_backend::bias_activation";
        detail::require(bias.size_ == z.cols_, where, "size(bias) must equal cols(z)");
        if (&a != &z) resize(a, z.rows_, z.cols_);
        if (z.size() == 0) return;
        for_each_index(z.size(), detail::bias_activation_fn<T>{z.data(), a.data(), bias.data(), z.cols_, act}, where);
    }

    void activation_forward(activation act, const matrix& z, matrix& a) {
        if (&a != &z) resize(a, z.rows_, z.cols_);
        transform1(z.data(), a.data(), z.size(), detail::activation_fn<T>{act}, "thrust_backend::activation_forward");
    }

    void activation_backward(activation act, const matrix& z, const matrix& grad_a, matrix& grad_z) {
        constexpr const char* where = "thrust_backend::activation_backward";
        detail::require(z.rows_ == grad_a.rows_ && z.cols_ == grad_a.cols_, where,
                        "z and grad_a must have the same shape");
        if (&grad_z != &z && &grad_z != &grad_a) resize(grad_z, z.rows_, z.cols_);
        transform2(z.data(), grad_a.data(), grad_z.data(), z.size(), detail::activation_grad_fn<T>{act}, where);
    }

    void add(const matrix& a, const matrix& b, matrix& out) {
        constexpr const char* where = "thrust_backend::add";
        detail::require(a.rows_ == b.rows_ && a.cols_ == b.cols_, where, "a and b must have the same shape");
        if (&out != &a && &out != &b) resize(out, a.rows_, a.cols_);
        transform2(a.data(), b.data(), out.data(), a.size(), detail::plus_fn<T>{}, where);
    }

    void multiply(const matrix& a, const matrix& b, matrix& out) {
        constexpr const char* where = "thrust_backend::multiply";
        detail::require(a.rows_ == b.rows_ && a.cols_ == b.cols_, where, "a and b must have the same shape");
        if (&out != &a && &out != &b) resize(out, a.rows_, a.cols_);
        transform2(a.data(), b.data(), out.data(), a.size(), detail::times_fn<T>{}, where);
    }

    void dropout_mask(matrix& mask, double p, std::uint64_t seed) {
        constexpr const char* where = "thrust_backend::dropout_mask";
        detail::require(p >= 0.0 && p < 1.0, where, "p must be in [0, 1)");  // NaN fails too
        if (mask.size() == 0) return;
        const T keep = static_cast<T>(1.0 / (1.0 - p));
        for_each_index(mask.size(), detail::dropout_fn<T>{mask.data(), p, keep, seed}, where);
    }

    /// Per row: two row sums (mean, then the biased variance of the centred values, both
    /// through GEMV under CUDA) and one fused elementwise pass for x_hat and y.
    void layer_norm_forward(const matrix& x, const vector& gamma, const vector& beta, T eps, matrix& y,
                            matrix& x_hat, vector& rstd) {
        constexpr const char* where = "thrust_backend::layer_norm_forward";
        detail::require(gamma.size_ == x.cols_ && beta.size_ == x.cols_, where,
                        "size(gamma) and size(beta) must equal cols(x)");
        detail::require(x.cols_ > 0, where, "x must have at least one column");
        detail::require(&y != &x && &x_hat != &x && &y != &x_hat, where,
                        "outputs must not alias x or each other");
        const std::size_t n = x.rows_, h = x.cols_;
        resize(y, n, h);
        resize(x_hat, n, h);
        resize(rstd, n);
        if (n == 0) return;
        const T inv_h = T(1) / static_cast<T>(h);
        T* sum = scratch(state_->row_a, n, where);
        row_sums_raw(x.data(), n, h, sum, where);
        for_each_index(n * h, detail::centered_square_fn<T>{x.data(), sum, y.data(), h, inv_h}, where);
        row_sums_raw(y.data(), n, h, rstd.data(), where);
        for_each_index(n, detail::rstd_fn<T>{rstd.data(), inv_h, eps}, where);
        for_each_index(n * h,
                       detail::layer_norm_output_fn<T>{x.data(), sum, rstd.data(), gamma.data(), beta.data(),
                                                       x_hat.data(), y.data(), h, inv_h},
                       where);
    }

    /// grad_x is first used as scratch for the two elementwise products whose column sums
    /// are grad_gamma and whose row sums are the per-row means, then overwritten.
    void layer_norm_backward(const matrix& grad_y, const matrix& x_hat, const vector& rstd, const vector& gamma,
                             matrix& grad_x, vector& grad_gamma, vector& grad_beta) {
        constexpr const char* where = "thrust_backend::layer_norm_backward";
        detail::require(grad_y.rows_ == x_hat.rows_ && grad_y.cols_ == x_hat.cols_, where,
                        "grad_y and x_hat must have the same shape");
        detail::require(rstd.size_ == x_hat.rows_, where, "size(rstd) must equal rows(x_hat)");
        detail::require(gamma.size_ == x_hat.cols_, where, "size(gamma) must equal cols(x_hat)");
        detail::require(static_cast<const void*>(&grad_x) != &grad_y &&
                            static_cast<const void*>(&grad_x) != &x_hat && &grad_gamma != &grad_beta &&
                            &grad_gamma != &gamma && &grad_beta != &gamma && &grad_gamma != &rstd &&
                            &grad_beta != &rstd,
                        where, "outputs must not alias inputs or each other");
        const std::size_t n = grad_y.rows_, h = grad_y.cols_;
        resize(grad_x, n, h);
        resize(grad_gamma, h);
        resize(grad_beta, h);
        if (h == 0) return;
        const T inv_h = T(1) / static_cast<T>(h);
        transform2(grad_y.data(), x_hat.data(), grad_x.data(), n * h, detail::times_fn<T>{}, where);
        column_sums_raw(grad_x.data(), n, h, grad_gamma.data(), where);
        column_sums_raw(grad_y.data(), n, h, grad_beta.data(), where);
        if (n == 0) return;
        T* sum_g = scratch(state_->row_a, n, where);
        T* sum_gx = scratch(state_->row_b, n, where);
        for_each_index(n * h, detail::scale_columns_fn<T>{grad_y.data(), gamma.data(), grad_x.data(), h}, where);
        row_sums_raw(grad_x.data(), n, h, sum_g, where);
        transform2(grad_x.data(), x_hat.data(), grad_x.data(), n * h, detail::times_fn<T>{}, where);
        row_sums_raw(grad_x.data(), n, h, sum_gx, where);
        for_each_index(n * h,
                       detail::layer_norm_grad_fn<T>{grad_y.data(), gamma.data(), x_hat.data(), rstd.data(), sum_g,
                                                     sum_gx, grad_x.data(), h, inv_h},
                       where);
    }

    void block_mean_accumulate(const matrix& src, std::size_t block, std::size_t offset, matrix& dst) {
        constexpr const char* where = "thrust_backend::block_mean_accumulate";
        detail::require(block > 0, where, "block must be > 0");
        detail::require(&src != &dst, where, "src and dst must be different matrices");
        detail::require(dst.rows_ == src.rows_, where, "dst must have as many rows as src");
        detail::require(src.cols_ == 0 || (offset + src.cols_ + block - 1) / block <= dst.cols_, where,
                        "dst has fewer than (offset + cols(src)) / block columns");
        if (src.size() == 0) return;
        const std::size_t first = offset / block;
        const std::size_t last = (offset + src.cols_ - 1) / block;
        const std::size_t blocks = last - first + 1;
        for_each_index(src.rows_ * blocks,
                       detail::block_mean_fn<T>{src.data(), dst.data(), src.cols_, dst.cols_, blocks, first, block,
                                                offset, T(1) / static_cast<T>(block)},
                       where);
    }

    void adam_update(matrix& param, const matrix& grad, matrix& m, matrix& v, const adam_hyperparameters& h) {
        detail::require(grad.rows_ == param.rows_ && grad.cols_ == param.cols_ && m.rows_ == param.rows_ &&
                            m.cols_ == param.cols_ && v.rows_ == param.rows_ && v.cols_ == param.cols_,
                        "thrust_backend::adam_update", "param, grad, m and v must have the same shape");
        adam_apply(param.data(), grad.data(), m.data(), v.data(), param.size(), h);
    }
    void adam_update(vector& param, const vector& grad, vector& m, vector& v, const adam_hyperparameters& h) {
        detail::require(grad.size_ == param.size_ && m.size_ == param.size_ && v.size_ == param.size_,
                        "thrust_backend::adam_update", "param, grad, m and v must have the same size");
        adam_apply(param.data(), grad.data(), m.data(), v.data(), param.size_, h);
    }

    /// The loss is accumulated in double (synchronises the stream: its value steers early stopping).
    double mse_loss(const matrix& pred, const vector& target, matrix& grad) {
        constexpr const char* where = "thrust_backend::mse_loss";
        detail::require(pred.cols_ == 1, where, "pred must have exactly one column");
        detail::require(pred.rows_ == target.size_, where, "size(target) must equal rows(pred)");
        detail::require(target.size_ > 0, where, "the batch must not be empty");
        detail::require(&grad != &pred, where, "grad must not alias pred");
        const std::size_t n = target.size_;
        resize(grad, n, 1);
        double sum = 0.0;
        guarded(where, [&] {
            sum = thrust::transform_reduce(policy(), thrust::counting_iterator<std::size_t>(0),
                                           thrust::counting_iterator<std::size_t>(n),
                                           detail::squared_error_fn<T>{pred.data(), target.data()}, 0.0,
                                           detail::sum_double_fn{});
        });
        transform2(pred.data(), target.data(), grad.data(), n,
                   detail::mse_grad_fn<T>{T(2) / static_cast<T>(n)}, where);
        return sum / static_cast<double>(n);
    }

private:
    [[nodiscard]] detail::device_stream stream_handle() const noexcept {
#if SAMS_THRUST_CUDA
        return state_->stream;
#else
        return {};
#endif
    }

    // The execution policy of every thrust call: the backend's stream without the implicit
    // synchronisation after each algorithm, and cached temporaries (CUDA); the device system's
    // default policy on the host systems.
    auto policy() const {
#if SAMS_THRUST_CUDA
        return thrust::cuda::par_nosync(state_->temporaries).on(state_->stream);
#else
        return thrust::device;
#endif
    }

    /// Runs a thrust call and turns what thrust throws (CUDA errors, allocation failures)
    /// into sams::backend_error; the library's own exceptions pass unchanged.
    template <class F>
    static void guarded(const char* where, F&& f) {
        try {
            f();
        } catch (const error&) {
            throw;
        } catch (const std::bad_alloc& e) {
            throw backend_error(std::string(where) + ": out of memory (" + e.what() + ")");
        } catch (const std::exception& e) {
            throw backend_error(std::string(where) + ": " + e.what());
        }
    }

    template <class F>
    void for_each_index(std::size_t n, F f, const char* where) const {
        if (n == 0) return;
        guarded(where, [&] { thrust::for_each_n(policy(), thrust::counting_iterator<std::size_t>(0), n, f); });
    }
    template <class F>
    void transform1(const T* in, T* out, std::size_t n, F f, const char* where) const {
        if (n == 0) return;
        guarded(where, [&] { thrust::transform(policy(), in, in + n, out, f); });
    }
    template <class F>
    void transform2(const T* a, const T* b, T* out, std::size_t n, F f, const char* where) const {
        if (n == 0) return;
        guarded(where, [&] { thrust::transform(policy(), a, a + n, b, out, f); });
    }
    void fill_n(T* p, std::size_t n, T value, const char* where) const {
        if (n == 0) return;
        guarded(where, [&] { thrust::fill_n(policy(), p, n, value); });
    }

    [[nodiscard]] unsigned count_not_finite(const T* p, std::size_t n) const {
        if (n == 0) return 0;
        unsigned bad = 0;
        guarded("thrust_backend::all_finite", [&] {
            bad = thrust::transform_reduce(policy(), p, p + n, detail::not_finite_fn<T>{}, 0u,
                                           detail::max_unsigned_fn{});
        });
        return bad;
    }

    /// Host (or device) memory of n elements into backend memory.
    void copy_in(T* dst, const T* src, std::size_t n, const char* where) {
        if (n == 0) return;
#if SAMS_THRUST_CUDA
        detail::cuda_check(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDefault, state_->stream), where);
#else
        (void)where;
        std::memcpy(dst, src, n * sizeof(T));
#endif
    }

    /// A host index span where kernels can read it: uploaded into shared scratch under CUDA
    /// (in stream order, so the previous kernel reading the scratch has finished), used in
    /// place on the host systems.
    const std::size_t* device_indices(std::span<const std::size_t> idx, const char* where) {
#if SAMS_THRUST_CUDA
        state_->indices.reserve_discard(idx.size(), state_->account, where);
        detail::cuda_check(cudaMemcpyAsync(state_->indices.data(), idx.data(), idx.size_bytes(),
                                           cudaMemcpyHostToDevice, state_->stream),
                           where);
        return state_->indices.data();
#else
        (void)where;
        return idx.data();
#endif
    }

    T* scratch(detail::device_buffer<T>& buffer, std::size_t n, const char* where) {
        buffer.reserve_discard(n, state_->account, where);
        return buffer.data();
    }

    void adam_apply(T* p, const T* g, T* m, T* v, std::size_t n, const adam_hyperparameters& h) {
        if (n == 0) return;
        const double step = static_cast<double>(h.step);
        detail::adam_fn<T> f{p,
                             g,
                             m,
                             v,
                             static_cast<T>(h.beta1),
                             static_cast<T>(h.beta2),
                             static_cast<T>(h.weight_decay),
                             static_cast<T>(h.eps),
                             static_cast<T>(h.learning_rate / (1.0 - std::pow(h.beta1, step))),
                             static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, step)))};
        for_each_index(n, f, "thrust_backend::adam_update");
    }

    // ---- row and column sums of a row-major n×h block --------------------------------------

#if SAMS_THRUST_CUDA
    static void check_int_dims(std::size_t a, std::size_t b, std::size_t c, const char* where) {
        constexpr auto limit = static_cast<std::size_t>(INT_MAX);
        if (a > limit || b > limit || c > limit)
            detail::fail(where, "a dimension exceeds cuBLAS's int range");
    }
    const T* ones(std::size_t n, const char* where) {
        if (state_->ones_filled < n) {
            state_->ones.reserve_discard(n, state_->account, where);
            fill_n(state_->ones.data(), n, T(1), where);
            state_->ones_filled = n;
        }
        return state_->ones.data();
    }
    // out = A·x or Aᵀ·x for the column-major h×n view of the row-major n×h block.
    void gemv(bool transposed, const T* a, std::size_t n, std::size_t h, const T* x, T* out, const char* where) {
        check_int_dims(n, h, 0, where);
        const cublasHandle_t handle = state_->cublas.get(state_->stream);
        const T one = T(1), zero = T(0);
        const auto op = transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
        const int m_ = static_cast<int>(h), n_ = static_cast<int>(n), ld = static_cast<int>(std::max<std::size_t>(1, h));
        if constexpr (std::is_same_v<T, float>)
            detail::cublas_check(cublasSgemv(handle, op, m_, n_, &one, a, ld, x, 1, &zero, out, 1), where);
        else
            detail::cublas_check(cublasDgemv(handle, op, m_, n_, &one, a, ld, x, 1, &zero, out, 1), where);
    }
#else
    using row_map = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
    using const_row_map = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
#endif

    void row_sums_raw(const T* x, std::size_t n, std::size_t h, T* out, const char* where) {
        if (n == 0) return;
#if SAMS_THRUST_CUDA
        gemv(true, x, n, h, ones(h, where), out, where);
#else
        (void)where;
        for (std::size_t i = 0; i < n; ++i) out[i] = const_row_map(x + i * h, detail_index(h)).sum();
#endif
    }

    void column_sums_raw(const T* x, std::size_t n, std::size_t h, T* out, const char* where) {
        if (h == 0) return;
        if (n == 0) {
            fill_n(out, h, T(0), where);
            return;
        }
#if SAMS_THRUST_CUDA
        gemv(false, x, n, h, ones(n, where), out, where);
#else
        (void)where;
        // Row by row, contiguous adds: the same order as the Eigen backend.
        row_map o(out, detail_index(h));
        o.setZero();
        for (std::size_t i = 0; i < n; ++i) o += const_row_map(x + i * h, detail_index(h));
#endif
    }

#if !SAMS_THRUST_CUDA
    static Eigen::Index detail_index(std::size_t n) noexcept { return static_cast<Eigen::Index>(n); }

    using plain_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    static Eigen::Map<plain_matrix> map(T* p, std::size_t r, std::size_t c) noexcept {
        return Eigen::Map<plain_matrix>(p, detail_index(r), detail_index(c));
    }
    static Eigen::Map<const plain_matrix> map(const T* p, std::size_t r, std::size_t c) noexcept {
        return Eigen::Map<const plain_matrix>(p, detail_index(r), detail_index(c));
    }

#endif

    std::shared_ptr<detail::thrust_backend_state<T>> state_;
};

static_assert(backend<thrust_backend<float>>, "sams::thrust_backend<float> must model sams::backend");
static_assert(backend<thrust_backend<double>>, "sams::thrust_backend<double> must model sams::backend");

}  // namespace sams
