// A host whose tensors live in xtensor containers. Each step its policy forward produces, for
// B pairs run as one batch of 2B sequences (chosen first, as TRL concatenates them):
//   hidden states [L][2B][T][d], a response-token mask [2B][T] (int64, as tokenizers emit),
//   and summed log-probs a_w, a_l (policy) and r_w, r_l (reference) as 1-D arrays.
// The xtensor adapter views all of it without copies, the mean-pool extractor turns the
// hidden states into contexts (written straight into an xtensor), and sams picks the pairs.
#include <sams/adapters/xtensor.hpp>
#include <sams/sams.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include <cstdint>
#include <cstdio>
#include <utility>

namespace xa = sams::xtensor_adapt;

int main() {
    constexpr std::size_t L = 4, B = 8, T = 12, d = 32, D = 64;  // D: projected context width
    sams::rng gen(7);

    // Contexts: per-layer masked mean over response tokens, chosen and rejected averaged,
    // layers flattened (L·d = 128) and randomly projected to D = 64 with a fixed seed.
    sams::mean_pool_options options;
    options.combine = sams::context_combine::average;
    options.reduce = sams::layer_reduction::random_projection;
    options.projection_dim = D;
    options.seed = 1;
    sams::mean_pool_extractor<float> extractor(options);
    extractor.prepare(L, B, d);  // workspaces and projection matrix now, no allocation later

    sams::scheduler_config config;  // library defaults: sigmoid DPO, β = 0.1, ρ = 0.5
    sams::sams_scheduler<sams::eigen_backend<float>> scheduler(config, extractor.output_dim(L, d), 42);

    // The host's buffers, refilled every step.
    xt::xarray<float> hidden = xt::zeros<float>({L, 2 * B, T, d});
    xt::xarray<std::int64_t> mask = xt::zeros<std::int64_t>({2 * B, T});
    xt::xarray<float> a_w = xt::zeros<float>({B}), a_l = a_w, r_w = a_w, r_l = a_w;
    xt::xtensor<float, 2> contexts = xt::zeros<float>({B, D});

    for (int step = 0; step < 5; ++step) {
        for (auto& v : hidden) v = static_cast<float>(gen.normal());
        for (std::size_t s = 0; s < 2 * B; ++s) {  // right padding: a response of 3..T tokens
            const std::size_t length = 3 + gen.below(T - 2);
            for (std::size_t t = 0; t < T; ++t) mask(s, t) = t < length ? 1 : 0;
        }
        for (std::size_t i = 0; i < B; ++i) {
            r_w(i) = static_cast<float>(-40 + 5 * gen.normal());
            r_l(i) = static_cast<float>(-40 + 5 * gen.normal());
            a_w(i) = r_w(i) + static_cast<float>(gen.normal());
            a_l(i) = r_l(i) + static_cast<float>(gen.normal());
        }

        // Views, no copies: split the 2B rows into chosen and rejected halves.
        const auto [h_w, h_l] = sams::split_chosen_rejected(xa::as_hidden_states(std::as_const(hidden)));
        const auto [m_w, m_l] = sams::split_chosen_rejected(xa::as_token_mask(std::as_const(mask)));
        extractor.extract(h_w, h_l, m_w, m_l, xa::as_matrix_view(contexts));

        auto batch = xa::make_pair_batch(a_w, a_l, r_w, r_l);
        batch.contexts = xa::as_matrix_view(std::as_const(contexts));
        const sams::decision<float> decision = scheduler.step(batch);

        std::printf("step %d: train on pairs", step);
        for (std::size_t i : decision.selected) std::printf(" %zu", i);
        std::printf("  (batch loss %.4f)\n", decision.metrics.batch_loss);
    }
    return 0;
}
