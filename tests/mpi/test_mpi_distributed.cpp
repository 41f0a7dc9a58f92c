// Under `mpirun -np 2`: the MPI adapter's collectives, and distributed_scheduler across two
// processes. Each rank rebuilds the global batch of every step and runs the single-process
// reference itself, so the comparison needs no extra traffic: decisions (indices, weights,
// gradients, scores) must be bit-identical to one scheduler's on the concatenated batch, for
// SamS and every baseline over 60 steps, in both modes; a bad batch on one rank makes both
// throw the same error (CTest's timeout catches a rank left blocked); a checkpoint written by
// one rank resumes both bit for bit.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mpi.h>

#include <sams/distributed/distributed_scheduler.hpp>
#include <sams/distributed/mpi.hpp>

#include "distributed_common.hpp"

#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

using namespace sams_test;

namespace {

constexpr std::size_t D = 6, K = 3;

int world_rank() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

/// Whether `s` is the same string on every rank (rank 0's is broadcast and compared).
bool same_on_all_ranks(const std::string& s) {
    unsigned long n = s.size();
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
    std::string root(n, '\0');
    if (world_rank() == 0) root = s;
    MPI_Bcast(root.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
    int same = root == s ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return same == 1;
}

std::vector<sams::decision<T>> reference_run(kind k, std::size_t G, std::uint64_t steps) {
    std::vector<sams::decision<T>> out;
    with_scheduler(k, D, [&](auto s) {
        for (std::uint64_t t = 0; t < steps; ++t) out.push_back(s.step(make_batch(G, D, K, t).whole()));
    });
    return out;
}

/// Rank 0 holds `first` pairs, rank 1 the rest of G.
std::string run_against_reference(kind k, std::size_t G, std::size_t first, sams::distributed_mode mode,
                                  std::uint64_t steps) {
    const auto ref = reference_run(k, G, steps);
    const int r = world_rank();
    const std::size_t lo = r == 0 ? 0 : first, n = r == 0 ? first : G - first;
    std::string diff;
    with_scheduler(k, D, [&](auto s) {
        sams::distributed_scheduler<T, decltype(s), sams::mpi_communicator> ds(sams::mpi_communicator(),
                                                                               std::move(s), {.mode = mode});
        sams::decision<T> d;
        for (std::uint64_t t = 0; t < steps; ++t) {
            ds.step(make_batch(G, D, K, t).slice(lo, n), d);
            const std::string e = compare_slice(d, ref[t], lo, n);
            if (!e.empty() && diff.empty()) diff = e + " at step " + std::to_string(t);
        }
    });
    return diff;
}

}  // namespace

TEST_CASE("mpi_communicator: uneven all_gather, gather, broadcast, all_reduce") {
    sams::mpi_communicator c;
    REQUIRE(c.size() == 2);
    const int r = c.rank();
    std::vector<std::byte> send(r == 0 ? 3 : 1, std::byte(r == 0 ? 7 : 9));
    const std::vector<std::size_t> counts{3, 1};
    std::vector<std::byte> recv(4);
    c.all_gather(send, recv, counts);
    CHECK(recv == std::vector<std::byte>{std::byte(7), std::byte(7), std::byte(7), std::byte(9)});
    std::vector<std::byte> at_root(r == 1 ? 4 : 0);
    c.gather(send, at_root, counts, 1);
    if (r == 1) CHECK(at_root == recv);
    std::vector<std::byte> b(5, std::byte(r + 1));
    c.broadcast(b, 1);
    CHECK(b == std::vector<std::byte>(5, std::byte(2)));
    std::vector<double> v{double(r) + 0.25, 3.0};
    c.all_reduce(v, sams::reduce_op::sum);
    CHECK(v == std::vector<double>{1.5, 6.0});
    v = {double(r)};
    c.all_reduce(v, sams::reduce_op::max);
    CHECK(v[0] == 1.0);
    // Wrong sizes are refused before MPI is called, so both ranks stay in step.
    CHECK_THROWS_AS(c.all_gather(send, std::span<std::byte>(recv).first(3), counts), sams::invalid_argument);
}

TEST_CASE("mpi: 2 ranks bit-identical to one scheduler over 60 steps, every scheduler, both modes") {
    for (const kind k : all_kinds)
        for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
            INFO(name(k), mode == sams::distributed_mode::replicated ? " replicated" : " root_broadcast");
            CHECK(run_against_reference(k, 10, 5, mode, 60) == "");
            CHECK(run_against_reference(k, 10, 3, mode, 50) == "");  // uneven split
        }
}

TEST_CASE("mpi: a bad batch on rank 1 makes both ranks throw the same error, then both continue") {
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        const auto ref = reference_run(kind::sams, 10, 6);
        const int r = world_rank();
        sams::distributed_scheduler<T, sams_cpu, sams::mpi_communicator> ds(
            sams::mpi_communicator(), sams_cpu(small_config(), D, 42), {.mode = mode});
        std::uint64_t next = 0;
        std::string caught, diff;
        for (int attempt = 0; attempt < 7; ++attempt) {
            auto g = make_batch(10, D, K, next);
            if (attempt == 3 && r == 1) g.a_l[7] = std::numeric_limits<T>::quiet_NaN();
            try {
                const std::string e =
                    compare_slice(ds.step(g.slice(5u * unsigned(r), 5)), ref[next], 5u * unsigned(r), 5);
                if (!e.empty()) diff = e;
                ++next;
            } catch (const sams::invalid_argument& e) {
                caught = e.what();
            }
        }
        CHECK(caught.find("rank 1: local batch: batch.policy_rejected contains NaN or Inf") !=
              std::string::npos);
        CHECK(same_on_all_ranks(caught));
        CHECK(diff == "");
        CHECK(next == 6);
    }
}

TEST_CASE("mpi: a split that does not fit is refused up front on both ranks") {
    std::string caught;
    try {
        sams::distributed_scheduler<T, sams::full_batch<T>, sams::mpi_communicator> ds(
            sams::mpi_communicator(), sams::full_batch<T>(small_config().loss), {.global_batch = 9});
    } catch (const sams::invalid_argument& e) {
        caught = e.what();
    }
    CHECK(caught.find("options.global_batch 9 does not split evenly over 2 ranks") != std::string::npos);
    CHECK(same_on_all_ranks(caught));
}

TEST_CASE("mpi: a checkpoint written by one rank resumes both ranks bit for bit") {
    const int r = world_rank();
    // One path for both ranks (same machine); only the root writes it.
    const auto path = std::filesystem::temp_directory_path() / "sams_test_mpi_ckpt.bin";
    constexpr std::uint64_t before = 20, after = 35;
    const auto ref = reference_run(kind::sams, 10, before + after);
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        if (r == 0) std::filesystem::remove(path);
        MPI_Barrier(MPI_COMM_WORLD);
        {
            sams::distributed_scheduler<T, sams_cpu, sams::mpi_communicator> ds(
                sams::mpi_communicator(), sams_cpu(small_config(), D, 42), {.mode = mode});
            for (std::uint64_t t = 0; t < before; ++t)
                (void)ds.step(make_batch(10, D, K, t).slice(5u * unsigned(r), 5));
            ds.save(path);
        }
        sams::distributed_scheduler<T, sams_cpu, sams::mpi_communicator> resumed(
            sams::mpi_communicator(), sams_cpu(small_config(), D, 1234), {.mode = mode});
        resumed.restore(path);
        CHECK(resumed.steps() == before);
        std::string diff;
        for (std::uint64_t t = before; t < before + after; ++t) {
            const std::string e =
                compare_slice(resumed.step(make_batch(10, D, K, t).slice(5u * unsigned(r), 5)), ref[t],
                              5u * unsigned(r), 5);
            if (!e.empty() && diff.empty()) diff = e + " at step " + std::to_string(t);
        }
        CHECK(diff == "");
        if (mode == sams::distributed_mode::replicated) CHECK(resumed.replicas_identical());
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (r == 0) std::filesystem::remove(path);
}

TEST_CASE("mpi: guided_scheduler, trusted set and batches gathered, bit-identical over 50 steps") {
    constexpr std::size_t G = 10, trusted = 6;
    constexpr std::uint64_t steps = 50;
    std::vector<sams::decision<T>> ref;
    sams::guided_scheduler<T> single(guided_cfg(K));
    for (std::uint64_t t = 0; t < steps; ++t) {
        if (single.needs_trusted_refresh()) single.set_trusted(trusted_batch(trusted, K, t).whole());
        ref.push_back(single.step(guided_batch(G, D, K, t).whole()));
    }
    const auto r = static_cast<std::size_t>(world_rank());
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        sams::distributed_scheduler<T, sams::guided_scheduler<T>, sams::mpi_communicator> ds(
            sams::mpi_communicator(), sams::guided_scheduler<T>(guided_cfg(K)), {.mode = mode});
        std::string diff;
        for (std::uint64_t t = 0; t < steps; ++t) {
            if (ds.needs_trusted_refresh()) ds.set_trusted(trusted_batch(trusted, K, t).slice(3 * r, 3));
            const std::string e =
                compare_slice(ds.step(guided_batch(G, D, K, t).slice(5 * r, 5)), ref[t], 5 * r, 5);
            if (!e.empty() && diff.empty()) diff = e + " at step " + std::to_string(t);
        }
        CHECK(diff == "");
    }
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    doctest::Context context(argc, argv);
    const int rc = context.run();
    // Either rank's failure fails the job.
    int worst = rc;
    MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return worst;
}
