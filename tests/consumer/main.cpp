// The program every consumer test builds: it needs only <sams/sams.hpp>, checks that the
// headers it got are the version CMake said it found, and exercises a few public pieces.
#include <sams/sams.hpp>

#include <cstdio>
#include <vector>

// A package built with the CBLAS path (SAMS_WITH_BLAS) must hand it on through sams::sams.
#if defined(SAMS_EXPECT_CBLAS) && !defined(SAMS_USE_CBLAS)
#error "sams was built with SAMS_WITH_BLAS, but sams::sams did not define SAMS_USE_CBLAS"
#endif

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

    // Two steps of a tiny scheduler: its products (through CBLAS where on) link and run.
    sams::scheduler_config small;
    small.net.hidden = 16;
    small.net.depth = 3;
    small.net.block_size = 4;
    small.net.explore_depth = 3;
    small.pool.capacity_rows = 16;
    sams::sams_scheduler<sams::eigen_backend<float>> scheduler(small, 3, 7);
    const std::vector<float> a_w{-1.0f, -2.0f, -3.0f, -4.0f}, a_l{-2.0f, -2.0f, -1.0f, -5.0f};
    const std::vector<float> r_w(4, -2.0f), r_l(4, -2.0f), batch_contexts(12, 0.5f);
    for (int t = 0; t < 2; ++t) {
        const auto d = scheduler.step({.policy_chosen = a_w,
                                       .policy_rejected = a_l,
                                       .reference_chosen = r_w,
                                       .reference_rejected = r_l,
                                       .contexts = {batch_contexts.data(), 4, 3, 0}});
        if (d.selected.size() != scheduler.selection_count(4)) return 1;
    }

    std::printf("sams %d.%d.%d consumed\n", sams::version_major, sams::version_minor, sams::version_patch);
    return 0;
}
