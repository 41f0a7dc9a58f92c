// The smallest complete host loop: a linear "policy" whose log-prob of a response is θ·f,
// trained by DPO on the pairs SamS selects. A real trainer replaces the two dot products
// with its model's forward pass and the θ update with its backward pass and optimiser.
#include <sams/sams.hpp>

#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

int main() {
    constexpr std::size_t B = 32, D = 16;  // pairs per batch, feature (= context) width
    sams::rng data(1);
    std::vector<float> truth(D), theta(D, 0.0f), theta_ref(D, 0.0f);
    for (auto& t : truth) t = static_cast<float>(data.normal());

    sams::scheduler_config cfg;  // library defaults: sigmoid DPO loss, β = 0.1, ρ = 0.5
    sams::sams_scheduler<sams::eigen_backend<float>> sched(cfg, D, /*seed=*/42);

    std::vector<float> fw(B * D), fl(B * D), a_w(B), a_l(B), r_w(B), r_l(B), ctx(B * D);
    for (int step = 0; step < 100; ++step) {
        // 1. A batch of pairs: response features, labelled by the true reward (20% flipped).
        for (std::size_t i = 0; i < B; ++i) {
            float sw = 0, sl = 0;
            for (std::size_t j = 0; j < D; ++j) {
                fw[i * D + j] = static_cast<float>(data.normal());
                fl[i * D + j] = static_cast<float>(data.normal());
                sw += truth[j] * fw[i * D + j];
                sl += truth[j] * fl[i * D + j];
            }
            if ((sw < sl) != (data.uniform() < 0.2))
                for (std::size_t j = 0; j < D; ++j) std::swap(fw[i * D + j], fl[i * D + j]);
        }
        // 2. The host's forward pass: log-probs under the policy and the frozen reference,
        //    and a context per pair (here the feature difference; usually hidden states).
        for (std::size_t i = 0; i < B; ++i) {
            a_w[i] = a_l[i] = r_w[i] = r_l[i] = 0;
            for (std::size_t j = 0; j < D; ++j) {
                a_w[i] += theta[j] * fw[i * D + j];
                a_l[i] += theta[j] * fl[i * D + j];
                r_w[i] += theta_ref[j] * fw[i * D + j];
                r_l[i] += theta_ref[j] * fl[i * D + j];
                ctx[i * D + j] = fw[i * D + j] - fl[i * D + j];
            }
        }
        sams::pair_batch<float> batch{.policy_chosen = a_w, .policy_rejected = a_l,
                                      .reference_chosen = r_w, .reference_rejected = r_l,
                                      .contexts = {ctx.data(), B, D}};
        // 3. SamS picks the pairs and returns the gradient of the weighted DPO loss.
        const sams::decision<float> d = sched.step(batch);
        // 4. The host's backward pass and optimiser step (plain SGD on θ).
        for (const std::size_t i : d.selected)
            for (std::size_t j = 0; j < D; ++j)
                theta[j] -= 5.0f * (d.d_policy_chosen[i] * fw[i * D + j] + d.d_policy_rejected[i] * fl[i * D + j]);
        if (step % 20 == 0 || step == 99)
            std::printf("step %3d  loss %.4f  reward accuracy %.2f  f1 mse %.5f  pool %zu\n", step,
                        d.metrics.batch_loss, d.metrics.reward_accuracy, d.metrics.exploit_mse,
                        d.metrics.pool_size);
    }
    float agree = 0;  // cosine between the learned and the true reward direction
    float nt = 0, nh = 0;
    for (std::size_t j = 0; j < D; ++j) agree += truth[j] * theta[j], nt += truth[j] * truth[j], nh += theta[j] * theta[j];
    std::printf("cosine(learned, true reward) = %.3f\n", agree / std::sqrt(nt * nh));
}
