// Parity: sams_scheduler on sams::thrust_backend<float> against the same scheduler on
// sams::eigen_backend<float> (same seed, same batches, 30 steps), plus the GPU-facing
// behaviour of the scheduler on the thrust backend: contexts in backend memory, the strong
// guarantee on bad pointers, a steady memory footprint and backend-independent checkpoints.
//
// Stated tolerances (float, sums in a different order; on CUDA also cuBLAS and FMA):
//   scores        |Δ| ≤ score_tol·max(1, |u|)   score_tol = 1e-4 (host systems), 1e-3 (CUDA)
//   training MSE  relative ≤ 1e-3 (host), 1e-2 (CUDA)
//   selection     identical on every step whose K-th and (K+1)-th scores are more than
//                 10·score_tol apart ("well separated"); warm-up steps draw from the same RNG
//                 stream and must be identical too.
// Per-pair losses and gradients are computed on the host from the same inputs: identical.
#include <doctest/doctest.h>

#include "support/parity_checks.hpp"

#include <sams/adapters/thrust.hpp>
#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/backend/thrust/thrust_backend.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

#include <thrust/device_vector.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

namespace {

using sams_test::check_scores;
using sams_test::check_step_metrics;
using sams_test::compare_selection;
using sams_test::selection_match;

using eigen_scheduler = sams::sams_scheduler<sams::eigen_backend<float>>;
using thrust_scheduler = sams::sams_scheduler<sams::thrust_backend<float>>;

constexpr double score_tol = SAMS_THRUST_CUDA ? 1e-3 : 1e-4;
constexpr double mse_tol = SAMS_THRUST_CUDA ? 1e-2 : 1e-3;

struct owned_batch {
    std::size_t B = 0, D = 0;
    std::vector<float> a_w, a_l, r_w, r_l, ctx;

    [[nodiscard]] sams::pair_batch<float> batch() const {
        return {.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = r_w,
                .reference_rejected = r_l, .contexts = {ctx.data(), B, D}};
    }
};

std::vector<owned_batch> stream_of(std::size_t steps, std::size_t B, std::size_t D, std::uint64_t seed) {
    sams::rng g(seed);
    std::vector<owned_batch> out(steps);
    for (auto& b : out) {
        b.B = B;
        b.D = D;
        for (std::size_t i = 0; i < B; ++i) {
            b.a_w.push_back(static_cast<float>(-10.0 + 3.0 * g.normal()));
            b.a_l.push_back(static_cast<float>(-10.0 + 3.0 * g.normal()));
            b.r_w.push_back(static_cast<float>(-10.0 + g.normal()));
            b.r_l.push_back(static_cast<float>(-10.0 + g.normal()));
        }
        for (std::size_t k = 0; k < B * D; ++k) b.ctx.push_back(static_cast<float>(2.0 * g.normal()));
    }
    return out;
}

sams::scheduler_config parity_config() {
    sams::scheduler_config c;
    c.net.hidden = 32;
    c.net.depth = 4;
    c.net.block_size = 8;  // E = 32·2/8 = 8
    c.net.explore_depth = 3;
    c.net.dropout = 0.1;  // the counter-based masks must agree across backends
    c.pool.capacity_rows = 64;
    c.pool.replay_batches = 3;
    c.opt.learning_rate = 1e-3;
    c.opt.early_stop_mse = 0.0;  // every update runs its full steps on both backends
    return c;
}

}  // namespace

TEST_CASE("thrust parity: 30 scheduler steps agree with the Eigen backend") {
    const std::size_t B = 16, D = 12, steps = 30;
    const auto cfg = parity_config();
    const auto batches = stream_of(steps, B, D, 99);
    eigen_scheduler se(cfg, D, 7);
    thrust_scheduler st(cfg, D, 7);
    sams::thrust_backend<float>& be = st.backend();

    std::size_t separated = 0;
    for (std::size_t t = 0; t < steps; ++t) {
        CAPTURE(t);
        const auto de = se.step(batches[t].batch());
        // Every other step the contexts come from backend memory (device memory under CUDA),
        // as a GPU trainer hands them over.
        sams::thrust_matrix<float> device_contexts;
        auto tb = batches[t].batch();
        if (t % 2 == 1) {
            be.upload(tb.contexts, device_contexts);
            tb.contexts = sams::matrix_view<const float>{device_contexts.data(), B, D, D};
        }
        const auto dt = st.step(tb);

        check_step_metrics(dt, de, score_tol, mse_tol);
        CHECK(dt.d_policy_chosen == de.d_policy_chosen);
        const auto match = compare_selection(dt, de, score_tol, t);
        separated += match == selection_match::separated ? 1 : 0;
        if (match == selection_match::diverged) break;
    }
    CHECK(separated >= 20);
}

TEST_CASE("thrust parity: the thrust scheduler's memory is steady and checkpoints move between backends") {
    const std::size_t B = 8, D = 6;
    auto cfg = parity_config();
    cfg.pool.capacity_rows = 16;  // full after four updates
    const auto batches = stream_of(40, B, D, 5);
    thrust_scheduler st(cfg, D, 3);
    std::size_t steady = 0;
    for (std::size_t t = 0; t < 30; ++t) {
        (void)st.step(batches[t].batch());
        if (t == 10) steady = st.backend().device_bytes();
        if (t > 10) CHECK(st.backend().device_bytes() == steady);
    }
    CHECK(steady > 0);
    CHECK(st.backend().peak_device_bytes() >= steady);

    // The checkpoint format does not depend on the backend: resume the thrust run on Eigen.
    auto se = eigen_scheduler::deserialize(st.serialize());
    for (std::size_t t = 30; t < 40; ++t) {
        const auto dt = st.step(batches[t].batch());
        const auto de = se.step(batches[t].batch());
        check_scores(dt, de, score_tol);
        CHECK(dt.selected == de.selected);
    }
}

TEST_CASE("thrust parity: device memory stays within the bound docs/backends.md derives from the config") {
    const std::size_t B = 16, D = 32;
    sams::scheduler_config c;
    c.net.hidden = 64;
    c.net.depth = 6;
    c.net.block_size = 16;
    c.net.explore_depth = 3;
    c.pool.capacity_rows = 64;
    c.pool.replay_batches = 4;
    c.opt.early_stop_mse = 0.0;
    thrust_scheduler st(c, D, 1);
    // Every parameter is held four times: value, gradient, Adam's m and v.
    const double h = 64, n = 6, e = static_cast<double>(c.net.feature_dim()), n2 = 3, d = D;
    const double params = 4 * (d * h + (n - 2) * (h * h + 3 * h) + 2 * h + 1) +
                          4 * ((n2 - 1) * (e * e + e) + (n2 - 2) * 2 * e + e + 1);
    CHECK(static_cast<double>(st.backend().device_bytes()) >= params * sizeof(float));
    const double k = B / 2, r = (4 + 1) * k;
    const double bound = params + 64 * (d + 1) + r * (h * (6 * (n - 2) + 8) + e * (4 * (n2 - 2) + 8)) +
                         B * (d + e) + r + h * (n - 2);
    for (const auto& b : stream_of(40, B, D, 17)) (void)st.step(b.batch());
    CHECK(st.pool_size() == 64);
    CHECK(static_cast<double>(st.backend().peak_device_bytes()) <= bound * sizeof(float));
}

TEST_CASE("thrust parity: bad context pointers throw and leave the scheduler unchanged") {
    const std::size_t B = 8, D = 6;
    const auto batches = stream_of(6, B, D, 11);
    thrust_scheduler st(parity_config(), D, 3);
    for (std::size_t t = 0; t < 3; ++t) (void)st.step(batches[t].batch());
    const auto before = st.serialize();

    auto bad = batches[3].batch();
    std::vector<unsigned char> raw(sizeof(float) * (B * D + 1));
    bad.contexts.data = reinterpret_cast<const float*>(raw.data() + 1);  // misaligned
    CHECK_THROWS_AS((void)st.step(bad), sams::invalid_argument);
    bad.contexts.data = nullptr;
    CHECK_THROWS_AS((void)st.step(bad), sams::invalid_argument);
    auto nan_batch = batches[3];
    nan_batch.ctx[5] = NAN;
    CHECK_THROWS_AS((void)st.step(nan_batch.batch()), sams::invalid_argument);
    CHECK(st.serialize() == before);
    CHECK(st.steps() == 3);
}

TEST_CASE("thrust adapters: a device_pair_batch staged to the host steps like the host batch") {
    const std::size_t B = 8, D = 6;
    const auto batches = stream_of(4, B, D, 21);
    thrust_scheduler from_device(parity_config(), D, 9);
    thrust_scheduler from_host(parity_config(), D, 9);
    sams::host_staging<float> staging;
    for (const auto& b : batches) {
        const thrust::device_vector<float> a_w(b.a_w.begin(), b.a_w.end()), a_l(b.a_l.begin(), b.a_l.end());
        const thrust::device_vector<float> r_w(b.r_w.begin(), b.r_w.end()), r_l(b.r_l.begin(), b.r_l.end());
        const thrust::device_vector<float> ctx(b.ctx.begin(), b.ctx.end());
        const sams::device_pair_batch<float> db{.policy_chosen = a_w,
                                                .policy_rejected = sams::device_array<float>(a_l.data(), B),
                                                .reference_chosen = r_w,
                                                .reference_rejected = {thrust::raw_pointer_cast(r_l.data()), B},
                                                .contexts = sams::device_matrix(ctx, B, D)};
        const auto& staged = staging.stage(db, from_device.backend());
        CHECK(staged.contexts.data == thrust::raw_pointer_cast(ctx.data()));  // contexts are not copied
        CHECK(std::vector<float>(staged.policy_chosen.begin(), staged.policy_chosen.end()) == b.a_w);
        CHECK(std::vector<float>(staged.reference_rejected.begin(), staged.reference_rejected.end()) == b.r_l);
        CHECK(staged.chosen_length.empty());
        const auto dd = from_device.step(staged);
        const auto dh = from_host.step(b.batch());
        CHECK(dd.score == dh.score);
        CHECK(dd.selected == dh.selected);
    }

    const thrust::device_vector<float> small(10);
    CHECK_THROWS_AS((void)sams::device_matrix(small, 3, 4), sams::invalid_argument);
    CHECK_THROWS_AS((void)sams::device_matrix(small, 2, 4, 3), sams::invalid_argument);
    CHECK(sams::device_matrix(small, 2, 4, 6).stride() == 6);
    sams::device_pair_batch<float> bad{.policy_chosen = {nullptr, 4}};
    CHECK_THROWS_AS((void)staging.stage(bad, from_device.backend()), sams::invalid_argument);
}
