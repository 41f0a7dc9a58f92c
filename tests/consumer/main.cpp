// The program every consumer test builds: it needs only <sams/sams.hpp>, checks that the
// headers it got are the version CMake said it found, and exercises a few public pieces.
#include <sams/sams.hpp>

#include <cstdio>
#include <vector>

int main() {
    if (sams::version_major != SAMS_EXPECTED_VERSION_MAJOR ||
        sams::version_minor != SAMS_EXPECTED_VERSION_MINOR ||
        sams::version_patch != SAMS_EXPECTED_VERSION_PATCH) {
        std::fprintf(stderr, "version mismatch: headers say %d.%d.%d\n", sams::version_major,
                     sams::version_minor, sams::version_patch);
        return 1;
    }

    sams::scheduler_config cfg;
    cfg.validate();
    cfg.select.ratio = 2.0;
    bool rejected = false;
    try {
        cfg.validate();
    } catch (const sams::error&) {
        rejected = true;
    }
    if (!rejected) {
        std::fprintf(stderr, "an out-of-range selection ratio was accepted\n");
        return 1;
    }

    std::vector<float> contexts(6, 1.0f);
    const sams::matrix_view<const float> view{contexts.data(), 2, 3, 0};
    sams::rng gen(42);
    const double u = gen.uniform();
    if (view(1, 2) != 1.0f || !(u >= 0.0 && u < 1.0)) return 1;

    std::printf("sams %d.%d.%d consumed\n", sams::version_major, sams::version_minor, sams::version_patch);
    return 0;
}
