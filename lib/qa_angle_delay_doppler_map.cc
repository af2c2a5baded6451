/*
 * QA of the angle-delay-Doppler map and OMP kernels against naive loops in double precision:
 * the map as the quadruple sum over symbols, antennas and subcarriers, and Algorithm 1 taken
 * literally (the full map of the explicit residual Y - sum alpha_t d_t x a_t x rho_t at every
 * iteration, joint LS on the vectorised atoms).
 * Plain executable: prints each failure and exits non-zero.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "qa_check.h"

#include <gnuradio/isac/omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

using gr::isac::cdouble;
using gr::isac::cfloat;
using gr::isac::doppler_dims;

static std::vector<cfloat> random_matrix(int64_t n, std::mt19937& rng)
{
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<cfloat> v(n);
    for (auto& x : v)
        x = cfloat(g(rng), g(rng));
    return v;
}

struct dictionaries {
    std::vector<cfloat> pa, pd, pv; // K x Na, S x Nd, M x Nv
};

// M[i][j][l] = sum conj(Pa[k][i]) Y[m][k][s] conj(Pd[s][j]) conj(Pv[m][l]) in double, layout (Na, Nd, Nv).
static std::vector<cdouble> naive_map(const std::vector<cdouble>& Y, const dictionaries& D, const doppler_dims& d)
{
    std::vector<cdouble> out(d.Na * d.Nd * d.Nv);
    for (int64_t i = 0; i < d.Na; ++i)
        for (int64_t j = 0; j < d.Nd; ++j)
            for (int64_t l = 0; l < d.Nv; ++l) {
                cdouble acc = 0.0;
                for (int64_t m = 0; m < d.M; ++m)
                    for (int64_t k = 0; k < d.K; ++k)
                        for (int64_t s = 0; s < d.S; ++s)
                            acc += std::conj(cdouble(D.pa[k * d.Na + i])) * Y[(m * d.K + k) * d.S + s] *
                                   std::conj(cdouble(D.pd[s * d.Nd + j])) * std::conj(cdouble(D.pv[m * d.Nv + l]));
                out[(i * d.Nd + j) * d.Nv + l] = acc;
            }
    return out;
}

static void test_map(const doppler_dims& d, std::mt19937& rng)
{
    const dictionaries D{random_matrix(d.K * d.Na, rng), random_matrix(d.S * d.Nd, rng),
                         random_matrix(d.M * d.Nv, rng)};
    const auto Yf = random_matrix(d.M * d.K * d.S, rng);
    const std::vector<cdouble> Y(Yf.begin(), Yf.end());
    const auto ref = naive_map(Y, D, d);
    gr::isac::angle_delay_doppler_mapper mapper(D.pa.data(), D.pd.data(), D.pv.data(), d);
    std::vector<cfloat> M(ref.size(), cfloat(7.0f, 7.0f)); // garbage: must be overwritten
    std::vector<float> L(ref.size(), 7.0f);
    mapper.map_complex(Yf.data(), M.data());
    mapper.map_power(Yf.data(), L.data());
    const double scale = std::sqrt(double(std::max<int64_t>(d.M * d.K * d.S, 1)));
    double err = 0.0, perr = 0.0;
    for (size_t c = 0; c < ref.size(); ++c) {
        err = std::max(err, std::abs(cdouble(M[c]) - ref[c]) / scale);
        perr = std::max(perr, std::abs(double(L[c]) - std::norm(ref[c])) / (scale * scale));
    }
    CHECK(err < 1e-5, "map M=%ld K=%ld S=%ld Na=%ld Nd=%ld Nv=%ld: scaled error %g", (long)d.M, (long)d.K, (long)d.S,
          (long)d.Na, (long)d.Nd, (long)d.Nv, err);
    CHECK(perr < 1e-4, "power map M=%ld Nv=%ld: scaled error %g", (long)d.M, (long)d.Nv, perr);
    // one slice after contract(): column l of the map
    if (d.Nv > 0) {
        const int64_t l = d.Nv - 1;
        std::vector<cfloat> slice(d.Na * d.Nd);
        mapper.contract(Yf.data());
        mapper.slice_complex(l, slice.data());
        double serr = 0.0;
        for (int64_t c = 0; c < d.Na * d.Nd; ++c)
            serr = std::max(serr, std::abs(cdouble(slice[c]) - ref[c * d.Nv + l]) / scale);
        CHECK(serr < 1e-5, "slice %ld: scaled error %g", (long)l, serr);
    }
}

struct naive_omp {
    std::vector<int64_t> ai, di, vi;
    std::vector<double> peaks;
    Eigen::VectorXcd gains; // after the last iteration
};

// Algorithm 1 literally, in double.
static naive_omp naive(const std::vector<cfloat>& Yf, const dictionaries& D, const doppler_dims& d, int T)
{
    const int64_t n = d.M * d.K * d.S;
    Eigen::VectorXcd y(n), r(n);
    for (int64_t c = 0; c < n; ++c)
        y[c] = cdouble(Yf[c]);
    r = y;
    Eigen::MatrixXcd A(n, 0);
    naive_omp out;
    for (int it = 0; it < T; ++it) {
        const std::vector<cdouble> R(r.data(), r.data() + n);
        const auto map = naive_map(R, D, d);
        int64_t best = 0;
        for (size_t c = 1; c < map.size(); ++c)
            if (std::norm(map[c]) > std::norm(map[best]))
                best = int64_t(c);
        out.peaks.push_back(std::norm(map[best]));
        const int64_t i = best / (d.Nd * d.Nv), j = (best / d.Nv) % d.Nd, l = best % d.Nv;
        out.ai.push_back(i);
        out.di.push_back(j);
        out.vi.push_back(l);
        A.conservativeResize(n, it + 1);
        for (int64_t m = 0; m < d.M; ++m)
            for (int64_t k = 0; k < d.K; ++k)
                for (int64_t s = 0; s < d.S; ++s)
                    A((m * d.K + k) * d.S + s, it) =
                        cdouble(D.pv[m * d.Nv + l]) * cdouble(D.pa[k * d.Na + i]) * cdouble(D.pd[s * d.Nd + j]);
        out.gains = (A.adjoint() * A).ldlt().solve(A.adjoint() * y);
        r = y - A * out.gains;
    }
    return out;
}

static void test_omp(const doppler_dims& d, std::mt19937& rng)
{
    const dictionaries D{random_matrix(d.K * d.Na, rng), random_matrix(d.S * d.Nd, rng),
                         random_matrix(d.M * d.Nv, rng)};
    const auto Y = random_matrix(d.M * d.K * d.S, rng);
    const int T = 3;
    const auto ref = naive(Y, D, d, T);
    gr::isac::omp_doppler_kernel kernel(D.pa.data(), D.pd.data(), D.pv.data(), d);
    std::vector<int64_t> ai(T), di(T), vi(T);
    std::vector<double> peaks(T);
    std::vector<cdouble> gains(T * T);
    kernel.run(Y.data(), T, {ai.data(), di.data(), vi.data(), peaks.data(), gains.data()});
    for (int t = 0; t < T; ++t) {
        CHECK(ai[t] == ref.ai[t] && di[t] == ref.di[t] && vi[t] == ref.vi[t],
              "omp M=%ld Nv=%ld iteration %d: cell (%ld, %ld, %ld), naive (%ld, %ld, %ld)", (long)d.M, (long)d.Nv, t,
              (long)ai[t], (long)di[t], (long)vi[t], (long)ref.ai[t], (long)ref.di[t], (long)ref.vi[t]);
        CHECK(std::abs(peaks[t] - ref.peaks[t]) <= 1e-4 * ref.peaks[0], "omp iteration %d: peak %g, naive %g", t,
              peaks[t], ref.peaks[t]);
    }
    double gerr = 0.0;
    for (int s = 0; s < T; ++s)
        gerr = std::max(gerr, std::abs(gains[(T - 1) * T + s] - ref.gains[s]) / ref.gains.cwiseAbs().maxCoeff());
    CHECK(gerr < 1e-4, "omp M=%ld Nv=%ld: gain error %g", (long)d.M, (long)d.Nv, gerr);
}

// One symbol and the one speed d = [1]: the 2-D OMP, cell for cell.
static void test_one_symbol(std::mt19937& rng)
{
    const doppler_dims d{1, 8, 16, 20, 12, 1};
    const auto pa = random_matrix(d.K * d.Na, rng), pd = random_matrix(d.S * d.Nd, rng);
    const std::vector<cfloat> pv{cfloat(1.0f)};
    const auto Y = random_matrix(d.K * d.S, rng);
    const int T = 4;
    std::vector<int64_t> ai(T), di(T), vi(T), ai2(T), di2(T);
    std::vector<double> peaks(T), peaks2(T);
    std::vector<cdouble> gains(T * T), gains2(T * T);
    gr::isac::omp_doppler_kernel(pa.data(), pd.data(), pv.data(), d)
        .run(Y.data(), T, {ai.data(), di.data(), vi.data(), peaks.data(), gains.data()});
    gr::isac::omp_kernel(pa.data(), pd.data(), d.slice())
        .run(Y.data(), T, {ai2.data(), di2.data(), peaks2.data(), gains2.data()});
    for (int t = 0; t < T; ++t)
        CHECK(ai[t] == ai2[t] && di[t] == di2[t] && vi[t] == 0 && std::abs(peaks[t] - peaks2[t]) <= 1e-6 * peaks2[0],
              "one symbol, iteration %d: (%ld, %ld, %ld) peak %g against the 2-D (%ld, %ld) peak %g", t, (long)ai[t],
              (long)di[t], (long)vi[t], peaks[t], (long)ai2[t], (long)di2[t], peaks2[t]);
}

static void test_errors()
{
    const cfloat one(1.0f);
    auto throws = [](auto f) {
        try {
            f();
        } catch (const std::invalid_argument&) {
            return true;
        }
        return false;
    };
    CHECK(throws([&] { gr::isac::angle_delay_doppler_mapper(&one, &one, &one, {-1, 1, 1, 1, 1, 1}); }),
          "negative M must throw");
    CHECK(throws([&] { gr::isac::omp_doppler_kernel(&one, &one, &one, {1, 1, 1, 1, 1, 0}); }),
          "an empty speed grid must throw");
    gr::isac::omp_doppler_kernel k(&one, &one, &one, {1, 1, 1, 1, 1, 1});
    int64_t i, j, l;
    double p;
    cdouble g;
    CHECK(throws([&] { k.run(&one, 0, {&i, &j, &l, &p, &g}); }), "iterations 0 must throw");
    gr::isac::angle_delay_doppler_mapper m(&one, &one, &one, {1, 1, 1, 1, 1, 1});
    cfloat s;
    m.contract(&one);
    CHECK(throws([&] { m.slice_complex(1, &s); }), "a slice outside the grid must throw");
}

int main()
{
    std::mt19937 rng(20240917);
    test_map({3, 4, 6, 7, 5, 4}, rng);
    test_map({1, 5, 8, 6, 4, 1}, rng);    // one symbol, one speed
    test_map({6, 3, 5, 4, 3, 1}, rng);    // several symbols, one speed
    test_map({2, 3, 1100, 3, 2, 9}, rng); // K S > the Doppler GEMM's block of 512 columns; Nv > 8 slices
    test_map({0, 3, 4, 2, 2, 3}, rng);    // no symbols: an all-zero map
    test_omp({3, 4, 6, 7, 5, 4}, rng);
    test_omp({4, 3, 5, 6, 4, 10}, rng); // more than 8 slices
    test_one_symbol(rng);
    test_errors();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("qa_angle_delay_doppler_map: all checks passed\n");
    return 0;
}
