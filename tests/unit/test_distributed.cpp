// distributed_scheduler over an in-process group of thread ranks: R ranks' decisions are
// bit-identical to one scheduler's on the concatenated batch (SamS and every baseline, both
// modes, even and uneven splits, 50+ steps), a bad batch on one rank makes every rank throw
// the same error without any rank hanging, splits that cannot work are refused up front,
// and a checkpoint written once resumes every rank bit for bit. tests/mpi runs the same
// checks across processes.
#include <doctest/doctest.h>

#include <sams/distributed/communicator.hpp>
#include <sams/distributed/distributed_scheduler.hpp>
#include <sams/distributed/thread_group.hpp>

#include "distributed_common.hpp"

#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace sams_test;

namespace {

/// Runs f(rank, endpoint) on R threads; returns each rank's exception message ("" if none).
std::vector<std::string> on_ranks(int R, const std::function<void(int, sams::thread_group::endpoint)>& f) {
    sams::thread_group group(R, std::chrono::seconds(20));
    std::vector<std::string> errors(static_cast<std::size_t>(R));
    std::vector<std::thread> threads;
    for (int r = 0; r < R; ++r)
        threads.emplace_back([&, r] {
            try {
                f(r, group.communicator(r));
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(r)] = std::string("!") + e.what();
            }
        });
    for (auto& t : threads) t.join();
    return errors;
}

std::vector<std::size_t> offsets_of(const std::vector<std::size_t>& counts) {
    std::vector<std::size_t> off{0};
    for (const std::size_t n : counts) off.push_back(off.back() + n);
    return off;
}

constexpr std::size_t D = 6, K = 3;

/// The single-process reference: `steps` decisions of one scheduler over the global batches.
std::vector<sams::decision<T>> reference_run(kind k, std::size_t G, std::uint64_t steps,
                                             std::uint64_t first = 0) {
    std::vector<sams::decision<T>> out;
    with_scheduler(k, D, [&](auto s) {
        for (std::uint64_t t = 0; t < first + steps; ++t) {
            auto d = s.step(make_batch(G, D, K, t).whole());
            if (t >= first) out.push_back(std::move(d));
        }
    });
    return out;
}

void check_against_reference(kind k, const std::vector<std::size_t>& counts, sams::distributed_mode mode,
                             std::uint64_t steps) {
    const auto off = offsets_of(counts);
    const std::size_t G = off.back();
    const auto ref = reference_run(k, G, steps);
    const int R = static_cast<int>(counts.size());
    std::vector<std::string> mismatch(counts.size());
    const auto errors = on_ranks(R, [&](int r, sams::thread_group::endpoint comm) {
        with_scheduler(k, D, [&](auto s) {
            sams::distributed_scheduler<T, decltype(s), sams::thread_group::endpoint> ds(comm, std::move(s),
                                                                                         {.mode = mode});
            sams::decision<T> d;
            for (std::uint64_t t = 0; t < steps && mismatch[static_cast<std::size_t>(r)].empty(); ++t) {
                const auto batch = make_batch(G, D, K, t);
                ds.step(batch.slice(off[static_cast<std::size_t>(r)], counts[static_cast<std::size_t>(r)]),
                        d);
                const std::string diff = compare_slice(d, ref[t], off[static_cast<std::size_t>(r)],
                                                       counts[static_cast<std::size_t>(r)]);
                if (!diff.empty())
                    mismatch[static_cast<std::size_t>(r)] = diff + " at step " + std::to_string(t);
                if (ds.global_size() != G || ds.offset() != off[static_cast<std::size_t>(r)])
                    mismatch[static_cast<std::size_t>(r)] = "offsets";
            }
        });
    });
    for (int r = 0; r < R; ++r) {
        INFO(name(k), " rank ", r, " of ", R);
        CHECK(errors[static_cast<std::size_t>(r)] == "");
        CHECK(mismatch[static_cast<std::size_t>(r)] == "");
    }
}

}  // namespace

TEST_CASE("thread_group: all_gather with uneven counts, gather, broadcast and all_reduce") {
    const auto errors = on_ranks(3, [](int r, sams::thread_group::endpoint c) {
        std::vector<std::byte> send(static_cast<std::size_t>(r + 1), std::byte(10 + r));
        const std::vector<std::size_t> counts{1, 2, 3};
        std::vector<std::byte> recv(6);
        c.all_gather(send, recv, counts);
        const std::vector<std::byte> expected{std::byte(10), std::byte(11), std::byte(11),
                                              std::byte(12), std::byte(12), std::byte(12)};
        if (recv != expected) throw std::runtime_error("all_gather");
        std::vector<std::byte> at_root(r == 2 ? 6 : 0);
        c.gather(send, at_root, counts, 2);
        if (r == 2 && at_root != expected) throw std::runtime_error("gather");
        std::vector<std::byte> b(4, std::byte(r));
        c.broadcast(b, 1);
        if (b != std::vector<std::byte>(4, std::byte(1))) throw std::runtime_error("broadcast");
        std::vector<double> v{double(r), -double(r), 0.5};
        c.all_reduce(v, sams::reduce_op::sum);
        if (v != std::vector<double>{3.0, -3.0, 1.5}) throw std::runtime_error("sum");
        v = {double(r)};
        c.all_reduce(v, sams::reduce_op::max);
        if (v[0] != 2.0) throw std::runtime_error("max");
        c.all_reduce(v = {double(r)}, sams::reduce_op::min);
        if (v[0] != 0.0) throw std::runtime_error("min");
    });
    for (const auto& e : errors) CHECK(e == "");
}

TEST_CASE("thread_group: a rank whose peer never arrives times out instead of hanging") {
    sams::thread_group group(2, std::chrono::milliseconds(50));
    auto c = group.communicator(0);
    std::vector<double> v{1.0};
    CHECK_THROWS_AS(c.all_reduce(v, sams::reduce_op::sum), sams::error);
}

TEST_CASE("distributed_scheduler, 2 ranks, replicated: bit-identical to one scheduler over 60 steps") {
    for (const kind k : all_kinds) check_against_reference(k, {5, 5}, sams::distributed_mode::replicated, 60);
}

TEST_CASE("distributed_scheduler, 2 ranks, root_broadcast: bit-identical to one scheduler over 60 steps") {
    for (const kind k : all_kinds)
        check_against_reference(k, {5, 5}, sams::distributed_mode::root_broadcast, 60);
}

TEST_CASE("distributed_scheduler, 3 ranks of uneven size, both modes") {
    for (const kind k : {kind::sams, kind::uniform, kind::loss}) {
        check_against_reference(k, {2, 5, 3}, sams::distributed_mode::replicated, 50);
        check_against_reference(k, {2, 5, 3}, sams::distributed_mode::root_broadcast, 50);
    }
}

TEST_CASE("distributed_scheduler over the single-process communicator is the scheduler itself") {
    check_against_reference(kind::sams, {8}, sams::distributed_mode::replicated, 50);
    const auto ref = reference_run(kind::margin, 8, 5);
    sams::distributed_scheduler<T, sams::margin_selector<T>, sams::single_process_communicator> ds(
        {}, sams::margin_selector<T>(small_config().loss, small_config().select));
    for (std::uint64_t t = 0; t < 5; ++t)
        CHECK(compare_slice(ds.step(make_batch(8, D, K, t).whole()), ref[t], 0, 8) == "");
}

TEST_CASE("distributed_scheduler: a bad batch on one rank makes every rank throw the same error") {
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        // Each case breaks rank 1's batch at step 4 in one way; steps before and after are
        // good, and the run after the failure still matches the reference (no state changed).
        struct breakage {
            const char* expect;
            std::function<void(global_batch&, sams::pair_batch<T>&)> apply;
        };
        const std::vector<breakage> cases{
            {"rank 1: local batch: batch.policy_chosen contains NaN or Inf",
             [](global_batch& g, sams::pair_batch<T>&) { g.a_w[6] = std::numeric_limits<T>::quiet_NaN(); }},
            {"rank 1: local batch: batch.contexts contains NaN or Inf",
             [](global_batch& g, sams::pair_batch<T>&) {
                 g.ctx[5 * D + 2] = std::numeric_limits<T>::infinity();
             }},
            {"rank 1: local batch: batch.rejected_length has length 4, expected the batch size 5",
             [](global_batch&, sams::pair_batch<T>& b) { b.rejected_length = b.rejected_length.first(4); }},
            {"rank 1 has 5 context and 3 sketch columns, rank 0 has 6 and 3",
             [](global_batch&, sams::pair_batch<T>& b) { b.contexts.cols = 5; }},
            {"rank 1 passes a different set of optional fields",
             [](global_batch&, sams::pair_batch<T>& b) { b.ids = {}; }},
            {"rank 1: local batch: the local batch is empty",
             [](global_batch&, sams::pair_batch<T>& b) { b = {}; }},
        };
        const auto ref = reference_run(kind::sams, 10, 8);
        for (const auto& bad : cases) {
            std::vector<std::string> caught(2), mismatch(2);
            const auto errors = on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
                sams::distributed_scheduler<T, sams_cpu, sams::thread_group::endpoint> ds(
                    comm, sams_cpu(small_config(), D, 42), {.mode = mode});
                // Attempt 4 breaks batch 4 on rank 1; attempt 5 passes batch 4 again, intact.
                std::uint64_t next = 0;
                for (int attempt = 0; attempt < 9; ++attempt) {
                    auto g = make_batch(10, D, K, next);
                    const std::size_t lo = 5 * static_cast<std::size_t>(r);
                    sams::pair_batch<T> b = g.slice(lo, 5);
                    if (attempt == 4) {
                        if (r == 1) bad.apply(g, b);
                        try {
                            (void)ds.step(b);
                        } catch (const sams::invalid_argument& e) {
                            caught[static_cast<std::size_t>(r)] = e.what();
                        }
                        continue;
                    }
                    const std::string diff = compare_slice(ds.step(b), ref[next], lo, 5);
                    if (!diff.empty()) mismatch[static_cast<std::size_t>(r)] = diff;
                    ++next;
                }
            });
            INFO(bad.expect);
            CHECK(errors[0] == "");
            CHECK(errors[1] == "");
            CHECK(caught[0] == caught[1]);
            CHECK(caught[0].find(bad.expect) != std::string::npos);
            CHECK(mismatch[0] == "");
            CHECK(mismatch[1] == "");
        }
    }
}

TEST_CASE("distributed_scheduler: the scheduler's own refusal reaches every rank (root_broadcast)") {
    // Contexts absent on every rank: only sams_scheduler itself objects, on the root.
    std::vector<std::string> caught(2);
    const auto errors = on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
        sams::distributed_scheduler<T, sams_cpu, sams::thread_group::endpoint> ds(
            comm, sams_cpu(small_config(), D, 42), {.mode = sams::distributed_mode::root_broadcast});
        const auto g = make_batch(4, D, K, 0);
        auto b = g.slice(2 * static_cast<std::size_t>(r), 2);
        b.contexts = {};
        try {
            (void)ds.step(b);
        } catch (const sams::invalid_argument& e) {
            caught[static_cast<std::size_t>(r)] = e.what();
        }
    });
    CHECK(errors[0] == "");
    CHECK(errors[1] == "");
    CHECK(caught[0] == caught[1]);
    CHECK(caught[0].find("batch.contexts must have one row per pair") != std::string::npos);
}

TEST_CASE("distributed_scheduler: splits that cannot work are refused up front, on every rank") {
    auto build = [](sams::distributed_options o) {
        return on_ranks(2, [o](int, sams::thread_group::endpoint comm) {
            sams::distributed_scheduler<T, sams::full_batch<T>, sams::thread_group::endpoint> ds(
                comm, sams::full_batch<T>(small_config().loss), o);
        });
    };
    auto odd = build({.global_batch = 7});
    CHECK(odd[0] == odd[1]);
    CHECK(odd[0].find("options.global_batch 7 does not split evenly over 2 ranks") != std::string::npos);
    auto tiny = build({.global_batch = 1});
    CHECK(tiny[0].find("does not split evenly") != std::string::npos);
    auto root = build({.root = 2});
    CHECK(root[1].find("options.root is 2, not a rank of this group of 2") != std::string::npos);

    // Ranks that disagree on the options: both refuse, neither waits.
    const auto disagree = on_ranks(2, [](int r, sams::thread_group::endpoint comm) {
        sams::distributed_scheduler<T, sams::full_batch<T>, sams::thread_group::endpoint> ds(
            comm, sams::full_batch<T>(small_config().loss), {.global_batch = r == 0 ? 8u : 10u});
    });
    CHECK(disagree[0] == disagree[1]);
    CHECK(disagree[0].find("rank 1 was constructed with different options") != std::string::npos);

    // A declared global batch is enforced every step.
    std::vector<std::string> caught(2);
    on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
        sams::distributed_scheduler<T, sams::full_batch<T>, sams::thread_group::endpoint> ds(
            comm, sams::full_batch<T>(small_config().loss), {.global_batch = 8});
        const auto g = make_batch(9, D, K, 0);
        try {
            (void)ds.step(g.slice(r == 0 ? 0 : 4, r == 0 ? 4 : 5));
        } catch (const sams::invalid_argument& e) {
            caught[static_cast<std::size_t>(r)] = e.what();
        }
    });
    CHECK(caught[0] == caught[1]);
    CHECK(caught[0].find("rank 1 holds 5 pairs; options.global_batch 8 over 2 ranks needs 4 on each") !=
          std::string::npos);
}

TEST_CASE("distributed_scheduler: a checkpoint written once resumes every rank bit for bit") {
    const auto dir = std::filesystem::temp_directory_path() / "sams_test_distributed";
    std::filesystem::create_directories(dir);
    const auto path = dir / "ckpt.bin";
    std::filesystem::remove(path);
    constexpr std::uint64_t before = 20, after = 35;
    const auto ref = reference_run(kind::sams, 10, before + after);
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        std::vector<std::string> mismatch(2);
        // First run: `before` steps, save (only the root writes), then stop.
        auto errors = on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
            sams::distributed_scheduler<T, sams_cpu, sams::thread_group::endpoint> ds(
                comm, sams_cpu(small_config(), D, 42), {.mode = mode, .root = 1});
            for (std::uint64_t t = 0; t < before; ++t)
                (void)ds.step(make_batch(10, D, K, t).slice(5u * unsigned(r), 5));
            ds.save(path);
        });
        CHECK(errors[0] == "");
        CHECK(errors[1] == "");
        REQUIRE(std::filesystem::exists(path));
        // Resumed run: fresh schedulers with another seed, restored from the file.
        errors = on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
            sams::distributed_scheduler<T, sams_cpu, sams::thread_group::endpoint> ds(
                comm, sams_cpu(small_config(), D, 999), {.mode = mode, .root = 1});
            ds.restore(path);
            if (ds.steps() != before) mismatch[static_cast<std::size_t>(r)] = "steps";
            for (std::uint64_t t = before; t < before + after; ++t) {
                const auto d = ds.step(make_batch(10, D, K, t).slice(5u * unsigned(r), 5));
                const std::string diff = compare_slice(d, ref[t], 5u * unsigned(r), 5);
                if (!diff.empty()) mismatch[static_cast<std::size_t>(r)] = diff + " at " + std::to_string(t);
            }
            if (mode == sams::distributed_mode::replicated && !ds.replicas_identical())
                mismatch[static_cast<std::size_t>(r)] = "replicas diverged";
        });
        CHECK(errors[0] == "");
        CHECK(errors[1] == "");
        CHECK(mismatch[0] == "");
        CHECK(mismatch[1] == "");
        std::filesystem::remove(path);
    }
    // A checkpoint the root cannot read: every rank throws the same checkpoint_error.
    std::vector<std::string> caught(2);
    on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
        sams::distributed_scheduler<T, sams_cpu, sams::thread_group::endpoint> ds(
            comm, sams_cpu(small_config(), D, 42));
        try {
            ds.restore(dir / "missing.bin");
        } catch (const sams::checkpoint_error& e) {
            caught[static_cast<std::size_t>(r)] = e.what();
        }
    });
    CHECK(!caught[0].empty());
    CHECK(caught[0] == caught[1]);
    CHECK(caught[0].find("distributed_scheduler::restore: rank 0") != std::string::npos);
}

TEST_CASE(
    "distributed_scheduler over guided_scheduler: trusted set and batches gathered, 2 ranks bit-identical") {
    constexpr std::size_t G = 10, trusted = 6;
    constexpr std::uint64_t steps = 50;
    // The reference: one guided scheduler, the whole trusted set at every refresh.
    std::vector<sams::decision<T>> ref;
    sams::guided_scheduler<T> single(guided_cfg(K));
    for (std::uint64_t t = 0; t < steps; ++t) {
        if (single.needs_trusted_refresh()) single.set_trusted(trusted_batch(trusted, K, t).whole());
        ref.push_back(single.step(guided_batch(G, D, K, t).whole()));
    }
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        std::vector<std::string> mismatch(2);
        const auto errors = on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
            sams::distributed_scheduler<T, sams::guided_scheduler<T>, sams::thread_group::endpoint> ds(
                comm, sams::guided_scheduler<T>(guided_cfg(K)), {.mode = mode});
            const auto ur = static_cast<std::size_t>(r);
            for (std::uint64_t t = 0; t < steps; ++t) {
                // The wrapper's answer is the same on every rank (the root's under root_broadcast).
                if (ds.needs_trusted_refresh()) ds.set_trusted(trusted_batch(trusted, K, t).slice(3 * ur, 3));
                const std::string diff =
                    compare_slice(ds.step(guided_batch(G, D, K, t).slice(5 * ur, 5)), ref[t], 5 * ur, 5);
                if (!diff.empty() && mismatch[ur].empty())
                    mismatch[ur] = diff + " at step " + std::to_string(t);
            }
        });
        CHECK(errors[0] == "");
        CHECK(errors[1] == "");
        CHECK(mismatch[0] == "");
        CHECK(mismatch[1] == "");
    }
}

TEST_CASE("distributed_scheduler over guided_scheduler: a direction summed from per-rank parts") {
    constexpr std::size_t G = 8;
    std::vector<T> part0, part1, whole;
    sams::rng g(3, 3);
    for (std::size_t i = 0; i < K; ++i) {
        part0.push_back(static_cast<T>(g.normal()));
        part1.push_back(static_cast<T>(g.normal()));
        // The same sum the all-reduce forms: in double, then rounded once.
        whole.push_back(static_cast<T>(static_cast<double>(part0[i]) + static_cast<double>(part1[i])));
    }
    sams::guided_scheduler<T> single(guided_cfg(K, sams::guided_drop::fixed_fraction));
    std::vector<sams::decision<T>> ref;
    for (std::uint64_t t = 0; t < 20; ++t) {
        if (single.needs_trusted_refresh()) single.set_trusted_direction(whole, 0.25);
        ref.push_back(single.step(guided_batch(G, D, K, t).whole()));
    }
    std::vector<std::string> mismatch(2);
    const auto errors = on_ranks(2, [&](int r, sams::thread_group::endpoint comm) {
        sams::distributed_scheduler<T, sams::guided_scheduler<T>, sams::thread_group::endpoint> ds(
            comm, sams::guided_scheduler<T>(guided_cfg(K, sams::guided_drop::fixed_fraction)));
        const auto ur = static_cast<std::size_t>(r);
        for (std::uint64_t t = 0; t < 20; ++t) {
            if (ds.needs_trusted_refresh())
                ds.set_trusted_direction(r == 0 ? part0 : part1,
                                         r == 0 ? std::optional<double>(0.25) : std::nullopt);
            const std::string diff =
                compare_slice(ds.step(guided_batch(G, D, K, t).slice(4 * ur, 4)), ref[t], 4 * ur, 4);
            if (!diff.empty() && mismatch[ur].empty()) mismatch[ur] = diff;
        }
        const auto d = ds.scheduler().trusted_direction();
        if (!same_bits(whole, d.data(), d.size())) mismatch[ur] = "direction";
        // Parts of different sizes: both ranks refuse.
        try {
            ds.set_trusted_direction(std::span<const T>(part0).first(r == 0 ? K : K - 1));
            mismatch[ur] = "no error for parts of different sizes";
        } catch (const sams::invalid_argument&) {}
    });
    CHECK(errors[0] == "");
    CHECK(errors[1] == "");
    CHECK(mismatch[0] == "");
    CHECK(mismatch[1] == "");
}
