// Writes the checkpoint fuzzer's seed corpus: checkpoints made by save() of small schedulers
// in different states, as fuzzer inputs (tests/fuzz/fuzz_common.hpp). Usage:
//     make_checkpoint_corpus <folder>
// The committed corpus is this program's output (CI regenerates it and compares).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_common.hpp"

namespace {

sams::scheduler_config tiny() {
    sams::scheduler_config c;
    c.net.hidden = 4;
    c.net.depth = 3;
    c.net.block_size = 2;  // E = 4·1/2 = 2
    c.net.explore_depth = 2;
    c.pool.capacity_rows = 4;
    c.pool.replay_batches = 1;
    c.opt.exploit_steps = 2;
    c.opt.explore_steps = 2;
    return c;
}

template <class T>
sams::pair_batch<T> batch_of(std::vector<std::vector<T>>& store, std::size_t B, std::size_t D, int t) {
    store.assign(7, {});
    for (std::size_t i = 0; i < B; ++i) {
        const T x = T(static_cast<double>((i * 7 + static_cast<std::size_t>(t) * 3) % 11) * 0.5);
        store[0].push_back(-3 - x);
        store[1].push_back(-4 + x / 2);
        store[2].push_back(-3.5);
        store[3].push_back(-3.5);
        store[4].push_back(T(1 + i));
        store[5].push_back(T(2 + i));
    }
    for (std::size_t k = 0; k < B * D; ++k) store[6].push_back(T(static_cast<double>((k + t) % 5) - 2));
    return {.policy_chosen = store[0], .policy_rejected = store[1], .reference_chosen = store[2],
            .reference_rejected = store[3], .chosen_length = store[4], .rejected_length = store[5],
            .contexts = {store[6].data(), B, D}};
}

template <class Scheduler>
std::vector<std::uint8_t> saved(const sams::scheduler_config& c, std::size_t D, int steps,
                                const std::filesystem::path& scratch) {
    using T = typename Scheduler::value_type;
    Scheduler s(c, D, 7);
    std::vector<std::vector<T>> store;
    for (int t = 0; t < steps; ++t) (void)s.step(batch_of<T>(store, 4, D, t));
    s.save(scratch);
    std::ifstream in(scratch, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <folder>\n", argv[0]);
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    const auto scratch = dir / "scratch.ckpt";
    using sams_fuzz::scheduler_d;
    using sams_fuzz::scheduler_f;

    auto compat = tiny();
    compat.reward.reference_compat = true;
    compat.select.rule = sams::selection_rule::softmax_sample;
    auto normalised = tiny();
    normalised.loss.kind = sams::loss_kind::simpo;
    normalised.reward.length_normalized_chosen = true;
    normalised.reward.mode = sams::reward_mode::weight;

    write(dir / "fresh_double", sams_fuzz::payload_input(saved<scheduler_d>(tiny(), 2, 0, scratch)));
    write(dir / "pending_double", sams_fuzz::payload_input(saved<scheduler_d>(tiny(), 2, 3, scratch)));
    write(dir / "full_pool_compat", sams_fuzz::payload_input(saved<scheduler_d>(compat, 2, 6, scratch)));
    write(dir / "simpo_float", sams_fuzz::payload_input(saved<scheduler_f>(normalised, 3, 4, scratch)));
    write(dir / "whole_file", sams_fuzz::file_input(saved<scheduler_d>(tiny(), 1, 2, scratch)));
    std::filesystem::remove(scratch);
    return 0;
}
