// The elementwise and per-element-index functors of sams::thrust_backend. They run in CUDA
// kernels under nvcc and as plain loops on the CPP/OMP systems, so everything here is
// SAMS_HOST_DEVICE and free of host-only library calls.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include <sams/backend/concept.hpp>
#include <sams/backend/thrust/config.hpp>
#include <sams/backend/types.hpp>

namespace sams::detail {

// Math that resolves to the CUDA device functions in device code and to <cmath> on the host.
SAMS_HOST_DEVICE inline float device_exp(float x) {
#if defined(__CUDA_ARCH__)
    return ::expf(x);
#else
    return std::exp(x);
#endif
}
SAMS_HOST_DEVICE inline double device_exp(double x) {
#if defined(__CUDA_ARCH__)
    return ::exp(x);
#else
    return std::exp(x);
#endif
}
SAMS_HOST_DEVICE inline float device_sqrt(float x) {
#if defined(__CUDA_ARCH__)
    return ::sqrtf(x);
#else
    return std::sqrt(x);
#endif
}
SAMS_HOST_DEVICE inline double device_sqrt(double x) {
#if defined(__CUDA_ARCH__)
    return ::sqrt(x);
#else
    return std::sqrt(x);
#endif
}

/// The largest finite value, usable in device code (std::numeric_limits is not, without
/// nvcc's relaxed-constexpr flag).
template <class T>
struct finite_bound;
template <>
struct finite_bound<float> {
    static constexpr float value = FLT_MAX;
};
template <>
struct finite_bound<double> {
    static constexpr double value = DBL_MAX;
};

/// sams::counter_uniform of backend/concept.hpp, callable from kernels. The static_assert
/// below pins it to the concept's formula, so every backend draws the same dropout masks.
SAMS_HOST_DEVICE constexpr double kernel_counter_uniform(std::uint64_t seed, std::uint64_t index) noexcept {
    std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
}
static_assert(kernel_counter_uniform(0, 0) == counter_uniform(0, 0) &&
                  kernel_counter_uniform(42, 7) == counter_uniform(42, 7) &&
                  kernel_counter_uniform(0xDEADBEEFULL, 123456789ULL) ==
                      counter_uniform(0xDEADBEEFULL, 123456789ULL),
              "thrust backend: kernel_counter_uniform must equal sams::counter_uniform");

template <class T>
SAMS_HOST_DEVICE inline T activate(activation act, T z) {
    if (act == activation::relu) return z > T(0) ? z : T(0);
    return z / (T(1) + device_exp(-z));
}

template <class T>
SAMS_HOST_DEVICE inline T activate_grad(activation act, T z, T grad_a) {
    if (act == activation::relu) return z > T(0) ? grad_a : T(0);
    const T s = T(1) / (T(1) + device_exp(-z));
    return grad_a * s * (T(1) + z * (T(1) - s));
}

// ---- transforms (thrust::transform) ---------------------------------------------------------

template <class T>
struct not_finite_fn {
    SAMS_HOST_DEVICE unsigned operator()(T x) const {
        // NaN fails both comparisons; ±Inf fails one.
        return (x <= finite_bound<T>::value && x >= -finite_bound<T>::value) ? 0u : 1u;
    }
};

template <class T>
struct axpby_fn {
    T a, b;
    SAMS_HOST_DEVICE T operator()(T x, T y) const { return a * x + b * y; }
};

template <class T>
struct scale_fn {
    T s;
    SAMS_HOST_DEVICE T operator()(T x) const { return s * x; }
};

template <class T>
struct activation_fn {
    activation act;
    SAMS_HOST_DEVICE T operator()(T z) const { return activate(act, z); }
};

template <class T>
struct activation_grad_fn {
    activation act;
    SAMS_HOST_DEVICE T operator()(T z, T grad_a) const { return activate_grad(act, z, grad_a); }
};

template <class T>
struct plus_fn {
    SAMS_HOST_DEVICE T operator()(T x, T y) const { return x + y; }
};

template <class T>
struct times_fn {
    SAMS_HOST_DEVICE T operator()(T x, T y) const { return x * y; }
};

// ---- per-index kernels (thrust::for_each_n over a counting iterator) ------------------------

/// dst(i, :) = src(idx[i], :), one element per index k = i·cols + j.
template <class T>
struct gather_rows_fn {
    const T* src;
    T* dst;
    const std::size_t* idx;
    std::size_t cols;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const std::size_t i = k / cols, j = k % cols;
        dst[k] = src[idx[i] * cols + j];
    }
};

/// dst(idx[i], :) = src(i, :).
template <class T>
struct scatter_rows_fn {
    const T* src;
    T* dst;
    const std::size_t* idx;
    std::size_t cols;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const std::size_t i = k / cols, j = k % cols;
        dst[idx[i] * cols + j] = src[k];
    }
};

template <class T>
struct gather_fn {
    const T* src;
    T* dst;
    const std::size_t* idx;
    SAMS_HOST_DEVICE void operator()(std::size_t i) const { dst[i] = src[idx[i]]; }
};

template <class T>
struct scatter_fn {
    const T* src;
    T* dst;
    const std::size_t* idx;
    SAMS_HOST_DEVICE void operator()(std::size_t i) const { dst[idx[i]] = src[i]; }
};

/// z(i, j) += bias[j]; with `a` set, also a(i, j) = act(z(i, j)) (fused bias + activation).
template <class T>
struct bias_activation_fn {
    T* z;
    T* a;
    const T* bias;
    std::size_t cols;
    activation act;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const T v = z[k] + bias[k % cols];
        z[k] = v;
        if (a != nullptr) a[k] = activate(act, v);
    }
};

template <class T>
struct dropout_fn {
    T* mask;
    double p;
    T keep;
    std::uint64_t seed;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        mask[k] = kernel_counter_uniform(seed, k) < p ? T(0) : keep;
    }
};

/// LayerNorm forward, pass 1: out(i, j) = (x(i, j) − sum[i]·inv_h)², whose row sums give the variance.
template <class T>
struct centered_square_fn {
    const T* x;
    const T* sum;
    T* out;
    std::size_t cols;
    T inv_h;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const T d = x[k] - sum[k / cols] * inv_h;
        out[k] = d * d;
    }
};

/// LayerNorm forward, per row: rstd[i] = 1/√(var_sum[i]·inv_h + eps) (in place).
template <class T>
struct rstd_fn {
    T* rstd;
    T inv_h;
    T eps;
    SAMS_HOST_DEVICE void operator()(std::size_t i) const { rstd[i] = T(1) / device_sqrt(rstd[i] * inv_h + eps); }
};

/// LayerNorm forward, pass 2: x_hat = (x − mean)·rstd, y = gamma ∘ x_hat + beta.
template <class T>
struct layer_norm_output_fn {
    const T* x;
    const T* sum;
    const T* rstd;
    const T* gamma;
    const T* beta;
    T* x_hat;
    T* y;
    std::size_t cols;
    T inv_h;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const std::size_t i = k / cols, j = k % cols;
        const T xh = (x[k] - sum[i] * inv_h) * rstd[i];
        x_hat[k] = xh;
        y[k] = xh * gamma[j] + beta[j];
    }
};

/// out(i, j) = a(i, j) · b[j] (a row-broadcast product: grad_y ∘ gamma).
template <class T>
struct scale_columns_fn {
    const T* a;
    const T* b;
    T* out;
    std::size_t cols;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const { out[k] = a[k] * b[k % cols]; }
};

/// LayerNorm backward: grad_x = rstd·(g − mean(g) − x_hat·mean(g ∘ x_hat)), g = grad_y ∘ gamma,
/// from the row sums of g and of g ∘ x_hat.
template <class T>
struct layer_norm_grad_fn {
    const T* grad_y;
    const T* gamma;
    const T* x_hat;
    const T* rstd;
    const T* sum_g;
    const T* sum_gx;
    T* grad_x;
    std::size_t cols;
    T inv_h;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const std::size_t i = k / cols, j = k % cols;
        const T mean_g = sum_g[i] * inv_h;
        const T mean_gx = sum_gx[i] * inv_h;
        grad_x[k] = rstd[i] * (grad_y[k] * gamma[j] - mean_g - x_hat[k] * mean_gx);
    }
};

/// One output element of the block mean: dst(i, b) += Σ src(i, j)/block over the columns j of
/// src that fall in block b of the concatenated row. `first_block` is offset / block.
template <class T>
struct block_mean_fn {
    const T* src;
    T* dst;
    std::size_t src_cols;
    std::size_t dst_cols;
    std::size_t blocks;  // output columns touched per row
    std::size_t first_block;
    std::size_t block;
    std::size_t offset;
    T inv;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const std::size_t i = k / blocks;
        const std::size_t b = first_block + k % blocks;
        // The block's columns in src coordinates, clipped to [0, src_cols).
        const std::size_t lo = b * block > offset ? b * block - offset : 0;
        const std::size_t hi_raw = (b + 1) * block - offset;
        const std::size_t hi = hi_raw < src_cols ? hi_raw : src_cols;
        const T* row = src + i * src_cols;
        T sum = T(0);
        for (std::size_t j = lo; j < hi; ++j) sum += row[j];
        dst[i * dst_cols + b] += sum * inv;
    }
};

/// torch.optim.Adam's update for one element (see adam_hyperparameters), with the
/// bias-correction factors computed once on the host in double, as the Eigen backend does.
template <class T>
struct adam_fn {
    T* param;
    const T* grad;
    T* m;
    T* v;
    T beta1, beta2, weight_decay, eps, step_size, bias_correction2_sqrt;
    SAMS_HOST_DEVICE void operator()(std::size_t k) const {
        const T g = grad[k] + weight_decay * param[k];
        const T mk = beta1 * m[k] + (T(1) - beta1) * g;
        const T vk = beta2 * v[k] + (T(1) - beta2) * (g * g);
        m[k] = mk;
        v[k] = vk;
        param[k] -= step_size * mk / (device_sqrt(vk) / bias_correction2_sqrt + eps);
    }
};

/// (pred − target)² in double, from the difference in T (the Eigen backend's order).
template <class T>
struct squared_error_fn {
    const T* pred;
    const T* target;
    SAMS_HOST_DEVICE double operator()(std::size_t k) const {
        const auto d = static_cast<double>(pred[k] - target[k]);
        return d * d;
    }
};

template <class T>
struct mse_grad_fn {
    T scale;
    SAMS_HOST_DEVICE T operator()(T pred, T target) const { return scale * (pred - target); }
};

struct sum_double_fn {
    SAMS_HOST_DEVICE double operator()(double a, double b) const { return a + b; }
};
struct max_unsigned_fn {
    SAMS_HOST_DEVICE unsigned operator()(unsigned a, unsigned b) const { return a > b ? a : b; }
};

}  // namespace sams::detail
