/*
 * QA of the streaming channel kernels (channel.h): the sensing echo (1) and the downlink
 * projection against naive loops of the formulas in double precision, the noise term, and
 * the reciprocal filter (3) against complex division with its nulled columns.
 * Plain executable: prints each failure and exits non-zero.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "qa_check.h"

#include <gnuradio/isac/channel.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

using gr::isac::cdouble;
using gr::isac::cfloat;

static cdouble steer(double p, double theta, double lambda)
{
    return std::polar(1.0, (-2.0 * M_PI / lambda) * p * std::sin(theta));
}

static void test_sensing_echo_equals_eq1()
{
    const int64_t K = 12, S = 20, T = 3;
    const double lambda = 0.005, df = 120e3;
    std::mt19937_64 gen(7);
    std::normal_distribution<double> nd;
    std::vector<double> pos(K);
    for (int64_t k = 0; k < K; ++k)
        pos[k] = (k - (K - 1) / 2.0) * (lambda / 2 + 1e-4 * nd(gen));
    std::vector<cfloat> X(K * S);
    for (auto& v : X)
        v = cfloat(float(nd(gen)), float(nd(gen)));
    const double angles[T] = {-0.6, -0.35, 0.2}, ranges[T] = {40.0, 150.0, 80.0};
    const cdouble gains[T] = {{1.0, 0.5}, {0.0, -0.3}, {2.0, 0.0}};
    std::vector<double> nre(K * S), nim(K * S);
    for (int64_t i = 0; i < K * S; ++i) {
        nre[i] = nd(gen);
        nim[i] = nd(gen);
    }
    gr::isac::echo_synthesizer syn(pos.data(), K, S, lambda, df);
    std::vector<cfloat> Y(K * S), Yn(K * S);
    syn.sensing(X.data(), T, angles, ranges, gains, nullptr, nullptr, 0.0, Y.data());
    syn.sensing(X.data(), T, angles, ranges, gains, nre.data(), nim.data(), 0.7, Yn.data());
    double worst = 0.0, worst_noise = 0.0, scale = 0.0;
    for (int64_t k = 0; k < K; ++k)
        for (int64_t s = 0; s < S; ++s) {
            cdouble ref = 0.0;
            for (int64_t t = 0; t < T; ++t) {
                cdouble aTx = 0.0;
                for (int64_t j = 0; j < K; ++j)
                    aTx += steer(pos[j], angles[t], lambda) * cdouble(X[j * S + s]);
                const double tau = 2.0 * ranges[t] / gr::isac::speed_of_light;
                ref += gains[t] / std::sqrt(double(S)) * steer(pos[k], angles[t], lambda) * aTx *
                       std::polar(1.0, -2.0 * M_PI * df * tau * double(s));
            }
            scale = std::max(scale, std::abs(ref));
            worst = std::max(worst, std::abs(cdouble(Y[k * S + s]) - ref));
            const cdouble noisy = ref + 0.7 * cdouble(nre[k * S + s], nim[k * S + s]);
            worst_noise = std::max(worst_noise, std::abs(cdouble(Yn[k * S + s]) - noisy));
        }
    CHECK(scale > 0.1, "echo is not trivially zero (max %g)", scale);
    // steering vectors and delay responses are rounded to complex64 as in the model
    CHECK(worst < 1e-5 * scale, "echo differs from eq. (1) by %g (scale %g)", worst, scale);
    CHECK(worst_noise < 1e-5 * (scale + 3.0), "noisy echo differs by %g", worst_noise);

    // no targets: the noise alone
    syn.sensing(X.data(), 0, angles, ranges, gains, nre.data(), nim.data(), 0.5, Yn.data());
    CHECK(Yn[5] == cfloat(float(0.5 * nre[5]), float(0.5 * nim[5])), "T = 0 must give the noise only");

    // projection a(phi)^T X
    std::vector<cdouble> proj(S);
    syn.project(X.data(), 0.6, proj.data());
    double perr = 0.0;
    for (int64_t s = 0; s < S; ++s) {
        cdouble ref = 0.0;
        for (int64_t k = 0; k < K; ++k)
            ref += steer(pos[k], 0.6, lambda) * cdouble(X[k * S + s]);
        perr = std::max(perr, std::abs(proj[s] - ref));
    }
    CHECK(perr < 1e-5, "projection a(phi)^T X differs by %g", perr);

    bool threw = false;
    try {
        gr::isac::echo_synthesizer bad(pos.data(), K, S, 0.0, df);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw, "a wavelength of 0 must be refused");
}

static void test_reciprocal_filter()
{
    const int64_t K = 3, S = 8;
    std::vector<cfloat> Y(K * S), out(K * S);
    for (int64_t i = 0; i < K * S; ++i)
        Y[i] = cfloat(0.25f * float(i) - 1.0f, 0.5f - 0.125f * float(i));
    const float h = float(1.0 / std::sqrt(2.0));
    std::vector<cfloat> x = {{h, h},        {-h, h},       {0.0f, 0.0f},
                             {1e-7f, 0.0f}, {0.3f, -2.0f}, {std::numeric_limits<float>::quiet_NaN(), 1.0f},
                             {-h, -h},      {2.0f, 0.5f}};
    const int64_t nulled = gr::isac::reciprocal_filter(Y.data(), x.data(), K, S, 1e-6, out.data());
    CHECK(nulled == 3, "3 symbols are zero, tiny or NaN, got %lld nulled", (long long)nulled);
    for (int64_t k = 0; k < K; ++k)
        for (int64_t s = 0; s < S; ++s) {
            const cfloat o = out[k * S + s];
            if (s == 2 || s == 3 || s == 5) {
                CHECK(o == cfloat(0.0f, 0.0f), "nulled column %lld must be 0", (long long)s);
                continue;
            }
            const cdouble ref = cdouble(Y[k * S + s]) / cdouble(x[s]);
            CHECK(std::abs(cdouble(o) - ref) <= 1e-6 * (1.0 + std::abs(ref)), "Y/x at (%lld, %lld): %g%+gj vs %g%+gj",
                  (long long)k, (long long)s, o.real(), o.imag(), ref.real(), ref.imag());
        }
}

int main()
{
    test_sensing_echo_equals_eq1();
    test_reciprocal_filter();
    if (failures)
        std::fprintf(stderr, "qa_channel: %d failure(s)\n", failures);
    else
        std::printf("qa_channel: all checks passed\n");
    return failures ? 1 : 0;
}
