// Checkpoints and inputs an adversary controls: forged sizes and counts behind an intact
// checksum, states that could not step, huge values, configurations beyond the caps, and
// file-system races. Every refusal is a sams::error and leaves the target byte-identical.
#include <doctest/doctest.h>

#include "fuzz/fuzz_common.hpp"

#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/core/limits.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/sams_scheduler.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using backend_d = sams::eigen_backend<double>;
using scheduler_d = sams::sams_scheduler<backend_d>;
using bytes_t = std::vector<std::uint8_t>;

struct owned_batch {
    std::size_t B = 0, D = 0;
    std::vector<double> a_w, a_l, r_w, r_l, ctx;
    sams::pair_batch<double> batch() const {
        return {.policy_chosen = a_w, .policy_rejected = a_l, .reference_chosen = r_w,
                .reference_rejected = r_l, .contexts = {ctx.data(), B, D}};
    }
};

owned_batch random_batch(sams::rng& g, std::size_t B, std::size_t D) {
    owned_batch b;
    b.B = B;
    b.D = D;
    for (std::size_t i = 0; i < B; ++i) {
        b.a_w.push_back(-10.0 + 3.0 * g.normal());
        b.a_l.push_back(-10.0 + 3.0 * g.normal());
        b.r_w.push_back(-10.0 + g.normal());
        b.r_l.push_back(-10.0 + g.normal());
    }
    for (std::size_t k = 0; k < B * D; ++k) b.ctx.push_back(g.normal());
    return b;
}

sams::scheduler_config small_config() {
    sams::scheduler_config c;
    c.net.hidden = 16;
    c.net.depth = 4;
    c.net.block_size = 8;  // E = 16*2/8 = 4
    c.net.explore_depth = 3;
    c.pool.capacity_rows = 16;
    c.pool.replay_batches = 2;
    c.opt.learning_rate = 1e-3;
    return c;
}

constexpr std::size_t B = 6, D = 3;

/// A scheduler that has stepped, so its pool and pending selection are filled.
scheduler_d stepped(std::uint64_t seed, int steps = 5) {
    scheduler_d s(small_config(), D, seed);
    sams::rng g(seed + 100);
    for (int t = 0; t < steps; ++t) (void)s.step(random_batch(g, B, D).batch());
    return s;
}

// ---- forging: edit a payload, re-frame it with a valid checksum --------------------------

constexpr std::size_t frame_head = 8 + 4 + 8;  // magic, version, payload length

bytes_t payload_of(const bytes_t& file) {
    return {file.begin() + frame_head, file.end() - 8};
}
bytes_t reframe(const bytes_t& payload) { return sams::detail::frame_checkpoint(payload); }

/// Offset in the payload of a config field (after the u32 value size), computed from the
/// field list that writes it.
std::size_t config_field_offset(const char* wanted) {
    std::size_t offset = 4;
    std::size_t found = SIZE_MAX;
    sams::scheduler_config c;
    sams::detail::visit_config(c, [&](const char* name, const auto& field) {
        using F = std::remove_cvref_t<decltype(field)>;
        if (std::strcmp(name, wanted) == 0) found = offset;
        offset += std::is_enum_v<F> ? 4 : std::is_same_v<F, bool> ? 1 : 8;
    });
    REQUIRE(found != SIZE_MAX);
    return found;
}
/// Offset of the first byte after the config: context_dim, then seed.
std::size_t after_config() {
    std::size_t offset = 4;
    sams::scheduler_config c;
    sams::detail::visit_config(c, [&](const char*, const auto& field) {
        using F = std::remove_cvref_t<decltype(field)>;
        offset += std::is_enum_v<F> ? 4 : std::is_same_v<F, bool> ? 1 : 8;
    });
    return offset;
}
/// Offset just past a section tag ("pool", "pending", …).
std::size_t after_tag(const bytes_t& payload, const std::string& tag) {
    bytes_t needle(4);
    const auto n = static_cast<std::uint32_t>(tag.size());
    std::memcpy(needle.data(), &n, 4);
    needle.insert(needle.end(), tag.begin(), tag.end());
    const auto it = std::search(payload.begin(), payload.end(), needle.begin(), needle.end());
    REQUIRE(it != payload.end());
    return static_cast<std::size_t>(it - payload.begin()) + needle.size();
}
template <class V>
void poke(bytes_t& payload, std::size_t offset, V v) {
    REQUIRE(offset + sizeof(V) <= payload.size());
    std::memcpy(payload.data() + offset, &v, sizeof(V));
}
template <class V>
V peek(const bytes_t& payload, std::size_t offset) {
    V v;
    std::memcpy(&v, payload.data() + offset, sizeof(V));
    return v;
}

/// Deserialises with a wall-clock bound: a forged file must be refused fast, not after a
/// long loop or a huge allocation.
void check_refused(const bytes_t& file, const char* expected_text) {
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(scheduler_d::deserialize(file), doctest::Contains(expected_text), sams::checkpoint_error);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

std::filesystem::path scratch_dir(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sams_limits_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace

TEST_CASE("checkpoint limits: sizes forged behind a valid checksum are refused before they allocate or loop") {
    const bytes_t good = stepped(3).serialize();
    const bytes_t payload = payload_of(good);
    REQUIRE(reframe(payload) == good);
    REQUIRE_NOTHROW((void)scheduler_d::deserialize(good));

    SUBCASE("a huge net.depth (the loader used to loop over it)") {
        auto p = payload;
        poke<std::uint64_t>(p, config_field_offset("net.depth"), std::uint64_t{1} << 40);
        check_refused(reframe(p), "net.depth");
    }
    SUBCASE("a huge net.explore_depth") {
        auto p = payload;
        poke<std::uint64_t>(p, config_field_offset("net.explore_depth"), std::uint64_t{1} << 40);
        check_refused(reframe(p), "net.explore_depth");
    }
    SUBCASE("a depth within the cap whose nets the file does not hold") {
        auto p = payload;
        poke<std::uint64_t>(p, config_field_offset("net.depth"), 1000);
        check_refused(reframe(p), "bytes");
    }
    SUBCASE("a hidden width of 2^32 (used to throw std::bad_alloc)") {
        auto p = payload;
        poke<std::uint64_t>(p, config_field_offset("net.hidden"), std::uint64_t{1} << 32);
        check_refused(reframe(p), "net.hidden");
    }
    SUBCASE("hidden*(depth-2) wrapping around 2^64") {
        auto p = payload;
        poke<std::uint64_t>(p, config_field_offset("net.hidden"), std::uint64_t{1} << 63);
        poke<std::uint64_t>(p, config_field_offset("net.depth"), 4);
        check_refused(reframe(p), "checkpoint");
    }
    SUBCASE("a context width of 2^32") {
        auto p = payload;
        poke<std::uint64_t>(p, after_config(), std::uint64_t{1} << 32);
        check_refused(reframe(p), "context_dim");
    }
    SUBCASE("a context width within the cap that the file does not hold") {
        auto p = payload;
        poke<std::uint64_t>(p, after_config(), 100000);
        check_refused(reframe(p), "bytes");
    }
    SUBCASE("a pool claiming 10^12 rows, and 2^27 rows within a raised capacity") {
        auto p = payload;
        const std::size_t at = after_tag(p, "pool");
        poke<std::uint64_t>(p, at, 1'000'000'000'000ULL);
        poke<std::uint64_t>(p, at + 8, 1'000'000'000'000ULL);
        check_refused(reframe(p), "pool");

        auto q = payload;
        poke<std::uint64_t>(q, config_field_offset("pool.capacity_rows"), std::uint64_t{1} << 27);
        poke<std::uint64_t>(q, at, std::uint64_t{1} << 27);
        poke<std::uint64_t>(q, at + 8, std::uint64_t{1} << 27);
        check_refused(reframe(q), "pool rows");
    }
    SUBCASE("an array length beyond the file") {
        auto p = payload;
        const std::size_t at = after_tag(p, "pending") + 1 + 8;  // flag, progress, then the selection's length
        REQUIRE(peek<std::uint64_t>(p, at) == 3);                 // K = round(0.5 * 6)
        poke<std::uint64_t>(p, at, std::uint64_t{1} << 61);
        check_refused(reframe(p), "pending selection");
    }
    SUBCASE("a boolean byte other than 0 or 1") {
        auto p = payload;
        poke<std::uint8_t>(p, config_field_offset("opt.reset_each_update"), 2);
        check_refused(reframe(p), "opt.reset_each_update");
    }
    SUBCASE("an out-of-range enumerator") {
        auto p = payload;
        poke<std::int32_t>(p, config_field_offset("select.rule"), 7);
        check_refused(reframe(p), "select.rule");
    }
    SUBCASE("an Adam or LayerNorm epsilon that is 0 in float (the fuzzer's accepted-but-cannot-step input)") {
        auto p = payload;
        poke<double>(p, config_field_offset("opt.eps"), 5.6598e-81);
        check_refused(reframe(p), "opt.eps");
        auto q = payload;
        poke<double>(q, config_field_offset("net.layer_norm_eps"), 1e-300);
        check_refused(reframe(q), "net.layer_norm_eps");
    }
}

TEST_CASE("checkpoint limits: residual_net_parameters matches the nets' own parameter count") {
    backend_d be;
    for (const std::size_t depth : {3u, 4u, 7u}) {
        for (const std::size_t d : {1u, 5u}) {
            sams::network_config net;
            net.hidden = 8;
            net.depth = depth;
            net.block_size = 4;
            net.explore_depth = depth - 1;
            sams::rng init(1);
            const sams::exploit_net<backend_d> f1(be, d, net, {}, init);
            const sams::explore_net<backend_d> f2(be, net.feature_dim(), net, {}, init);
            CHECK(sams::detail::residual_net_parameters(d, 8, depth) == f1.parameter_count());
            CHECK(sams::detail::residual_net_parameters(net.feature_dim(), net.feature_dim(), depth - 1) ==
                  f2.parameter_count());
        }
    }
    CHECK_FALSE(sams::detail::residual_net_parameters(1, std::uint64_t{1} << 33, 3).has_value());
    CHECK_FALSE(sams::detail::residual_net_parameters(std::uint64_t{1} << 40, std::uint64_t{1} << 30, 3).has_value());
    CHECK_FALSE(sams::detail::residual_net_parameters(4, 1 << 20, std::uint64_t{1} << 30).has_value());
}

TEST_CASE("checkpoint limits: load() of a directory, a missing file or a special file is a checkpoint_error") {
    const auto dir = scratch_dir("load");
    CHECK_THROWS_WITH_AS((void)scheduler_d::load(dir), doctest::Contains("not a regular file"), sams::checkpoint_error);
    CHECK_THROWS_WITH_AS((void)scheduler_d::load(dir / "missing.bin"), doctest::Contains("cannot open"),
                         sams::checkpoint_error);
    CHECK_THROWS_AS((void)scheduler_d::load("/dev/null"), sams::checkpoint_error);
    CHECK_THROWS_AS((void)sams::detail::read_file(dir / "missing" / "deeper.bin"), sams::checkpoint_error);
    // A checkpoint with a directory in its place cannot be saved either; nothing is left behind.
    const auto s = stepped(1, 2);
    std::filesystem::create_directories(dir / "taken");
    CHECK_THROWS_AS(s.save(dir / "taken"), sams::checkpoint_error);
    CHECK_THROWS_AS(s.save(dir / "no_such_folder" / "c.bin"), sams::checkpoint_error);
    CHECK(std::distance(std::filesystem::directory_iterator(dir), {}) == 1);  // only "taken"
    std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoint limits: save() never follows a planted symlink and leaves no temporary file") {
    const auto dir = scratch_dir("symlink");
    const auto path = dir / "ckpt.bin";
    const auto victim = dir / "victim.txt";
    { std::ofstream(victim) << "precious"; }
    // The old fixed temporary name, and a few guesses at others, point at the victim.
    std::filesystem::create_symlink(victim, path.string() + ".tmp");
    std::filesystem::create_symlink(victim, path.string() + "." + std::to_string(::getpid()) + ".0.tmp");
    const auto s = stepped(2, 3);
    s.save(path);
    s.save(path);
    std::string text;
    std::ifstream(victim) >> text;
    CHECK(text == "precious");
    CHECK(scheduler_d::load(path).serialize() == s.serialize());
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        ++files;
        const auto name = entry.path().filename().string();
        CHECK((name == "ckpt.bin" || name == "victim.txt" || entry.is_symlink()));
    }
    CHECK(files == 4);
    // A symlink at the checkpoint path itself is replaced by the new file, its target untouched.
    std::filesystem::remove(path);
    std::filesystem::create_symlink(victim, path);
    s.save(path);
    CHECK_FALSE(std::filesystem::is_symlink(path));
    std::ifstream(victim) >> text;
    CHECK(text == "precious");
    std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoint limits: concurrent saves to one path all succeed and readers never see a torn file") {
    const auto dir = scratch_dir("race");
    const auto path = dir / "ckpt.bin";
    const scheduler_d a = stepped(11), b = stepped(12, 7);
    const bytes_t bytes_a = a.serialize(), bytes_b = b.serialize();
    REQUIRE(bytes_a != bytes_b);
    a.save(path);

    std::atomic<bool> stop{false};
    std::atomic<int> save_failures{0}, torn{0}, reads{0};
    const auto saver = [&](const scheduler_d& s) {
        for (int i = 0; i < 40; ++i) {
            try {
                s.save(path);
            } catch (const sams::error&) {
                ++save_failures;
            }
        }
    };
    std::thread reader([&] {
        while (!stop.load()) {
            try {
                const bytes_t seen = scheduler_d::load(path).serialize();
                if (seen != bytes_a && seen != bytes_b) ++torn;
            } catch (const sams::error&) {
                ++torn;
            }
            ++reads;
        }
    });
    std::thread t1(saver, std::cref(a)), t2(saver, std::cref(b));
    t1.join();
    t2.join();
    stop = true;
    reader.join();
    CHECK(save_failures == 0);
    CHECK(torn == 0);
    CHECK(reads > 0);
    // The last rename wins: the file is one of the two, whole.
    const bytes_t last = scheduler_d::load(path).serialize();
    CHECK((last == bytes_a || last == bytes_b));
    CHECK(std::distance(std::filesystem::directory_iterator(dir), {}) == 1);  // no temporary left behind
    std::filesystem::remove_all(dir);
}

// ---- property: every bad-input class is refused and leaves the target byte-identical -----

namespace {

/// Finds the n-th occurrence of a double value in a payload (a stored tensor element).
std::size_t find_double(const bytes_t& payload, double value) {
    for (std::size_t k = 0; k + 8 <= payload.size(); ++k)
        if (peek<double>(payload, k) == value) return k;
    return SIZE_MAX;
}

/// Writes `file` and restores it into `target`: must throw checkpoint_error, target unchanged.
void check_restore_refused(scheduler_d& target, const bytes_t& file, const char* expected_text) {
    const auto dir = scratch_dir("restore");
    const auto path = dir / "forged.bin";
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
    }
    const bytes_t before = target.serialize();
    CHECK_THROWS_WITH_AS(target.restore(path), doctest::Contains(expected_text), sams::checkpoint_error);
    CHECK(target.serialize() == before);
    std::filesystem::remove_all(dir);
}

}  // namespace

TEST_CASE("checkpoint limits: restored values that could not step are refused, the target unchanged") {
    scheduler_d target = stepped(5, 3);
    const bytes_t payload = payload_of(stepped(3).serialize());
    const std::size_t rng_at = after_config() + 8 * 4;  // context_dim, seed, step and update counts

    SUBCASE("an all-zero generator state (the next step never returned)") {
        auto p = payload;
        for (int w = 0; w < 4; ++w) poke<std::uint64_t>(p, rng_at + 32 + 8 * w, 0);  // the selection rng
        check_restore_refused(target, reframe(p), "all-zero");
    }
    SUBCASE("a non-finite or huge net weight") {
        // The first element of f1's input weight: just after its tag, row count, width, length.
        const std::size_t at = after_tag(payload, "input.weight") + 8 * 3;
        for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), 1e30}) {
            auto p = payload;
            poke<double>(p, at, bad);
            check_restore_refused(target, reframe(p), "input.weight");
        }
    }
    SUBCASE("a negative Adam second moment, and a first moment too large for its second") {
        auto p = payload;
        const std::size_t v_at = after_tag(payload, "adam_v.input.weight") + 8 * 3;
        poke<double>(p, v_at, -1.0);
        check_restore_refused(target, reframe(p), "adam_v.input.weight");
        auto q = payload;
        const std::size_t m_at = after_tag(payload, "adam_m.input.weight") + 8 * 3;
        poke<double>(q, m_at, 1e6);
        check_restore_refused(target, reframe(q), "first moment");
    }
    SUBCASE("an inconsistent pending selection") {
        const std::size_t at = after_tag(payload, "pending") + 1 + 8 + 8;  // flag, progress, selection length
        auto p = payload;
        poke<std::uint64_t>(p, at + 8, peek<std::uint64_t>(p, at));  // second index = first: not ascending
        check_restore_refused(target, reframe(p), "pending selection");
        auto q = payload;
        poke<double>(q, after_tag(payload, "pending") + 1, 2.0);  // progress outside [0, 1]
        check_restore_refused(target, reframe(q), "pending progress");
    }
    SUBCASE("a pool context beyond the accepted range, and an inconsistent pool size") {
        auto p = payload;
        const std::size_t at = after_tag(payload, "pool") + 16 + 16;  // size, seen, width, length
        poke<double>(p, at, 1e30);
        check_restore_refused(target, reframe(p), "pool contexts");
        auto q = payload;
        poke<std::uint64_t>(q, after_tag(payload, "pool") + 8, 0);  // seen < size
        check_restore_refused(target, reframe(q), "inconsistent pool");
    }
    SUBCASE("forged sizes through restore()") {
        auto p = payload;
        poke<std::uint64_t>(p, config_field_offset("net.depth"), std::uint64_t{1} << 40);
        check_restore_refused(target, reframe(p), "net.depth");
    }
    CHECK(find_double(payload, 12345.678) == SIZE_MAX);  // the helpers read the payload, not a copy
}

TEST_CASE("value limits: a scheduler refuses out-of-range inputs unchanged and keeps stepping after extremes") {
    scheduler_d s = stepped(9, 3);
    sams::rng g(77);
    const auto good = [&] { return random_batch(g, B, D); };
    const auto refused = [&](const owned_batch& b, const char* text) {
        const bytes_t before = s.serialize();
        CHECK_THROWS_WITH_AS((void)s.step(b.batch()), doctest::Contains(text), sams::invalid_argument);
        CHECK(s.serialize() == before);
    };
    SUBCASE("contexts of 1e30, FLT_MAX and exactly 2^14 (1e30 used to poison the nets)") {
        for (const double bad : {1e30, double(std::numeric_limits<float>::max()), sams::limits::max_abs_context,
                                 -sams::limits::max_abs_context}) {
            auto b = good();
            b.ctx[4] = bad;
            CAPTURE(bad);
            refused(b, "16384");
        }
    }
    SUBCASE("log-probs beyond 1e9") {
        auto b = good();
        b.r_w[1] = -1e20;
        refused(b, "reference_chosen[1]");
    }
    SUBCASE("accepted extremes: contexts just below 2^14, log-probs at ±1e9, then good batches step") {
        for (int t = 0; t < 6; ++t) {
            auto b = good();
            for (std::size_t k = 0; k < b.ctx.size(); ++k)
                b.ctx[k] = (k % 2 == 0 ? 1.0 : -1.0) * std::nextafter(sams::limits::max_abs_context, 0.0);
            b.a_w[0] = sams::limits::max_abs_log_prob;
            b.a_l[0] = -sams::limits::max_abs_log_prob;
            CHECK_NOTHROW((void)s.step(b.batch()));
        }
        for (int t = 0; t < 10; ++t) {
            const auto d = s.step(good().batch());
            for (const double u : d.score) CHECK(std::isfinite(u));
        }
        CHECK(s.updates() >= 15);
        // The state it reached saves and loads.
        CHECK(scheduler_d::deserialize(s.serialize()).serialize() == s.serialize());
    }
}

TEST_CASE("value limits: configurations beyond the caps are refused at construction, naming the field") {
    const auto refused = [](const sams::scheduler_config& c, const char* text, std::size_t dim = D) {
        CHECK_THROWS_WITH_AS(scheduler_d(c, dim, 1), doctest::Contains(text), sams::invalid_argument);
    };
    auto c = small_config();
    c.select.rule = static_cast<sams::selection_rule>(5);
    refused(c, "select.rule");
    c = small_config();
    c.select.weights = static_cast<sams::weight_scaling>(-1);
    refused(c, "select.weights");
    c = small_config();
    c.reward.mode = static_cast<sams::reward_mode>(9);
    refused(c, "reward.mode");
    c = small_config();
    c.net.act = static_cast<sams::activation>(3);
    refused(c, "net.act");
    c = small_config();
    c.net.hidden = std::size_t{1} << 40;
    refused(c, "net.hidden");
    c = small_config();
    c.net.depth = 1'000'000'000'000;
    refused(c, "net.depth");
    c = small_config();  // hidden·(depth-2) = 2^64 wrapped to 0 and passed the divisibility check
    c.net.hidden = std::size_t{1} << 32;
    c.net.depth = (std::size_t{1} << 32) + 2;
    refused(c, "scheduler_config.net");
    c = small_config();
    c.opt.exploit_steps = 1'000'000'000'000;
    c.opt.early_stop_mse = 0.0;
    refused(c, "exploit_steps");
    c = small_config();
    c.loss.beta = 1e300;
    refused(c, "loss.beta: must be in [1e-6, 1e6]");
    c = small_config();
    c.opt.beta1 = 0.9;
    c.opt.beta2 = 0.5;
    refused(c, "beta2");
    c = small_config();
    c.opt.eps = 1e-13;
    refused(c, "opt.eps: must be finite and >= 1e-12");
    c = small_config();
    c.net.layer_norm_eps = 0.0;
    refused(c, "net.layer_norm_eps: must be finite and >= 1e-12");
    c = small_config();
    c.pool.capacity_rows = std::size_t{1} << 33;
    refused(c, "capacity_rows");
    c = small_config();
    c.pool.capacity_rows = std::size_t{1} << 30;
    refused(c, "pool", 1000);  // 2^30 rows · 1001 elements > 2^36
    refused(small_config(), "context_dim", std::size_t{1} << 21);
    c = small_config();
    c.net.hidden = 1 << 17;  // 2^34 parameters in a 2^17-wide block
    c.net.block_size = 1 << 10;
    refused(c, "parameters");
}

TEST_CASE("value limits: a float scheduler at the smallest accepted epsilons keeps finite scores") {
    // The shape of the fuzzer's finding (tests/fuzz/regressions/adam-eps-zero-in-float): a tiny
    // net, reset Adam moments and many steps per update, zero contexts so that dead units get
    // no gradient. There, Adam's ε had rounded to 0 in float and a parameter of 1e-32 with an
    // underflowed second moment stepped by m/0; at ε >= 1e-12 such a step is negligible.
    sams::scheduler_config c;
    c.net.hidden = 4;
    c.net.depth = 3;
    c.net.block_size = 2;
    c.net.explore_depth = 2;
    c.net.layer_norm_eps = sams::limits::min_epsilon;
    c.opt.eps = sams::limits::min_epsilon;
    c.opt.exploit_steps = 63;
    c.opt.explore_steps = 2;
    c.opt.reset_each_update = true;
    c.pool.capacity_rows = 4;
    c.pool.replay_batches = 1;
    sams::sams_scheduler<sams::eigen_backend<float>> s(c, D, 5);
    sams::rng g(11);
    for (int t = 0; t < 30; ++t) {
        auto b = random_batch(g, B, D);
        if (t % 2 == 0)
            for (std::size_t k = 0; k < b.ctx.size(); ++k) b.ctx[k] = 0.0;  // zero inputs: zero weight gradients
        const auto d = s.step(b.batch());
        for (const float u : d.score) REQUIRE(std::isfinite(u));
    }
    CHECK(s.updates() == 29);
}

TEST_CASE("checkpoint limits: every fuzzer regression input is refused or restores a scheduler that steps") {
    // The inputs of tests/fuzz/regressions/ in the fuzzer's own encoding (sams_fuzz::file_of).
    const std::filesystem::path dir = std::filesystem::path(SAMS_TESTS_DIR) / "fuzz" / "regressions";
    std::size_t inputs = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().filename() == "README.md") continue;
        ++inputs;
        CAPTURE(entry.path().string());
        std::ifstream in(entry.path(), std::ios::binary);
        const bytes_t input((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const bytes_t file = sams_fuzz::file_of(input);
        for (const bool as_float : {false, true}) {
            try {
                if (as_float) {
                    auto s = sams_fuzz::scheduler_f::deserialize(file);
                    (void)s.step(sams_fuzz::good_batch<float>(s.context_dim()).batch());
                } else {
                    auto s = sams_fuzz::scheduler_d::deserialize(file);
                    (void)s.step(sams_fuzz::good_batch<double>(s.context_dim()).batch());
                }
            } catch (const sams::checkpoint_error&) {
            }  // refused: fine; anything else (a step that throws) fails the test
        }
        if (entry.path().filename() == "adam-eps-zero-in-float")
            CHECK_THROWS_WITH_AS((void)sams_fuzz::scheduler_f::deserialize(file), doctest::Contains("opt.eps"),
                                 sams::checkpoint_error);
    }
    CHECK(inputs >= 1);
}
