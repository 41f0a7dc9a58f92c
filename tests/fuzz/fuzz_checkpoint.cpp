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

/// One good batch must step a scheduler the decoder accepted.
template <class Scheduler>
void step_once(Scheduler& s) {
    const sams_fuzz::good_batch<typename Scheduler::value_type> batch(s.context_dim());
    try {
        (void)s.step(batch.batch());
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
