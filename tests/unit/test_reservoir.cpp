// Replay-pool indexing: Algorithm R fills in order, never exceeds its capacity, keeps every
// row with probability capacity/N, and samples distinct filled slots uniformly.
#include <doctest/doctest.h>

#include <sams/core/rng.hpp>
#include <sams/scheduler/reservoir.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

TEST_CASE("reservoir_index: the first capacity rows fill slots in order") {
    sams::reservoir_index pool(5);
    sams::rng gen(1);
    std::vector<std::ptrdiff_t> slots;
    CHECK(pool.size() == 0);
    CHECK(pool.capacity() == 5);
    CHECK_FALSE(pool.full());

    pool.offer(3, gen, slots);
    CHECK(slots == std::vector<std::ptrdiff_t>{0, 1, 2});
    CHECK(pool.size() == 3);
    CHECK(pool.seen() == 3);

    const sams::rng before_fill = gen;
    pool.offer(2, gen, slots);
    CHECK(slots == std::vector<std::ptrdiff_t>{3, 4});
    CHECK(gen == before_fill);  // no draw is needed while the pool has room
    CHECK(pool.full());

    pool.offer(4, gen, slots);
    CHECK(slots.size() == 4);
    for (const auto s : slots) CHECK((s == -1 || (s >= 0 && s < 5)));
    CHECK(pool.size() == 5);
    CHECK(pool.seen() == 9);
}

TEST_CASE("reservoir_index: every streamed row is kept with probability capacity/N") {
    // Stream N = 100 rows in batches of 7 (the last one short) into a pool of 10, in
    // R = 20000 independent runs with different seeds, writing rows where offer() says.
    // Each row's inclusion count is Binomial(R, 0.1): mean 2000, sd = sqrt(R 0.1 0.9) ≈ 42.4.
    constexpr std::size_t capacity = 10;
    constexpr std::size_t rows = 100;
    constexpr std::size_t batch = 7;
    constexpr int runs = 20000;
    std::vector<double> kept(rows, 0.0);
    std::vector<std::ptrdiff_t> slots;
    std::vector<std::size_t> content(capacity);
    int violations = 0;
    for (int run = 0; run < runs; ++run) {
        sams::reservoir_index pool(capacity);
        sams::rng gen(static_cast<std::uint64_t>(run) + 1000);
        for (std::size_t first = 0; first < rows; first += batch) {
            const std::size_t n = std::min(batch, rows - first);
            pool.offer(n, gen, slots);
            for (std::size_t r = 0; r < n; ++r) {
                if (slots[r] < -1 || slots[r] >= static_cast<std::ptrdiff_t>(capacity)) ++violations;
                if (slots[r] >= 0) content[static_cast<std::size_t>(slots[r])] = first + r;
            }
            if (pool.size() > capacity) ++violations;
        }
        for (const auto row : content) kept[row] += 1;
    }
    CHECK(violations == 0);
    const double expected = runs * static_cast<double>(capacity) / rows;
    const double sd = std::sqrt(runs * 0.1 * 0.9);
    double max_z = 0.0;
    for (const double k : kept) max_z = std::max(max_z, std::abs(k - expected) / sd);
    // 100 rows at |z| < 4.5: a correct sampler fails with probability below 100 · 7e-6.
    CHECK(max_z < 4.5);
    // Early and late rows alike (a "random overwrite" pool keeps late rows far more often).
    double early = 0.0, late = 0.0;
    for (std::size_t r = 0; r < 10; ++r) early += kept[r];
    for (std::size_t r = rows - 10; r < rows; ++r) late += kept[r];
    CHECK(std::abs(early - late) < 5.0 * std::sqrt(2.0 * 10.0) * sd);
}

TEST_CASE("reservoir_index: sample returns distinct filled slots uniformly, ascending") {
    sams::reservoir_index pool(8);
    sams::rng gen(3);
    std::vector<std::ptrdiff_t> offered;
    std::vector<std::size_t> slots;

    pool.sample(4, gen, slots);
    CHECK(slots.empty());  // nothing stored yet

    pool.offer(6, gen, offered);  // slots 0..5 filled, 6 and 7 empty
    pool.sample(10, gen, slots);
    CHECK(slots == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
    const sams::rng before = gen;
    pool.sample(6, gen, slots);
    CHECK(slots == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
    CHECK(gen == before);  // taking everything needs no draw
    pool.sample(0, gen, slots);
    CHECK(slots.empty());

    // m = 2 of 6 filled slots: 15 subsets of probability 1/15, 14 degrees of freedom;
    // 36.123 is the chi-square 0.001 critical value, the seed is fixed.
    const double n = 60000;
    std::map<std::pair<std::size_t, std::size_t>, double> count;
    int malformed = 0;
    for (int t = 0; t < static_cast<int>(n); ++t) {
        pool.sample(2, gen, slots);
        if (slots.size() != 2 || slots[0] >= slots[1] || slots[1] >= 6) {
            ++malformed;
            continue;
        }
        count[{slots[0], slots[1]}] += 1;
    }
    REQUIRE(malformed == 0);
    REQUIRE(count.size() == 15);
    double chi = 0.0;
    for (const auto& [subset, c] : count) chi += (c - n / 15.0) * (c - n / 15.0) / (n / 15.0);
    CHECK(chi < 36.123);

    // A full pool: larger draws stay distinct, ascending and in range.
    pool.offer(50, gen, offered);
    int bad = 0;
    for (int t = 0; t < 1000; ++t) {
        pool.sample(5, gen, slots);
        if (slots.size() != 5) ++bad;
        for (std::size_t i = 0; i < slots.size(); ++i)
            if (slots[i] >= 8 || (i > 0 && slots[i - 1] >= slots[i])) ++bad;
    }
    CHECK(bad == 0);
}

TEST_CASE("reservoir_index: state round-trip, clear, bad arguments") {
    sams::reservoir_index a(16);
    sams::rng ga(8);
    std::vector<std::ptrdiff_t> sa, sb;
    a.offer(40, ga, sa);

    sams::reservoir_index b(16);
    b.set_state(a.state());
    sams::rng gb = ga;
    CHECK(b.seen() == 40);
    CHECK(b.size() == 16);
    a.offer(30, ga, sa);
    b.offer(30, gb, sb);
    CHECK(sa == sb);

    sams::reservoir_index other(8);
    CHECK_THROWS_WITH_AS(other.set_state(a.state()), doctest::Contains("capacity"), sams::invalid_argument);
    CHECK(other.seen() == 0);

    a.clear();
    CHECK(a.size() == 0);
    CHECK(a.seen() == 0);
    a.offer(2, ga, sa);
    CHECK(sa == std::vector<std::ptrdiff_t>{0, 1});

    CHECK_THROWS_AS(sams::reservoir_index(0), sams::invalid_argument);
}
