/*
 * QA of the OMP and dOMP kernels against naive loops in double precision that follow
 * Algorithm 1 literally: the full map of the explicit residual Y - sum alpha_t a_t rho_t^T
 * at every iteration, joint LS from the normal equations of the vectorised atoms.
 * Plain executable: prints each failure and exits non-zero.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "qa_check.h"

#include <gnuradio/isac/omp.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

using gr::isac::cdouble;
using gr::isac::cfloat;
using gr::isac::map_dims;

using CMat = Eigen::MatrixXcd;
using CVec = Eigen::VectorXcd;

struct problem {
    map_dims d;
    std::vector<double> angles, delays, positions;
    double lambda = 0.005, df = 120e3;
    std::vector<cfloat> pa, pd; // row-major K x Na, S x Nd
};

static cdouble steer(double p, double theta, double lambda)
{
    return std::polar(1.0, (-2.0 * M_PI / lambda) * p * std::sin(theta));
}
static cdouble delay_resp(int64_t s, double tau, double df)
{
    return std::polar(1.0, -2.0 * M_PI * df * tau * double(s));
}

static problem make_problem(int64_t K, int64_t S, int64_t Na, int64_t Nd)
{
    problem p;
    p.d = {K, S, Na, Nd};
    for (int64_t i = 0; i < Na; ++i)
        p.angles.push_back(-0.7 + 0.4 * double(i) / double(Na - 1));
    for (int64_t j = 0; j < Nd; ++j)
        p.delays.push_back(2.0 * (10.0 + 180.0 * double(j) / double(Nd - 1)) / 299792458.0);
    for (int64_t k = 0; k < K; ++k)
        p.positions.push_back((double(k) - 0.5 * double(K - 1)) * p.lambda / 2);
    p.pa.resize(K * Na);
    p.pd.resize(S * Nd);
    for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < Na; ++i)
            p.pa[k * Na + i] = cfloat(steer(p.positions[k], p.angles[i], p.lambda));
    for (int64_t s = 0; s < S; ++s)
        for (int64_t j = 0; j < Nd; ++j)
            p.pd[s * Nd + j] = cfloat(delay_resp(s, p.delays[j], p.df));
    return p;
}

// Y = sum alpha a(theta_i) rho(tau_j)^T + noise
static std::vector<cfloat> echo(const problem& p, const std::vector<std::pair<int64_t, int64_t>>& cells,
                                const std::vector<cdouble>& alphas, double noise, std::mt19937& rng)
{
    std::normal_distribution<double> n(0.0, noise);
    std::vector<cfloat> Y(p.d.K * p.d.S);
    for (int64_t k = 0; k < p.d.K; ++k)
        for (int64_t s = 0; s < p.d.S; ++s) {
            cdouble v(n(rng), n(rng));
            for (size_t t = 0; t < cells.size(); ++t)
                v += alphas[t] * cdouble(p.pa[k * p.d.Na + cells[t].first]) *
                     cdouble(p.pd[s * p.d.Nd + cells[t].second]);
            Y[k * p.d.S + s] = cfloat(v);
        }
    return Y;
}

static CMat to_mat(const std::vector<cfloat>& v, int64_t rows, int64_t cols)
{
    CMat m(rows, cols);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            m(r, c) = cdouble(v[r * cols + c]);
    return m;
}

struct naive_result {
    std::vector<int64_t> ai, di;
    std::vector<double> peaks, theta, tau;
    CVec gains;
};

// Literal Algorithm 1 (domp = false) or the dOMP inference step (domp = true).
static naive_result naive(const problem& p, const std::vector<cfloat>& Yf, int T, bool domp, int64_t wa = 0,
                          int64_t wd = 0, double temp = 1.0)
{
    const map_dims& d = p.d;
    const CMat Y = to_mat(Yf, d.K, d.S), Pa = to_mat(p.pa, d.K, d.Na), Pd = to_mat(p.pd, d.S, d.Nd);
    CMat res = Y;
    std::vector<CVec> atoms; // vec(a rho^T), row-major
    naive_result r;
    for (int it = 0; it < T; ++it) {
        CMat L(d.Na, d.Nd);
        double best = -1.0;
        int64_t bi = 0, bj = 0;
        for (int64_t i = 0; i < d.Na; ++i)
            for (int64_t j = 0; j < d.Nd; ++j) {
                cdouble acc = 0.0;
                for (int64_t k = 0; k < d.K; ++k)
                    for (int64_t s = 0; s < d.S; ++s)
                        acc += std::conj(Pa(k, i)) * res(k, s) * std::conj(Pd(s, j));
                L(i, j) = std::norm(acc);
                if (std::norm(acc) > best) {
                    best = std::norm(acc);
                    bi = i;
                    bj = j;
                }
            }
        r.ai.push_back(bi);
        r.di.push_back(bj);
        r.peaks.push_back(best);
        CVec a(d.K), rho(d.S);
        if (!domp) {
            a = Pa.col(bi);
            rho = Pd.col(bj);
        } else {
            double z = 0.0, th = 0.0, ta = 0.0;
            for (int64_t i = std::max<int64_t>(0, bi - wa); i <= std::min(d.Na - 1, bi + wa); ++i)
                for (int64_t j = std::max<int64_t>(0, bj - wd); j <= std::min(d.Nd - 1, bj + wd); ++j) {
                    const double w = std::exp((L(i, j).real() / best - 1.0) / temp);
                    z += w;
                    th += w * p.angles[i];
                    ta += w * p.delays[j];
                }
            r.theta.push_back(th / z);
            r.tau.push_back(ta / z);
            for (int64_t k = 0; k < d.K; ++k)
                a[k] = steer(p.positions[k], th / z, p.lambda);
            for (int64_t s = 0; s < d.S; ++s)
                rho[s] = delay_resp(s, ta / z, p.df);
        }
        CVec atom(d.K * d.S);
        for (int64_t k = 0; k < d.K; ++k)
            for (int64_t s = 0; s < d.S; ++s)
                atom[k * d.S + s] = a[k] * rho[s];
        atoms.push_back(atom);
        CMat U(d.K * d.S, atoms.size());
        for (size_t t = 0; t < atoms.size(); ++t)
            U.col(t) = atoms[t];
        CVec yv(d.K * d.S);
        for (int64_t k = 0; k < d.K; ++k)
            for (int64_t s = 0; s < d.S; ++s)
                yv[k * d.S + s] = Y(k, s);
        r.gains = (U.adjoint() * U).ldlt().solve(U.adjoint() * yv);
        const CVec rv = yv - U * r.gains;
        for (int64_t k = 0; k < d.K; ++k)
            for (int64_t s = 0; s < d.S; ++s)
                res(k, s) = rv[k * d.S + s];
    }
    return r;
}

static void test_omp(const problem& p, const std::vector<cfloat>& Y, int T, const char* what)
{
    gr::isac::omp_kernel kern(p.pa.data(), p.pd.data(), p.d);
    std::vector<int64_t> ai(T), di(T);
    std::vector<double> peaks(T);
    std::vector<cdouble> gains(T * T, cdouble(9.0));
    kern.run(Y.data(), T, {ai.data(), di.data(), peaks.data(), gains.data()});
    const naive_result r = naive(p, Y, T, false);
    for (int t = 0; t < T; ++t) {
        CHECK(ai[t] == r.ai[t] && di[t] == r.di[t], "%s: iteration %d picks (%ld, %ld), naive (%ld, %ld)", what, t,
              (long)ai[t], (long)di[t], (long)r.ai[t], (long)r.di[t]);
        CHECK(std::abs(peaks[t] - r.peaks[t]) <= 1e-4 * r.peaks[0], "%s: peak %d %g vs %g", what, t, peaks[t],
              r.peaks[t]);
        CHECK(std::abs(gains[(T - 1) * T + t] - r.gains[t]) <= 1e-4 * std::abs(r.gains[0]) + 1e-6,
              "%s: gain %d (%g, %g) vs (%g, %g)", what, t, gains[(T - 1) * T + t].real(), gains[(T - 1) * T + t].imag(),
              r.gains[t].real(), r.gains[t].imag());
        for (int u = t + 1; u < T; ++u)
            CHECK(gains[t * T + u] == cdouble(0.0), "%s: gains above the diagonal must be 0", what);
    }
}

static void test_domp(const problem& p, const std::vector<cfloat>& Y, int T, int64_t wa, int64_t wd, double temp,
                      const char* what)
{
    gr::isac::domp_params prm{p.angles.data(), p.delays.data(), p.positions.data(), p.lambda, p.df, wa, wd, temp};
    gr::isac::domp_kernel kern(p.pa.data(), p.pd.data(), p.d, prm);
    std::vector<int64_t> ai(T), di(T);
    std::vector<double> th(T), ta(T), peaks(T);
    std::vector<cdouble> gains(T * T);
    kern.run(Y.data(), T, {th.data(), ta.data(), peaks.data(), gains.data(), ai.data(), di.data()});
    const naive_result r = naive(p, Y, T, true, wa, wd, temp);
    const double dth = p.angles[1] - p.angles[0], dta = p.delays[1] - p.delays[0];
    for (int t = 0; t < T; ++t) {
        CHECK(ai[t] == r.ai[t] && di[t] == r.di[t], "%s: iteration %d picks (%ld, %ld), naive (%ld, %ld)", what, t,
              (long)ai[t], (long)di[t], (long)r.ai[t], (long)r.di[t]);
        CHECK(std::abs(th[t] - r.theta[t]) < 1e-4 * dth, "%s: theta %d %.9g vs %.9g", what, t, th[t], r.theta[t]);
        CHECK(std::abs(ta[t] - r.tau[t]) < 1e-4 * dta, "%s: tau %d %.9g vs %.9g", what, t, ta[t], r.tau[t]);
        CHECK(std::abs(peaks[t] - r.peaks[t]) <= 1e-4 * r.peaks[0], "%s: peak %d", what, t);
        CHECK(std::abs(gains[(T - 1) * T + t] - r.gains[t]) <= 1e-4 * std::abs(r.gains[0]), "%s: gain %d", what, t);
    }
}

static void test_errors()
{
    const problem p = make_problem(4, 8, 5, 3);
    int threw = 0;
    try {
        gr::isac::omp_kernel k(p.pa.data(), p.pd.data(), {4, 8, 0, 3});
    } catch (const std::invalid_argument&) {
        ++threw;
    }
    gr::isac::omp_kernel k(p.pa.data(), p.pd.data(), p.d);
    std::vector<cfloat> Y(32);
    try {
        k.run(Y.data(), 0, {nullptr, nullptr, nullptr, nullptr});
    } catch (const std::invalid_argument&) {
        ++threw;
    }
    gr::isac::domp_params prm{p.angles.data(), p.delays.data(), p.positions.data(), p.lambda, p.df, 1, 1, 0.0};
    try {
        gr::isac::domp_kernel kd(p.pa.data(), p.pd.data(), p.d, prm);
    } catch (const std::invalid_argument&) {
        ++threw;
    }
    prm.temperature = 0.1;
    gr::isac::domp_kernel kd(p.pa.data(), p.pd.data(), p.d, prm);
    std::vector<double> th(1), ta(1), pk(1);
    std::vector<cdouble> g(1);
    std::vector<int64_t> ai(1), di(1);
    for (auto rows : {std::pair<int64_t, int64_t>{3, 2}, {0, 5}, {-1, 2}}) {
        try {
            kd.run(Y.data(), 1, {th.data(), ta.data(), pk.data(), g.data(), ai.data(), di.data()}, rows.first,
                   rows.second);
        } catch (const std::invalid_argument&) {
            ++threw;
        }
    }
    // a one-row sector: the argmax stays in it
    kd.run(Y.data(), 1, {th.data(), ta.data(), pk.data(), g.data(), ai.data(), di.data()}, 2, 2);
    CHECK(ai[0] == 2, "argmax restricted to row 2 gave row %ld", (long)ai[0]);
    CHECK(threw == 6, "6 invalid arguments must throw, %d did", threw);
}

int main()
{
    std::mt19937 rng(7);
    const problem p = make_problem(8, 16, 40, 25);
    test_omp(p, echo(p, {{5, 3}, {30, 20}, {17, 11}}, {{1.0, 0.2}, {0.0, -0.6}, {0.3, 0.3}}, 0.0, rng), 3,
             "noiseless on-grid");
    test_omp(p, echo(p, {{0, 0}, {39, 24}}, {{2.0, 0.0}, {0.0, 1.0}}, 0.05, rng), 4, "grid corners + noise");
    test_omp(p, echo(p, {}, {}, 1.0, rng), 3, "noise only");
    test_domp(p, echo(p, {{12, 8}, {28, 17}}, {{1.0, 0.0}, {0.5, 0.5}}, 0.01, rng), 3, 3, 2, 0.1, "domp two targets");
    test_domp(p, echo(p, {{0, 24}}, {{1.0, 0.0}}, 0.01, rng), 2, 4, 4, 0.5, "domp target at a corner");
    test_errors();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("qa_omp: all checks passed\n");
    return 0;
}
