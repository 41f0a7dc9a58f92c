// Summary statistics for the benchmark tables: mean and the half-width of a two-sided
// 95 % Student-t confidence interval over seeds.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

namespace sams::bench {

/// t_{0.975, df}: the two-sided 95 % quantile of Student's t with df degrees of freedom
/// (df ≥ 1). Tabulated to 4 decimals up to 30, a Cornish–Fisher expansion beyond.
[[nodiscard]] inline double t_quantile_975(std::size_t df) noexcept {
    static constexpr double table[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060,
                                       2.2622,  2.2281, 2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199,
                                       2.1098,  2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
                                       2.0595,  2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
    if (df == 0) return NAN;
    if (df <= 30) return table[df - 1];
    const double z = 1.959963984540054;
    const double v = static_cast<double>(df);
    const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
    return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) +
           (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v);
}

/// Mean, sample standard deviation and 95 % CI half-width t·s/√n of n values.
struct summary {
    std::size_t n = 0;
    double mean = 0.0;
    double stddev = 0.0;      ///< with n − 1 in the denominator; 0 for n < 2
    double half_width = 0.0;  ///< 0 for n < 2 (no interval from one value)
};

[[nodiscard]] inline summary summarize(std::span<const double> values) noexcept {
    summary s;
    s.n = values.size();
    if (s.n == 0) return s;
    for (const double v : values) s.mean += v;
    s.mean /= static_cast<double>(s.n);
    if (s.n < 2) return s;
    double ss = 0.0;
    for (const double v : values) ss += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(s.n - 1));
    s.half_width = t_quantile_975(s.n - 1) * s.stddev / std::sqrt(static_cast<double>(s.n));
    return s;
}

}  // namespace sams::bench
