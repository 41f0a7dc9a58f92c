// Core pieces: the RNG's draws and reproducibility, views, config validation.
#include <doctest/doctest.h>

#include <sams/scheduler/scheduler_config.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>

#include <cmath>
#include <vector>

TEST_CASE("rng: same seed and stream give the same sequence, streams differ") {
    sams::rng a(7, 1), b(7, 1), c(7, 2);
    for (int i = 0; i < 100; ++i) {
        const auto x = a();
        CHECK(x == b());
        (void)c;
    }
    sams::rng d(7, 1), e(7, 2);
    int equal = 0;
    for (int i = 0; i < 100; ++i) equal += d() == e() ? 1 : 0;
    CHECK(equal == 0);
}

TEST_CASE("rng: uniform, normal and below have the right moments") {
    sams::rng r(123);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    std::vector<int> counts(7, 0);
    for (int i = 0; i < n; ++i) {
        const double u = r.uniform();
        CHECK((u >= 0.0 && u < 1.0));
        su += u;
        const double z = r.normal();
        sn += z;
        sn2 += z * z;
        ++counts[static_cast<std::size_t>(r.below(7))];
    }
    // Standard errors: uniform mean 0.29/sqrt(n) ≈ 6.5e-4, normal mean 2.2e-3, variance 3.2e-3.
    CHECK(su / n == doctest::Approx(0.5).epsilon(0.005));
    CHECK(std::abs(sn / n) < 0.01);
    CHECK(sn2 / n == doctest::Approx(1.0).epsilon(0.02));
    for (int c : counts) CHECK(std::abs(c - n / 7.0) < 5.0 * std::sqrt(n / 7.0));
}

TEST_CASE("rng: state round-trips") {
    sams::rng r(5);
    for (int i = 0; i < 10; ++i) (void)r();
    sams::rng s;
    s.set_state(r.state());
    CHECK(s == r);
    CHECK(s() == r());
}

TEST_CASE("matrix_view: strided access") {
    std::vector<float> buf{1, 2, 3, 99, 4, 5, 6, 99};
    sams::matrix_view<const float> m{buf.data(), 2, 3, 4};
    CHECK(m.stride() == 4);
    CHECK(m(1, 2) == 6.0f);
    sams::matrix_view<const float> contiguous{buf.data(), 2, 4};
    CHECK(contiguous.stride() == 4);
}

TEST_CASE("scheduler_config: defaults and paper() validate, bad fields are named") {
    CHECK_NOTHROW(sams::scheduler_config{}.validate());
    CHECK_NOTHROW(sams::scheduler_config::paper().validate());
    CHECK(sams::scheduler_config::paper().net.feature_dim() == 4096 * 14 / 16);

    auto c = sams::scheduler_config{};
    c.select.ratio = 0.0;
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("select.ratio"), sams::invalid_argument);
    c = {};
    c.net.block_size = 3;  // 256*2 = 512 is not divisible by 3
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("net.block_size"), sams::invalid_argument);
    c = {};
    c.net.depth = 2;
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("net.depth"), sams::invalid_argument);
    c = {};
    c.loss.beta = -1;
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("beta"), sams::invalid_argument);
}
