// The xtensor adapter: zero-copy views of xarray/xtensor containers, strided and permuted
// views, and xt::adapt results give the same contexts as a contiguous copy; layouts that a
// view cannot express are rejected with a clear message.
// requires: xtensor
#include <doctest/doctest.h>

#include <sams/adapters/xtensor.hpp>
#include <sams/context/mean_pool.hpp>
#include <sams/core/rng.hpp>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <cstdint>
#include <type_traits>
#include <vector>

namespace xa = sams::xtensor_adapt;
using xt::placeholders::_;

namespace {

template <class T>
xt::xarray<T> random_array(const std::vector<std::size_t>& shape, std::uint64_t seed) {
    xt::xarray<T> a = xt::zeros<T>(shape);
    sams::rng r(seed);
    for (auto& v : a) v = static_cast<T>(r.normal());
    return a;
}

xt::xarray<std::uint8_t> random_mask(std::size_t pairs, std::size_t tokens, std::uint64_t seed) {
    xt::xarray<std::uint8_t> m = xt::zeros<std::uint8_t>({pairs, tokens});
    sams::rng r(seed);
    for (std::size_t p = 0; p < pairs; ++p) {
        m(p, r.below(tokens)) = 1;  // at least one valid token per row
        for (std::size_t t = 0; t < tokens; ++t)
            if (r.uniform() < 0.5) m(p, t) = 1;
    }
    return m;
}

// The reference: contexts from contiguous std::vector copies of [L][B][T][d] (element order of
// a row-major xarray read through operator()), with the plain layer-major view.
template <class T>
std::vector<T> contexts_of_copy(sams::mean_pool_extractor<T>& ex, const xt::xarray<T>& hw,
                                const xt::xarray<T>& hl, const xt::xarray<std::uint8_t>& mw,
                                const xt::xarray<std::uint8_t>& ml) {
    auto copy = [](const auto& a) {
        using V = std::remove_cv_t<std::remove_reference_t<decltype(*a.begin())>>;
        return std::vector<V>(a.begin(), a.end());  // row-major traversal
    };
    const auto w = copy(hw), l = copy(hl);
    const auto cw = copy(mw), cl = copy(ml);
    const std::size_t L = hw.shape()[0], B = hw.shape()[1], Tw = hw.shape()[2], Tl = hl.shape()[2],
                      d = hw.shape()[3];
    return ex
        .extract(sams::hidden_states_view<T>::layer_major(w.data(), L, B, Tw, d),
                 sams::hidden_states_view<T>::layer_major(l.data(), L, B, Tl, d),
                 sams::token_mask_view<std::uint8_t>::contiguous(cw.data(), B, Tw),
                 sams::token_mask_view<std::uint8_t>::contiguous(cl.data(), B, Tl))
        .values;
}

}  // namespace

TEST_CASE_TEMPLATE("xtensor_adapt: as_matrix_view over containers and row or column slices", T, float,
                   double) {
    xt::xarray<T> a = random_array<T>({5, 4}, 1);
    const auto m = xa::as_matrix_view(a);
    static_assert(std::is_same_v<decltype(m), const sams::matrix_view<T>>);
    CHECK(m.data == a.data());
    CHECK(m.rows == 5);
    CHECK(m.cols == 4);
    for (std::size_t r = 0; r < 5; ++r)
        for (std::size_t c = 0; c < 4; ++c) CHECK(m(r, c) == a(r, c));

    const xt::xarray<T>& ca = a;
    static_assert(std::is_same_v<decltype(xa::as_matrix_view(ca)), sams::matrix_view<const T>>);

    auto rows = xt::view(a, xt::range(1, 4), xt::all());
    auto cols = xt::view(a, xt::all(), xt::range(1, 3));
    const auto mr = xa::as_matrix_view(rows);
    const auto mc = xa::as_matrix_view(cols);
    CHECK(mr.rows == 3);
    CHECK(mc.cols == 2);
    CHECK(mc.stride() == 4);
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 4; ++c) CHECK(mr(r, c) == a(r + 1, c));
    for (std::size_t r = 0; r < 5; ++r)
        for (std::size_t c = 0; c < 2; ++c) CHECK(mc(r, c) == a(r, c + 1));

    // Writing through the view lands in the xarray: it can be an extractor's `out`.
    mc(2, 1) = T(123);
    CHECK(a(2, 2) == T(123));

    // One row (extent-1 axes get stride 0 from xtensor) is still a valid matrix.
    auto one = xt::view(a, xt::range(2, 3), xt::all());
    CHECK(xa::as_matrix_view(one)(0, 3) == a(2, 3));
}

TEST_CASE_TEMPLATE("xtensor_adapt: layouts a matrix_view or span cannot express are rejected", T, float,
                   double) {
    xt::xarray<T> a = random_array<T>({5, 4}, 2);
    auto t = xt::transpose(a);
    CHECK_THROWS_WITH_AS((void)xa::as_matrix_view(t), doctest::Contains("last axis has stride 4"),
                         sams::invalid_argument);
    xt::xarray<T, xt::layout_type::column_major> cm = a;
    CHECK_THROWS_WITH_AS((void)xa::as_matrix_view(cm), doctest::Contains("column-major or transposed"),
                         sams::invalid_argument);
    auto every_other = xt::view(a, xt::all(), xt::range(0, 4, 2));
    CHECK_THROWS_WITH_AS((void)xa::as_matrix_view(every_other), doctest::Contains("unit stride"),
                         sams::invalid_argument);
    auto reversed = xt::view(a, xt::range(_, _, -1), xt::all());
    REQUIRE(reversed.shape()[0] == 5);
    CHECK_THROWS_WITH_AS((void)xa::as_matrix_view(reversed), doctest::Contains("row stride -4"),
                         sams::invalid_argument);
    xt::xarray<T> cube = random_array<T>({2, 2, 2}, 3);
    CHECK_THROWS_WITH_AS((void)xa::as_matrix_view(cube),
                         doctest::Contains("must be a 2-D expression, got 3-D"), sams::invalid_argument);

    auto column = xt::view(a, xt::all(), 1);
    CHECK_THROWS_WITH_AS((void)xa::as_span(column), doctest::Contains("the vector has stride 4"),
                         sams::invalid_argument);
    auto row = xt::view(a, 3, xt::all());
    const auto s = xa::as_span(row);
    CHECK(s.size() == 4);
    CHECK(s.data() == a.data() + 12);
}

TEST_CASE_TEMPLATE(
    "xtensor_adapt: hidden-state views of xarray, permuted, reversed and column-major layouts agree", T,
    float, double) {
    const std::size_t L = 3, B = 4, Tw = 6, Tl = 5, d = 3;
    const xt::xarray<T> hw = random_array<T>({L, B, Tw, d}, 10);
    const xt::xarray<T> hl = random_array<T>({L, B, Tl, d}, 11);
    const auto mw = random_mask(B, Tw, 12), ml = random_mask(B, Tl, 13);
    for (auto reduce : {sams::layer_reduction::flatten_layers, sams::layer_reduction::random_projection}) {
        sams::mean_pool_extractor<T> ex({{0, 2}, sams::context_combine::concatenate, reduce, 5, 7});
        const auto want = contexts_of_copy(ex, hw, hl, mw, ml);

        // The xarrays themselves.
        CHECK(ex.extract(xa::as_hidden_states(hw), xa::as_hidden_states(hl), xa::as_token_mask(mw),
                         xa::as_token_mask(ml))
                  .values == want);

        // Pair-major storage [B][L][T][d], made layer-major again by a transposed view.
        const xt::xarray<T> pw = xt::transpose(hw, {1, 0, 2, 3});
        const xt::xarray<T> pl = xt::transpose(hl, {1, 0, 2, 3});
        auto vw = xt::transpose(pw, {1, 0, 2, 3});
        auto vl = xt::transpose(pl, {1, 0, 2, 3});
        CHECK(ex.extract(xa::as_hidden_states(vw), xa::as_hidden_states(vl), xa::as_token_mask(mw),
                         xa::as_token_mask(ml))
                  .values == want);

        // Tokens stored in reverse, read back through a negative-stride view; the mask likewise.
        const xt::xarray<T> rw = xt::flip(hw, 2);
        const xt::xarray<std::uint8_t> rmw = xt::flip(mw, 1);
        auto back_w = xt::view(rw, xt::all(), xt::all(), xt::range(_, _, -1), xt::all());
        auto back_m = xt::view(rmw, xt::all(), xt::range(_, _, -1));
        REQUIRE(xa::as_hidden_states(back_w).token_stride < 0);
        CHECK(ex.extract(xa::as_hidden_states(back_w), xa::as_hidden_states(hl), xa::as_token_mask(back_m),
                         xa::as_token_mask(ml))
                  .values == want);

        // Column-major containers, and a transposed [T][B] mask.
        const xt::xarray<T, xt::layout_type::column_major> cw = hw;
        const xt::xarray<std::uint8_t> mwt = xt::transpose(mw);
        auto mw_again = xt::transpose(mwt);
        CHECK(ex.extract(xa::as_hidden_states(cw), xa::as_hidden_states(hl), xa::as_token_mask(mw_again),
                         xa::as_token_mask(ml))
                  .values == want);

        // xt::adapt over the host's own buffer, and the output written into an xtensor.
        std::vector<T> raw(hw.begin(), hw.end());
        auto adapted =
            xt::adapt(raw.data(), raw.size(), xt::no_ownership(), std::vector<std::size_t>{L, B, Tw, d});
        xt::xtensor<T, 2> out = xt::zeros<T>({B, ex.output_dim(L, d)});
        ex.extract(xa::as_hidden_states(adapted), xa::as_hidden_states(hl), xa::as_token_mask(mw),
                   xa::as_token_mask(ml), xa::as_matrix_view(out));
        CHECK(std::vector<T>(out.begin(), out.end()) == want);
    }
}

TEST_CASE_TEMPLATE("xtensor_adapt: a combined 2B xarray splits, a 3-D one is one layer", T, float, double) {
    const std::size_t L = 2, B = 3, Tk = 4, d = 2;
    const xt::xarray<T> both = random_array<T>({L, 2 * B, Tk, d}, 20);
    const auto mask = random_mask(2 * B, Tk, 21);
    sams::mean_pool_extractor<T> ex;
    const xt::xarray<T> hw = xt::view(both, xt::all(), xt::range(0, B), xt::all(), xt::all());
    const xt::xarray<T> hl = xt::view(both, xt::all(), xt::range(B, 2 * B), xt::all(), xt::all());
    const xt::xarray<std::uint8_t> mw = xt::view(mask, xt::range(0, B), xt::all());
    const xt::xarray<std::uint8_t> ml = xt::view(mask, xt::range(B, 2 * B), xt::all());
    const auto want = contexts_of_copy(ex, hw, hl, mw, ml);
    const auto [c, r] = sams::split_chosen_rejected(xa::as_hidden_states(both));
    const auto [mc, mr] = sams::split_chosen_rejected(xa::as_token_mask(mask));
    CHECK(ex.extract(c, r, mc, mr).values == want);

    // [pairs, tokens, dim] is a single layer: the same as layer 1 of the 4-D tensor.
    auto layer1_w = xt::view(hw, 1, xt::all(), xt::all(), xt::all());
    auto layer1_l = xt::view(hl, 1, xt::all(), xt::all(), xt::all());
    const auto h3 = xa::as_hidden_states(layer1_w);
    CHECK(h3.layers == 1);
    sams::mean_pool_extractor<T> last(
        {{}, sams::context_combine::average, sams::layer_reduction::last_layer, 0, 0});
    CHECK(last.extract(h3, xa::as_hidden_states(layer1_l), xa::as_token_mask(mw), xa::as_token_mask(ml))
              .values == last.extract(xa::as_hidden_states(hw), xa::as_hidden_states(hl),
                                      xa::as_token_mask(mw), xa::as_token_mask(ml))
                             .values);
    xt::xarray<T> flat = random_array<T>({4, 4}, 22);
    CHECK_THROWS_WITH_AS((void)xa::as_hidden_states(flat), doctest::Contains("got 2-D"),
                         sams::invalid_argument);
}

TEST_CASE_TEMPLATE("xtensor_adapt: make_pair_batch points into the expressions", T, float, double) {
    xt::xarray<T> aw = random_array<T>({6}, 30), al = random_array<T>({6}, 31);
    const xt::xtensor<T, 1> rw = random_array<T>({6}, 32), rl = random_array<T>({6}, 33);
    const auto b = xa::make_pair_batch(aw, al, rw, rl);
    static_assert(std::is_same_v<decltype(b), const sams::pair_batch<T>>);
    CHECK(b.size() == 6);
    CHECK(b.policy_chosen.data() == aw.data());
    CHECK(b.policy_rejected.data() == al.data());
    CHECK(b.reference_chosen.data() == rw.data());
    CHECK(b.reference_rejected.data() == rl.data());
    CHECK(b.has_reference());

    // Columns of one [B][4] table: a column view has stride 4 and is rejected, a row is fine.
    xt::xarray<T> table = random_array<T>({4, 6}, 34);
    auto r0 = xt::view(table, 0, xt::all());
    auto r1 = xt::view(table, 1, xt::all());
    const auto free_batch = xa::make_pair_batch(r0, r1);
    CHECK(free_batch.policy_rejected.data() == table.data() + 6);
    CHECK_FALSE(free_batch.has_reference());

    xt::xarray<T> shorter = random_array<T>({5}, 35);
    CHECK_THROWS_WITH_AS((void)xa::make_pair_batch(aw, al, shorter, rl),
                         doctest::Contains("r_w has length 5, expected 6"), sams::invalid_argument);
    auto column = xt::view(table, xt::all(), 0);
    CHECK_THROWS_WITH_AS((void)xa::make_pair_batch(aw, column), doctest::Contains("stride"),
                         sams::invalid_argument);
}
