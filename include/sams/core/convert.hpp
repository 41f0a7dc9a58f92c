// A batch in one floating-point type viewed as a batch in another: a host that computes its
// log-probs and contexts in double can step a float scheduler without a copy loop of its
// own. The converter owns the converted buffers and reuses them, so converting batches of a
// steady size allocates nothing.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <sams/core/views.hpp>

namespace sams {

/// Converts a pair_batch<From> (host memory) into a pair_batch<To> whose views point into
/// this object's buffers; valid until the next convert() or the converter's destruction.
/// Values are converted with static_cast<To>, element by element (a double outside float's
/// range becomes ±Inf, which the scheduler's checks then reject). `ids` are viewed, not copied.
template <std::floating_point To>
class batch_converter {
public:
    template <std::floating_point From>
    [[nodiscard]] const pair_batch<To>& convert(const pair_batch<From>& in) {
        out_.policy_chosen = copy(in.policy_chosen, policy_chosen_);
        out_.policy_rejected = copy(in.policy_rejected, policy_rejected_);
        out_.reference_chosen = copy(in.reference_chosen, reference_chosen_);
        out_.reference_rejected = copy(in.reference_rejected, reference_rejected_);
        out_.chosen_length = copy(in.chosen_length, chosen_length_);
        out_.rejected_length = copy(in.rejected_length, rejected_length_);
        out_.contexts = copy(in.contexts, contexts_);
        out_.sketches = copy(in.sketches, sketches_);
        out_.ids = in.ids;
        return out_;
    }

private:
    template <class From>
    static std::span<const To> copy(std::span<const From> src, std::vector<To>& dst) {
        dst.resize(src.size());
        for (std::size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<To>(src[i]);
        return {dst.data(), dst.size()};
    }
    // A strided matrix becomes a contiguous one. A null view or a row_stride below cols
    // stays so, for the checks that follow to report it as they would the original.
    template <class From>
    static matrix_view<const To> copy(const matrix_view<const From>& src, std::vector<To>& dst) {
        if (src.data == nullptr) return {nullptr, src.rows, src.cols, src.row_stride};
        if (src.stride() < src.cols) return {dst.data(), src.rows, src.cols, src.row_stride};
        dst.resize(src.rows * src.cols);
        for (std::size_t r = 0; r < src.rows; ++r) {
            const From* row = src.row(r);
            for (std::size_t c = 0; c < src.cols; ++c) dst[r * src.cols + c] = static_cast<To>(row[c]);
        }
        return {dst.data(), src.rows, src.cols, 0};
    }

    std::vector<To> policy_chosen_, policy_rejected_, reference_chosen_, reference_rejected_;
    std::vector<To> chosen_length_, rejected_length_, contexts_, sketches_;
    pair_batch<To> out_{};
};

}  // namespace sams
