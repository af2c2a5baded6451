/*
 * QA of the angle-delay map kernel against a naive triple loop.
 * Plain executable: prints each failure and exits non-zero (independent of NDEBUG).
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "qa_check.h"

#include <gnuradio/isac/angle_delay_map.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

using gr::isac::cfloat;
using gr::isac::map_dims;
using cdouble = std::complex<double>;

static std::vector<cfloat> random_matrix(int64_t rows, int64_t cols, std::mt19937& rng)
{
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::vector<cfloat> v(rows * cols);
    for (auto& x : v)
        x = cfloat(n(rng), n(rng));
    return v;
}

// M[a][d] = sum_k sum_s conj(Phi_a[k][a]) * Y[k][s] * conj(Phi_d[s][d]), in double.
static std::vector<cdouble> naive_map(const std::vector<cfloat>& Y, const std::vector<cfloat>& Pa,
                                      const std::vector<cfloat>& Pd, const map_dims& d)
{
    std::vector<cdouble> M(d.Na * d.Nd);
    for (int64_t a = 0; a < d.Na; ++a)
        for (int64_t j = 0; j < d.Nd; ++j) {
            cdouble acc = 0.0;
            for (int64_t k = 0; k < d.K; ++k)
                for (int64_t s = 0; s < d.S; ++s)
                    acc += std::conj(cdouble(Pa[k * d.Na + a])) * cdouble(Y[k * d.S + s]) *
                           std::conj(cdouble(Pd[s * d.Nd + j]));
            M[a * d.Nd + j] = acc;
        }
    return M;
}

static void test_against_naive(const map_dims& d, std::mt19937& rng)
{
    const auto Y = random_matrix(d.K, d.S, rng);
    const auto Pa = random_matrix(d.K, d.Na, rng);
    const auto Pd = random_matrix(d.S, d.Nd, rng);
    const auto ref = naive_map(Y, Pa, Pd, d);

    std::vector<cfloat> M(d.Na * d.Nd, cfloat(7.0f, 7.0f)); // garbage: must be overwritten
    std::vector<float> L(d.Na * d.Nd, 7.0f);
    gr::isac::angle_delay_map_complex(Y.data(), Pa.data(), Pd.data(), d, M.data());
    gr::isac::angle_delay_map_power(Y.data(), Pa.data(), Pd.data(), d, L.data());

    // Entries are sums of K*S products of unit-variance terms: scale the tolerance.
    const double scale = std::sqrt(double(std::max<int64_t>(d.K * d.S, 1)));
    double err = 0.0, perr = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        err = std::max(err, std::abs(cdouble(M[i]) - ref[i]) / scale);
        perr = std::max(perr, std::abs(double(L[i]) - std::norm(ref[i])) / (scale * scale));
    }
    CHECK(err < 1e-5, "complex map K=%ld S=%ld Na=%ld Nd=%ld: scaled error %g", (long)d.K, (long)d.S, (long)d.Na,
          (long)d.Nd, err);
    CHECK(perr < 1e-4, "power map K=%ld S=%ld Na=%ld Nd=%ld: scaled error %g", (long)d.K, (long)d.S, (long)d.Na,
          (long)d.Nd, perr);
}

// Phi_d[s][j] = exp(-j 2 pi s df (tau0 + j dtau)): the chirp-z path must be detected
// and give the naive map; a perturbed copy must fall back to the GEMM path.
static void test_chirp_z(const map_dims& d, double tau0, double dtau, std::mt19937& rng)
{
    const double df = 120e3;
    const auto Y = random_matrix(d.K, d.S, rng);
    const auto Pa = random_matrix(d.K, d.Na, rng);
    std::vector<cfloat> Pd(d.S * d.Nd);
    for (int64_t s = 0; s < d.S; ++s)
        for (int64_t j = 0; j < d.Nd; ++j)
            Pd[s * d.Nd + j] = cfloat(std::polar(1.0, -2.0 * M_PI * df * (tau0 + double(j) * dtau) * double(s)));
    const auto ref = naive_map(Y, Pa, Pd, d);
    const double scale = std::sqrt(double(std::max<int64_t>(d.K * d.S, 1)));
    for (int variant = 0; variant < 3; ++variant) {
        auto P = Pd;
        if (variant == 2)
            P[(d.S - 1) * d.Nd + d.Nd / 2] *= std::polar(1.0f, 1e-4f); // not a DFT any more
        gr::isac::angle_delay_mapper mapper(Pa.data(), P.data(), d, variant != 1);
        const bool want = variant == 0 && d.S > 1 && d.Nd > 1;
        CHECK(mapper.uses_chirp_z() == want, "chirp-z S=%ld Nd=%ld variant %d: uses_chirp_z %d, want %d", (long)d.S,
              (long)d.Nd, variant, mapper.uses_chirp_z(), want);
        std::vector<cfloat> M(d.Na * d.Nd);
        mapper.map_complex(Y.data(), M.data());
        if (variant == 2)
            continue;
        double err = 0.0;
        for (size_t i = 0; i < ref.size(); ++i)
            err = std::max(err, std::abs(cdouble(M[i]) - ref[i]) / scale);
        CHECK(err < 1e-5, "chirp-z S=%ld Nd=%ld variant %d: scaled error %g", (long)d.S, (long)d.Nd, variant, err);
    }
}

// Phi_a of an array symmetric about its centre: the half-size real path must be
// detected and give the naive map, with both delay paths; a perturbed copy falls back.
static void test_symmetric(const map_dims& d, std::mt19937& rng)
{
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::vector<double> pos(d.K), th(d.Na);
    for (int64_t k = 0; k < d.K / 2; ++k) {
        pos[k] = u(rng) * 3.0;
        pos[d.K - 1 - k] = -pos[k];
    }
    if (d.K % 2)
        pos[d.K / 2] = 0.0;
    for (auto& t : th)
        t = u(rng) * 1.5;
    std::vector<cfloat> Pa(d.K * d.Na), Pd(d.S * d.Nd);
    for (int64_t k = 0; k < d.K; ++k)
        for (int64_t i = 0; i < d.Na; ++i)
            Pa[k * d.Na + i] = cfloat(std::polar(1.0, -2.0 * M_PI * pos[k] * std::sin(th[i])));
    for (int64_t s = 0; s < d.S; ++s)
        for (int64_t j = 0; j < d.Nd; ++j)
            Pd[s * d.Nd + j] = cfloat(std::polar(1.0, -2.0 * M_PI * 0.01 * double(j * s)));
    const auto Y = random_matrix(d.K, d.S, rng);
    const auto ref = naive_map(Y, Pa, Pd, d);
    const double scale = std::sqrt(double(std::max<int64_t>(d.K * d.S, 1)));
    for (int variant = 0; variant < 4; ++variant) {
        auto P = Pa;
        if (variant == 3)
            P[(d.K - 1) * d.Na] *= std::polar(1.0f, 1e-4f);
        gr::isac::angle_delay_mapper mapper(P.data(), Pd.data(), d, variant != 1, variant != 2);
        CHECK(mapper.uses_symmetric_array() == (variant != 2 && variant != 3),
              "symmetric K=%ld variant %d: uses_symmetric_array %d", (long)d.K, variant, mapper.uses_symmetric_array());
        if (variant == 3)
            continue;
        std::vector<cfloat> M(d.Na * d.Nd);
        mapper.map_complex(Y.data(), M.data());
        double err = 0.0;
        for (size_t i = 0; i < ref.size(); ++i)
            err = std::max(err, std::abs(cdouble(M[i]) - ref[i]) / scale);
        CHECK(err < 1e-5, "symmetric K=%ld variant %d: scaled error %g", (long)d.K, variant, err);
    }
}

static void test_argmax()
{
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> a{1.0f, 5.0f, 5.0f, 2.0f};
    auto p = gr::isac::map_argmax(a.data(), (int64_t)a.size());
    CHECK(p.index == 1 && p.value == 5.0f, "argmax: got %ld %g, want 1 5", (long)p.index, p.value);

    const std::vector<float> b{-3.0f, -1.0f, -2.0f};
    p = gr::isac::map_argmax(b.data(), (int64_t)b.size());
    CHECK(p.index == 1, "argmax of negatives: got %ld, want 1", (long)p.index);

    const std::vector<float> c{1.0f, nan, 9.0f, nan};
    p = gr::isac::map_argmax(c.data(), (int64_t)c.size());
    CHECK(p.index == 1 && std::isnan(p.value), "argmax with NaN: got %ld, want 1", (long)p.index);

    bool threw = false;
    try {
        gr::isac::map_argmax(a.data(), 0);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw, "argmax of an empty map must throw");
}

static void test_errors()
{
    bool threw = false;
    try {
        gr::isac::angle_delay_map_complex(nullptr, nullptr, nullptr, {-1, 2, 2, 2}, nullptr);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw, "negative K must throw");
}

int main()
{
    std::mt19937 rng(20240601);
    test_against_naive({7, 13, 11, 5}, rng);
    test_against_naive({16, 64, 90, 40}, rng);
    test_against_naive({1, 1, 1, 1}, rng);
    test_against_naive({0, 4, 3, 2}, rng); // empty sum: the map must be all zeros
    const double c = 299792458.0;
    test_chirp_z({8, 256, 30, 200}, 20.0 / c, 2.0 * (180.0 / 199.0) / c, rng); // paper's delay grid
    test_chirp_z({4, 37, 9, 23}, 3e-6, -1.3e-8, rng);                          // descending grid, odd sizes
    test_chirp_z({4, 16, 5, 40}, 0.0, 1.0 / (120e3 * 40.0), rng);              // a plain DFT
    test_chirp_z({3, 1, 4, 6}, 1e-6, 1e-8, rng);                               // S = 1: GEMM path
    test_chirp_z({3, 9, 4, 1}, 1e-6, 1e-8, rng);                               // Nd = 1: GEMM path
    test_symmetric({64, 32, 90, 20}, rng);
    test_symmetric({7, 12, 13, 5}, rng); // odd K: a real middle row
    test_symmetric({2, 3, 4, 3}, rng);
    test_argmax();
    test_errors();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("qa_angle_delay_map: all checks passed\n");
    return 0;
}
