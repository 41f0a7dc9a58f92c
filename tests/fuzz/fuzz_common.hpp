// What the checkpoint fuzzer and its corpus generator share: the input encoding and the
// schedulers it decodes into.
//
// An input is one mode byte and a body. Mode 0: the body is a payload, framed here with a
// valid checksum, so mutations reach the decoder instead of dying at the checksum (which an
// adversary who writes the file can always recompute). Mode 1: the body is a whole file as
// save() writes it, so the frame checks are fuzzed too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

namespace sams_fuzz {

using scheduler_d = sams::sams_scheduler<sams::eigen_backend<double>>;
using scheduler_f = sams::sams_scheduler<sams::eigen_backend<float>>;

inline constexpr std::uint8_t mode_payload = 0;
inline constexpr std::uint8_t mode_file = 1;

/// The checkpoint file an input stands for.
inline std::vector<std::uint8_t> file_of(std::span<const std::uint8_t> input) {
    if (input.empty()) return {};
    const auto body = input.subspan(1);
    if (input[0] == mode_payload)
        return sams::detail::frame_checkpoint(std::vector<std::uint8_t>(body.begin(), body.end()));
    return {body.begin(), body.end()};
}

/// The input of mode 0 for a checkpoint file (its payload).
inline std::vector<std::uint8_t> payload_input(const std::vector<std::uint8_t>& file) {
    constexpr std::size_t head = 8 + 4 + 8;
    std::vector<std::uint8_t> in{mode_payload};
    in.insert(in.end(), file.begin() + head, file.end() - 8);
    return in;
}
/// A valid batch of 4 pairs for any decoded scheduler of context width `D`: every loss and
/// reward option is served (references and lengths present), values well inside the accepted
/// range. The fuzzer and the unit test of the regression inputs step with it.
template <class T>
struct good_batch {
    static constexpr std::size_t B = 4;
    std::vector<T> a_w{-3, -5, -2, -7}, a_l{-4, -4, -6, -1}, r_w{-3.5, -4.5, -3, -6}, r_l{-3.5, -4, -5, -2};
    std::vector<T> n_w{3, 5, 2, 7}, n_l{4, 4, 6, 2};
    std::vector<T> ctx;
    std::size_t D;
    explicit good_batch(std::size_t d) : ctx(B * d), D(d) {
        for (std::size_t k = 0; k < ctx.size(); ++k) ctx[k] = T(static_cast<double>(k % 7) * 0.25 - 0.75);
    }
    [[nodiscard]] sams::pair_batch<T> batch() const {
        return {.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = r_w, .reference_rejected = r_l,
                .chosen_length = n_w, .rejected_length = n_l, .contexts = {ctx.data(), B, D}};
    }
};

inline std::vector<std::uint8_t> file_input(const std::vector<std::uint8_t>& file) {
    std::vector<std::uint8_t> in{mode_file};
    in.insert(in.end(), file.begin(), file.end());
    return in;
}

}  // namespace sams_fuzz
