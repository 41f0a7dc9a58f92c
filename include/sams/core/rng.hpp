// The library's random number generator: xoshiro256** seeded through splitmix64, with
// its own uniform, normal and Gumbel draws. Standard-library distributions are
// implementation-defined, so they would break bit-identical runs across toolchains and
// checkpoint resumes; everything here is a fixed function of the 256-bit state.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace sams {
namespace detail {
__extension__ using uint128 = unsigned __int128;  // __extension__: no -Wpedantic noise
}

class rng {
public:
    using result_type = std::uint64_t;
    using state_type = std::array<std::uint64_t, 4>;

    /// Seeds the stream `stream` of `seed`: different streams of one seed are independent,
    /// so e.g. the dropout masks do not shift when the sampling changes.
    explicit rng(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept { reseed(seed, stream); }

    void reseed(std::uint64_t seed, std::uint64_t stream = 0) noexcept {
        std::uint64_t x = seed ^ (0x9E3779B97F4A7C15ULL * (stream + 1));
        for (auto& s : state_) s = splitmix64(x);
    }

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type{0}; }

    result_type operator()() noexcept {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /// Uniform in [0, 1) with 53 random bits.
    double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

    /// Uniform in (0, 1): safe to take the logarithm of.
    double uniform_open() noexcept {
        return (static_cast<double>((*this)() >> 11) + 0.5) * 0x1.0p-53;
    }

    /// Uniform in [lo, hi).
    double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }

    /// Uniform integer in [0, n) without modulo bias (Lemire's method); n must be > 0.
    std::uint64_t below(std::uint64_t n) noexcept {
        detail::uint128 m = static_cast<detail::uint128>((*this)()) * n;
        auto low = static_cast<std::uint64_t>(m);
        if (low < n) {
            const std::uint64_t threshold = (0 - n) % n;
            while (low < threshold) {
                m = static_cast<detail::uint128>((*this)()) * n;
                low = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }

    /// Standard normal draw (Box-Muller, one value per call so the state stays 256 bits).
    double normal() noexcept {
        const double u1 = uniform_open();
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }

    /// Standard Gumbel draw: -log(-log(U)).
    double gumbel() noexcept { return -std::log(-std::log(uniform_open())); }

    [[nodiscard]] const state_type& state() const noexcept { return state_; }
    void set_state(const state_type& s) noexcept { state_ = s; }

    friend bool operator==(const rng&, const rng&) = default;

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
        return (x << k) | (x >> (64 - k));
    }
    static constexpr std::uint64_t splitmix64(std::uint64_t& x) noexcept {
        std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }

    state_type state_{};
};

}  // namespace sams
