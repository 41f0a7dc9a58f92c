// The default context extractor (docs/contexts.md): masked mean over each response's valid tokens per
// layer, chosen and rejected combined, then reduced over layers (flattened, averaged, last
// layer, or a fixed seeded Gaussian random projection computed with an Eigen GEMM).
#pragma once

#include <Eigen/Core>

#include <sams/backend/eigen/gemm.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sams/context/concept.hpp>
#include <sams/context/context_matrix.hpp>
#include <sams/context/hidden_states.hpp>
#include <sams/core/error.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>

namespace sams {

/// How the chosen and the rejected response's pooled vectors become one per layer.
enum class context_combine {
    average,      ///< (chosen + rejected) / 2, width d
    concatenate,  ///< [chosen, rejected], width 2d
};

/// How the per-layer combined vectors (width g = d or 2d) become the context.
enum class layer_reduction {
    flatten_layers,     ///< [layer_0, layer_1, …] in selection order: width (selected layers)·g
    mean_layers,        ///< mean over the selected layers: width g
    last_layer,         ///< the last (deepest) selected layer only: width g
    random_projection,  ///< flattened, then multiplied by a fixed N(0, 1/D') matrix: width D'
};

/// Options of mean_pool_extractor.
struct mean_pool_options {
    /// Layer indices to use, strictly increasing; empty: every layer. With a Hugging Face
    /// `output_hidden_states` tuple, index 0 is the embedding output.
    std::vector<std::size_t> layers{};
    context_combine combine = context_combine::average;
    layer_reduction reduce = layer_reduction::flatten_layers;
    std::size_t projection_dim = 0;  ///< D' > 0, used (and required) by random_projection only
    std::uint64_t seed = 0;          ///< seeds the projection matrix

    /// Throws sams::invalid_argument naming the first bad field.
    void validate() const {
        for (std::size_t i = 1; i < layers.size(); ++i)
            detail::require(layers[i - 1] < layers[i], "mean_pool_options.layers", [&] {
                return "must be strictly increasing, got " + std::to_string(layers[i - 1]) + " before " +
                       std::to_string(layers[i]) + " at position " + std::to_string(i);
            });
        if (reduce == layer_reduction::random_projection)
            detail::require(projection_dim > 0, "mean_pool_options.projection_dim",
                            "must be > 0 for layer_reduction::random_projection");
    }
    friend bool operator==(const mean_pool_options&, const mean_pool_options&) = default;
};

/// Masked mean pooling over valid tokens, per selected layer and side (docs/contexts.md).
///
/// Only tokens whose mask entry is nonzero are read; padding may hold anything, even NaN.
/// A pair whose mask has no valid token on a side is rejected (sams::invalid_argument naming
/// the pair index and the side), as is a NaN or Inf at a valid token. Sums are accumulated
/// in double. After the first call with a given shape (or after prepare()), extract()
/// allocates nothing: its workspaces and the projection matrix are kept and reused.
///
/// The projection matrix (random_projection) is N×D' with N the flattened width, entries
/// N(0, 1/D') drawn row-major from sams::rng(seed, projection_stream); it depends only on
/// (seed, N, D'), so two extractors with the same options project identically.
template <class T>
class mean_pool_extractor {
    static_assert(std::is_floating_point_v<T>, "sams::mean_pool_extractor<T>: T must be float or double");

public:
    using value_type = T;
    /// The sams::rng stream the projection matrix is drawn from.
    static constexpr std::uint64_t projection_stream = 0x636f6e746578ULL;  // "contex"

    mean_pool_extractor() = default;
    explicit mean_pool_extractor(mean_pool_options options) : options_(checked(std::move(options))) {}

    [[nodiscard]] const mean_pool_options& options() const noexcept { return options_; }

    /// Number of layers this extractor uses out of `layers`; throws if a selected index is out of range.
    [[nodiscard]] std::size_t selected_layers(std::size_t layers) const {
        detail::require(layers > 0, "mean_pool_extractor: layers", "must be > 0");
        if (options_.layers.empty()) return layers;
        detail::require(options_.layers.back() < layers, "mean_pool_extractor: options.layers", [&] {
            return "selects layer " + std::to_string(options_.layers.back()) +
                   " but the hidden states have " + std::to_string(layers) + " layers";
        });
        return options_.layers.size();
    }

    /// Width of the flattened per-layer combined vectors (the projection's input width N).
    [[nodiscard]] std::size_t flattened_dim(std::size_t layers, std::size_t dim) const {
        return selected_layers(layers) * side_width(dim);
    }

    /// D, the context width for hidden states with `layers` layers of width `dim`.
    [[nodiscard]] std::size_t output_dim(std::size_t layers, std::size_t dim) const {
        detail::require(dim > 0, "mean_pool_extractor: dim", "must be > 0");
        switch (options_.reduce) {
            case layer_reduction::flatten_layers:
                return flattened_dim(layers, dim);
            case layer_reduction::mean_layers:
            case layer_reduction::last_layer:
                (void)selected_layers(layers);
                return side_width(dim);
            case layer_reduction::random_projection:
                (void)selected_layers(layers);
                return options_.projection_dim;
        }
        return 0;
    }

    /// Sizes the workspaces (and draws the projection matrix) for batches of `pairs` pairs,
    /// so that even the first extract() of that shape allocates nothing.
    void prepare(std::size_t layers, std::size_t pairs, std::size_t dim) {
        (void)output_dim(layers, dim);
        reserve(layers, pairs, dim);
    }

    /// Writes the B×D contexts into `out` (B = chosen.pairs, D = output_dim(layers, dim)).
    /// Validates shapes, masks and values before writing anything into `out`.
    template <class M>
    void extract(const hidden_states_view<T>& chosen, const hidden_states_view<T>& rejected,
                 const token_mask_view<M>& chosen_mask, const token_mask_view<M>& rejected_mask,
                 matrix_view<T> out) {
        constexpr const char* where = "mean_pool_extractor::extract";
        check_inputs(chosen, rejected, chosen_mask, rejected_mask, where);
        const std::size_t pairs = chosen.pairs, dim = chosen.dim;
        const std::size_t width = output_dim(chosen.layers, dim);
        detail::require(out.data != nullptr, where, "out has a null data pointer");
        detail::require(out.rows == pairs && out.cols == width, where, [&] {
            return "out is " + std::to_string(out.rows) + "x" + std::to_string(out.cols) + ", expected " +
                   std::to_string(pairs) + "x" + std::to_string(width) + " (pairs x output_dim)";
        });
        detail::require(out.stride() >= out.cols, where, [&] {
            return "out.row_stride " + std::to_string(out.stride()) + " is smaller than its " +
                   std::to_string(out.cols) + " columns";
        });

        reserve(chosen.layers, pairs, dim);
        detail::check_mask(chosen_mask, pairs, chosen.tokens, true, where, std::span(count_chosen_));
        detail::check_mask(rejected_mask, pairs, rejected.tokens, false, where, std::span(count_rejected_));
        pool(chosen, rejected, chosen_mask, rejected_mask, where);
        // Everything is validated: only now is the caller's buffer touched.
        write(chosen.layers, pairs, dim, out);
    }

    /// Convenience: the contexts in a new owned matrix.
    template <class M>
    [[nodiscard]] context_matrix<T> extract(const hidden_states_view<T>& chosen,
                                            const hidden_states_view<T>& rejected,
                                            const token_mask_view<M>& chosen_mask,
                                            const token_mask_view<M>& rejected_mask) {
        check_inputs(chosen, rejected, chosen_mask, rejected_mask, "mean_pool_extractor::extract");
        context_matrix<T> result(chosen.pairs, output_dim(chosen.layers, chosen.dim));
        extract(chosen, rejected, chosen_mask, rejected_mask, result.view());
        return result;
    }

    /// The N×D' projection matrix drawn so far (empty before the first random-projection use).
    [[nodiscard]] matrix_view<const T> projection() const noexcept {
        return {projection_.data(), projection_rows_, options_.projection_dim, options_.projection_dim};
    }

private:
    static mean_pool_options checked(mean_pool_options o) {
        o.validate();
        return o;
    }

    [[nodiscard]] std::size_t side_width(std::size_t dim) const noexcept {
        return options_.combine == context_combine::concatenate ? 2 * dim : dim;
    }

    // Layers that are pooled at all: last_layer needs only the deepest selected one.
    [[nodiscard]] std::size_t pooled_layers(std::size_t layers) const {
        return options_.reduce == layer_reduction::last_layer ? 1 : selected_layers(layers);
    }
    [[nodiscard]] std::size_t pooled_layer_index(std::size_t j, std::size_t layers) const noexcept {
        const std::size_t n = options_.layers.empty() ? layers : options_.layers.size();
        const std::size_t pos = options_.reduce == layer_reduction::last_layer ? n - 1 : j;
        return options_.layers.empty() ? pos : options_.layers[pos];
    }

    template <class M>
    static void check_inputs(const hidden_states_view<T>& chosen, const hidden_states_view<T>& rejected,
                             const token_mask_view<M>& chosen_mask, const token_mask_view<M>& rejected_mask,
                             const char* where) {
        static_assert(std::is_arithmetic_v<M>,
                      "sams: a token mask's element type must be arithmetic or bool");
        detail::check_hidden_states(chosen, where, "chosen hidden states");
        detail::check_hidden_states(rejected, where, "rejected hidden states");
        detail::require(
            chosen.layers == rejected.layers && chosen.pairs == rejected.pairs && chosen.dim == rejected.dim,
            where, [&] {
                return "chosen hidden states are " + std::to_string(chosen.layers) + " layers x " +
                       std::to_string(chosen.pairs) + " pairs x dim " + std::to_string(chosen.dim) +
                       ", rejected are " + std::to_string(rejected.layers) + " x " +
                       std::to_string(rejected.pairs) + " x " + std::to_string(rejected.dim) +
                       " (layers, pairs and dim must match; token counts may differ)";
            });
        (void)chosen_mask;
        (void)rejected_mask;
    }

    void reserve(std::size_t layers, std::size_t pairs, std::size_t dim) {
        count_chosen_.resize(pairs);
        count_rejected_.resize(pairs);
        sum_.resize(dim);
        pooled_.resize(pairs * pooled_layers(layers) * 2 * dim);
        if (options_.reduce == layer_reduction::random_projection) {
            const std::size_t n = flattened_dim(layers, dim);
            features_.resize(pairs * n);
            draw_projection(n);
        }
    }

    void draw_projection(std::size_t n) {
        if (projection_rows_ == n) return;
        const std::size_t dp = options_.projection_dim;
        projection_.resize(n * dp);
        rng r(options_.seed, projection_stream);
        const double scale = 1.0 / std::sqrt(static_cast<double>(dp));
        for (T& v : projection_) v = static_cast<T>(scale * r.normal());
        projection_rows_ = n;
    }

    // pooled_ layout: [pair][pooled layer][side: 0 chosen, 1 rejected][dim].
    template <class M>
    void pool(const hidden_states_view<T>& chosen, const hidden_states_view<T>& rejected,
              const token_mask_view<M>& chosen_mask, const token_mask_view<M>& rejected_mask,
              const char* where) {
        const std::size_t layers = chosen.layers, dim = chosen.dim, np = pooled_layers(layers);
        for (std::size_t p = 0; p < chosen.pairs; ++p)
            for (std::size_t j = 0; j < np; ++j) {
                const std::size_t l = pooled_layer_index(j, layers);
                T* dst = pooled_.data() + ((p * np + j) * 2) * dim;
                pool_one(chosen, chosen_mask, p, l, count_chosen_[p], dst, true, where);
                pool_one(rejected, rejected_mask, p, l, count_rejected_[p], dst + dim, false, where);
            }
    }

    template <class M>
    void pool_one(const hidden_states_view<T>& h, const token_mask_view<M>& mask, std::size_t p,
                  std::size_t l, std::size_t count, T* dst, bool chosen_side, const char* where) {
        std::fill(sum_.begin(), sum_.end(), 0.0);
        const std::size_t dim = h.dim;
        double* acc = sum_.data();
        for (std::size_t t = 0; t < h.tokens; ++t) {
            if (!mask.valid(p, t)) continue;
            const T* x = h.token_ptr(l, p, t);
            if (h.dim_stride == 1) {
                for (std::size_t k = 0; k < dim; ++k) acc[k] += static_cast<double>(x[k]);
            } else {
                for (std::size_t k = 0; k < dim; ++k)
                    acc[k] += static_cast<double>(x[static_cast<std::ptrdiff_t>(k) * h.dim_stride]);
            }
        }
        const double n = static_cast<double>(count);
        bool finite = true;
        for (std::size_t k = 0; k < dim; ++k) {
            const double mean = acc[k] / n;
            finite = finite && std::isfinite(mean);
            dst[k] = static_cast<T>(mean);
        }
        // A NaN or Inf at any valid token makes its sum non-finite, so one check per vector suffices.
        detail::require(finite, where, [&] {
            return std::string(detail::side_name(chosen_side)) + " hidden states of pair " +
                   std::to_string(p) +
                   " have NaN or Inf (or a sum that overflows) at a valid token of layer " +
                   std::to_string(l);
        });
    }

    void write(std::size_t layers, std::size_t pairs, std::size_t dim, matrix_view<T> out) {
        const std::size_t np = pooled_layers(layers), g = side_width(dim);
        const bool concat = options_.combine == context_combine::concatenate;
        const bool project = options_.reduce == layer_reduction::random_projection;
        const std::size_t flat = np * g;
        for (std::size_t p = 0; p < pairs; ++p) {
            const T* src = pooled_.data() + p * np * 2 * dim;
            if (options_.reduce == layer_reduction::mean_layers) {
                T* row = out.row(p);
                for (std::size_t c = 0; c < g; ++c) {
                    double s = 0.0;
                    for (std::size_t j = 0; j < np; ++j) s += combined(src + j * 2 * dim, c, dim, concat);
                    row[c] = static_cast<T>(s / static_cast<double>(np));
                }
                continue;
            }
            // flatten_layers, last_layer (np == 1) and the projection's input share one layout.
            T* row = project ? features_.data() + p * flat : out.row(p);
            for (std::size_t j = 0; j < np; ++j)
                for (std::size_t c = 0; c < g; ++c)
                    row[j * g + c] = static_cast<T>(combined(src + j * 2 * dim, c, dim, concat));
        }
        if (project) project_features(pairs, flat, out);
    }

    // out = features_ · projection_ through the library's tiled GEMM (backend/eigen/gemm.hpp),
    // which keeps Eigen's packed blocks on the stack: no allocation at any size.
    void project_features(std::size_t pairs, std::size_t flat, matrix_view<T> out) const {
        using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        using index = Eigen::Index;
        const auto rows = static_cast<index>(pairs), n = static_cast<index>(flat);
        const auto dp = static_cast<index>(options_.projection_dim);
        const Eigen::Map<const row_major> x(features_.data(), rows, n);
        const Eigen::Map<const row_major> r(projection_.data(), n, dp);
        Eigen::Map<row_major, Eigen::Unaligned, Eigen::OuterStride<>> o(
            out.data, rows, dp, Eigen::OuterStride<>(static_cast<index>(out.stride())));
        detail::tiled_gemm(T(1), x, r, T(0), o);
    }

    // Entry c of one layer's combined vector; `pair_layer` points at [chosen d | rejected d].
    static double combined(const T* pair_layer, std::size_t c, std::size_t dim, bool concat) noexcept {
        if (concat) return static_cast<double>(pair_layer[c]);
        return 0.5 * (static_cast<double>(pair_layer[c]) + static_cast<double>(pair_layer[dim + c]));
    }

    mean_pool_options options_{};
    std::vector<std::size_t> count_chosen_{};
    std::vector<std::size_t> count_rejected_{};
    std::vector<double> sum_{};
    std::vector<T> pooled_{};
    std::vector<T> features_{};
    std::vector<T> projection_{};
    std::size_t projection_rows_ = 0;
};

static_assert(context_extractor<mean_pool_extractor<float>, float>,
              "mean_pool_extractor<float> must model sams::context_extractor (docs/concepts.md)");
static_assert(context_extractor<mean_pool_extractor<double>, double>,
              "mean_pool_extractor<double> must model sams::context_extractor (docs/concepts.md)");

}  // namespace sams
