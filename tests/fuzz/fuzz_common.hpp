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
inline std::vector<std::uint8_t> file_input(const std::vector<std::uint8_t>& file) {
    std::vector<std::uint8_t> in{mode_file};
    in.insert(in.end(), file.begin(), file.end());
    return in;
}

}  // namespace sams_fuzz
