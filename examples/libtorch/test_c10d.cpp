// sams::libtorch::c10d_communicator on a gloo process group of 2 processes, which this
// program starts itself (c10d_launch.hpp): the adapter's collectives, and
// distributed_scheduler over it bit-identical to one scheduler on the concatenated batch
// for SamS and every baseline over 60 steps in both modes, a bad batch on one rank thrown
// identically on both, and a checkpoint written once resuming both ranks bit for bit.
// Torch first, then doctest through doctest_after_torch.hpp (torch defines CHECK, ...).
#include "c10d_launch.hpp"
#include "sams_c10d.hpp"

#define DOCTEST_CONFIG_IMPLEMENT
#include "doctest_after_torch.hpp"

#include <sams/distributed/distributed_scheduler.hpp>

#include "distributed_common.hpp"

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

using namespace sams_test;
using sams::libtorch::c10d_communicator;

namespace {

c10::intrusive_ptr<c10d::ProcessGroup> the_group;
constexpr std::size_t D = 6, K = 3;

c10d_communicator comm() { return c10d_communicator(the_group); }

bool same_on_all_ranks(const std::string& s) {
    c10d_communicator c = comm();
    std::uint64_t n = s.size();
    c.broadcast(std::as_writable_bytes(std::span(&n, 1)), 0);
    std::string root = c.rank() == 0 ? s : std::string(n, '\0');
    root.resize(n);
    c.broadcast(std::as_writable_bytes(std::span(root.data(), root.size())), 0);
    std::vector<double> same{root == s ? 1.0 : 0.0};
    c.all_reduce(same, sams::reduce_op::min);
    return same[0] == 1.0;
}

std::vector<sams::decision<T>> reference_run(kind k, std::size_t G, std::uint64_t steps) {
    std::vector<sams::decision<T>> out;
    with_scheduler(k, D, [&](auto s) {
        for (std::uint64_t t = 0; t < steps; ++t) out.push_back(s.step(make_batch(G, D, K, t).whole()));
    });
    return out;
}

std::string run_against_reference(kind k, std::size_t G, std::size_t first, sams::distributed_mode mode,
                                  std::uint64_t steps) {
    const auto ref = reference_run(k, G, steps);
    const int r = the_group->getRank();
    const std::size_t lo = r == 0 ? 0 : first, n = r == 0 ? first : G - first;
    std::string diff;
    with_scheduler(k, D, [&](auto s) {
        sams::distributed_scheduler<T, decltype(s), c10d_communicator> ds(comm(), std::move(s),
                                                                          {.mode = mode});
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

TEST_CASE("c10d_communicator (gloo): uneven all_gather, gather, broadcast, all_reduce") {
    c10d_communicator c = comm();
    REQUIRE(c.size() == 2);
    const int r = c.rank();
    std::vector<std::byte> send(r == 0 ? 3 : 1, std::byte(r == 0 ? 7 : 9));
    const std::vector<std::size_t> counts{3, 1};
    std::vector<std::byte> recv(4);
    c.all_gather(send, recv, counts);
    // Double parentheses: glog's stl_logging would be asked to print std::byte vectors.
    CHECK((recv == std::vector<std::byte>{std::byte(7), std::byte(7), std::byte(7), std::byte(9)}));
    std::vector<std::byte> at_root(r == 1 ? 4 : 0);
    c.gather(send, at_root, counts, 1);
    if (r == 1) CHECK((at_root == recv));
    std::vector<std::byte> b(5, std::byte(r + 1));
    c.broadcast(b, 1);
    CHECK((b == std::vector<std::byte>(5, std::byte(2))));
    std::vector<double> v{double(r) + 0.25, 3.0};
    c.all_reduce(v, sams::reduce_op::sum);
    CHECK(v == std::vector<double>{1.5, 6.0});
    v = {double(r)};
    c.all_reduce(v, sams::reduce_op::max);
    CHECK(v[0] == 1.0);
}

TEST_CASE("gloo: 2 ranks bit-identical to one scheduler over 60 steps, every scheduler, both modes") {
    for (const kind k : all_kinds)
        for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
            INFO(name(k), mode == sams::distributed_mode::replicated ? " replicated" : " root_broadcast");
            CHECK(run_against_reference(k, 10, 5, mode, 60) == "");
            CHECK(run_against_reference(k, 10, 3, mode, 50) == "");
        }
}

TEST_CASE("gloo: a bad batch on rank 1 makes both ranks throw the same error, then both continue") {
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        const auto ref = reference_run(kind::sams, 10, 6);
        const int r = the_group->getRank();
        sams::distributed_scheduler<T, sams_cpu, c10d_communicator> ds(
            comm(), sams_cpu(small_config(), D, 42), {.mode = mode});
        std::uint64_t next = 0;
        std::string caught, diff;
        for (int attempt = 0; attempt < 7; ++attempt) {
            auto g = make_batch(10, D, K, next);
            if (attempt == 3 && r == 1) g.ctx[7 * D] = std::numeric_limits<T>::infinity();
            try {
                const std::string e =
                    compare_slice(ds.step(g.slice(5u * unsigned(r), 5)), ref[next], 5u * unsigned(r), 5);
                if (!e.empty()) diff = e;
                ++next;
            } catch (const sams::invalid_argument& e) {
                caught = e.what();
            }
        }
        CHECK(caught.find("rank 1: local batch: batch.contexts contains NaN or Inf") != std::string::npos);
        CHECK(same_on_all_ranks(caught));
        CHECK(diff == "");
        CHECK(next == 6);
    }
}

TEST_CASE("gloo: a checkpoint written by one rank resumes both ranks bit for bit") {
    const int r = the_group->getRank();
    const auto path = std::filesystem::temp_directory_path() / "sams_test_gloo_ckpt.bin";
    constexpr std::uint64_t before = 20, after = 35;
    const auto ref = reference_run(kind::sams, 10, before + after);
    for (const auto mode : {sams::distributed_mode::replicated, sams::distributed_mode::root_broadcast}) {
        {
            sams::distributed_scheduler<T, sams_cpu, c10d_communicator> ds(
                comm(), sams_cpu(small_config(), D, 42), {.mode = mode});
            for (std::uint64_t t = 0; t < before; ++t)
                (void)ds.step(make_batch(10, D, K, t).slice(5u * unsigned(r), 5));
            ds.save(path);
        }
        sams::distributed_scheduler<T, sams_cpu, c10d_communicator> resumed(
            comm(), sams_cpu(small_config(), D, 5), {.mode = mode});
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
    CHECK(same_on_all_ranks("done"));  // both finished reading before the file goes
    if (r == 0) std::filesystem::remove(path);
}

int main(int argc, char** argv) {
    if (const auto status = sams::libtorch::launch(argv, 2)) return *status;  // the launcher
    const auto info = sams::libtorch::this_rank();
    the_group = sams::libtorch::gloo_group(info);
    doctest::Context context(argc, argv);
    const int rc = context.run();
    std::vector<double> worst{double(rc)};
    comm().all_reduce(worst, sams::reduce_op::max);
    the_group.reset();
    return static_cast<int>(worst[0]);
}
