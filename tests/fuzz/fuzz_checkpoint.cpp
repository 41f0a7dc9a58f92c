// libFuzzer target for the checkpoint decoder (built by tests/fuzz/CMakeLists.txt with
// clang -fsanitize=fuzzer,address,undefined). For every input:
//   - deserialize() either throws sams::checkpoint_error or returns a scheduler; any other
//     exception, a crash, a leak, a hang or an allocation past -malloc_limit_mb is a finding;
//   - an accepted scheduler round-trips: serialize → deserialize → serialize is identical;
//   - an accepted scheduler can step: one good batch is accepted (a checkpoint restores a
//     state that can step, or it is refused).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "fuzz_common.hpp"

namespace {

[[noreturn]] void finding(const char* what) {
    std::fprintf(stderr, "fuzz_checkpoint: %s\n", what);
    std::abort();
}

/// A valid batch for the scheduler's context width: every loss and reward option is served
/// (references and lengths present), values well inside the accepted range.
template <class Scheduler>
void step_once(Scheduler& s) {
    using T = typename Scheduler::value_type;
    constexpr std::size_t B = 4;
    const std::size_t D = s.context_dim();
    std::vector<T> a_w{-3, -5, -2, -7}, a_l{-4, -4, -6, -1}, r_w{-3.5, -4.5, -3, -6}, r_l{-3.5, -4, -5, -2};
    std::vector<T> n_w{3, 5, 2, 7}, n_l{4, 4, 6, 2};
    std::vector<T> ctx(B * D);
    for (std::size_t k = 0; k < ctx.size(); ++k) ctx[k] = T(static_cast<double>(k % 7) * 0.25 - 0.75);
    const sams::pair_batch<T> batch{.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = r_w,
                                    .reference_rejected = r_l, .chosen_length = n_w, .rejected_length = n_l,
                                    .contexts = {ctx.data(), B, D}};
    try {
        (void)s.step(batch);
    } catch (const sams::error& e) {
        std::fprintf(stderr, "step after an accepted checkpoint: %s\n", e.what());
        finding("an accepted checkpoint cannot step");
    }
}

template <class Scheduler>
bool try_decode(const std::vector<std::uint8_t>& file) {
    try {
        Scheduler s = Scheduler::deserialize(file);
        const auto once = s.serialize();
        Scheduler again = Scheduler::deserialize(once);
        if (again.serialize() != once) finding("round trip: decode -> serialize -> decode differs");
        step_once(s);
        return true;
    } catch (const sams::checkpoint_error&) {
        return false;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "escaped: %s\n", e.what());
        finding("an exception other than sams::checkpoint_error escaped deserialize()");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto file = sams_fuzz::file_of(std::span<const std::uint8_t>(data, size));
    if (!try_decode<sams_fuzz::scheduler_d>(file)) (void)try_decode<sams_fuzz::scheduler_f>(file);
    return 0;
}
