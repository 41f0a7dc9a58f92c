// The C++ half of python/tests/test_parity.py: a scheduler configured here, in C++, with
// every section off its defaults, driven over the inputs the Python test wrote, writing its
// initial and final checkpoints and every decision. The Python test builds "the same"
// scheduler from keyword arguments and must see identical bytes.
//
//   sams_python_parity <inputs.bin> <out_dir>
// inputs.bin: u64 steps, u64 B, u64 D, then per step float32 a_w[B], a_l[B], r_w[B], r_l[B],
// n_w[B], n_l[B], contexts[B*D].
#include <sams/sams.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

sams::scheduler_config parity_config() {
    sams::scheduler_config c;
    c.loss.kind = sams::loss_kind::robust;
    c.loss.beta = 0.2;
    c.loss.label_smoothing = 0.1;
    c.net.hidden = 24;
    c.net.depth = 4;
    c.net.block_size = 8;
    c.net.explore_depth = 3;
    c.net.act = sams::activation::silu;
    c.net.dropout = 0.1;
    c.opt.learning_rate = 3e-3;
    c.opt.beta2 = 0.99;
    c.opt.weight_decay = 1e-4;
    c.opt.exploit_steps = 3;
    c.opt.explore_steps = 2;
    c.opt.early_stop_mse = 0.0;
    c.reward.alpha = 0.7;
    c.reward.smoothing_lambda = 0.3;
    c.reward.chosen_reward_term = true;
    c.pool.capacity_rows = 40;
    c.pool.replay_batches = 2;
    c.select.ratio = 0.375;
    c.select.rule = sams::selection_rule::softmax_sample;
    c.select.temperature = 0.5;
    c.select.explore_weight = 0.05;
    c.select.warmup_steps = 2;
    return c;
}

void write_bytes(const std::string& path, const void* data, std::size_t n) {
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 3) {
        std::cerr << "usage: sams_python_parity <inputs.bin> <out_dir>\n";
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    std::uint64_t steps = 0, B = 0, D = 0;
    in.read(reinterpret_cast<char*>(&steps), 8);
    in.read(reinterpret_cast<char*>(&B), 8);
    in.read(reinterpret_cast<char*>(&D), 8);
    if (!in) throw std::runtime_error("truncated header");
    const std::string out = argv[2];

    sams::sams_scheduler<sams::eigen_backend<float>> sched(parity_config(), D, /*seed=*/20251);
    const auto initial = sched.serialize();
    write_bytes(out + "/initial.ckpt", initial.data(), initial.size());

    std::vector<float> a_w(B), a_l(B), r_w(B), r_l(B), n_w(B), n_l(B), ctx(B * D);
    std::ofstream dec(out + "/decisions.bin", std::ios::binary);
    for (std::uint64_t s = 0; s < steps; ++s) {
        for (auto* v : {&a_w, &a_l, &r_w, &r_l, &n_w, &n_l, &ctx})
            in.read(reinterpret_cast<char*>(v->data()),
                    static_cast<std::streamsize>(v->size() * sizeof(float)));
        if (!in) throw std::runtime_error("truncated inputs at step " + std::to_string(s));
        sams::pair_batch<float> batch{.policy_chosen = a_w,
                                      .policy_rejected = a_l,
                                      .reference_chosen = r_w,
                                      .reference_rejected = r_l,
                                      .chosen_length = n_w,
                                      .rejected_length = n_l,
                                      .contexts = {ctx.data(), B, D}};
        const auto d = sched.step(batch);
        // Per step: u64 K, i64 selected[K], then float32 weight, loss, d_chosen, d_rejected, score [B].
        const std::uint64_t k = d.selected.size();
        dec.write(reinterpret_cast<const char*>(&k), 8);
        for (const std::size_t i : d.selected) {
            const auto v = static_cast<std::int64_t>(i);
            dec.write(reinterpret_cast<const char*>(&v), 8);
        }
        for (const auto* v : {&d.weight, &d.loss, &d.d_policy_chosen, &d.d_policy_rejected, &d.score})
            dec.write(reinterpret_cast<const char*>(v->data()),
                      static_cast<std::streamsize>(v->size() * sizeof(float)));
    }
    dec.close();
    const auto final_state = sched.serialize();
    write_bytes(out + "/final.ckpt", final_state.data(), final_state.size());
    return 0;
} catch (const std::exception& e) {
    std::cerr << "sams_python_parity: " << e.what() << "\n";
    return 1;
}
