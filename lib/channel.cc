/*
 * Sensing echo (1) and downlink projection (4) of streamed frames: see channel.h.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Per frame with T targets: Z = A^T X (T x S, A = [a_1 .. a_T]) then
 * Y = (A diag(psi) / sqrt(S)) (Z (.) R) with R = [rho_1 .. rho_T]^T: 2 T K S complex
 * multiply-adds in double on split real/imaginary planes (vectorised over subcarriers),
 * the noise added in double, one rounding to complex64 at the end (as the model, which
 * computes in complex128 and casts once).
 */

#include <gnuradio/isac/channel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gr {
namespace isac {

namespace {
constexpr double two_pi = 6.283185307179586; // 2 pi, as 2.0 * numpy.pi
}

echo_synthesizer::echo_synthesizer(const double* positions_m, int64_t K, int64_t S, double wavelength_m,
                                   double spacing_hz)
    : d_K(K), d_S(S), d_wavelength(wavelength_m), d_spacing(spacing_hz)
{
    if (K < 1 || S < 1)
        throw std::invalid_argument("echo_synthesizer: K and S must be >= 1, got K = " + std::to_string(K) +
                                    ", S = " + std::to_string(S));
    if (!(wavelength_m > 0.0) || !std::isfinite(wavelength_m))
        throw std::invalid_argument("echo_synthesizer: wavelength_m must be finite and > 0");
    if (!std::isfinite(spacing_hz))
        throw std::invalid_argument("echo_synthesizer: spacing_hz must be finite");
    d_positions.assign(positions_m, positions_m + K);
    d_xr.resize(S);
    d_xi.resize(S);
    d_yr.resize(S);
    d_yi.resize(S);
    d_a.resize(K);
    d_rho.resize(S);
}

void echo_synthesizer::steering(double theta_rad, cfloat* a) const
{
    // model/array.py: phase = (-2 pi / lambda) p_k sin(theta); exp(j phase) -> complex64
    const double c = -two_pi / d_wavelength;
    const double st = std::sin(theta_rad);
    for (int64_t k = 0; k < d_K; ++k) {
        const double phase = c * d_positions[k] * st;
        a[k] = cfloat(float(std::cos(phase)), float(std::sin(phase)));
    }
}

void echo_synthesizer::delay_response(double range_m, cfloat* rho) const
{
    // model/ofdm.py: exp(-2j pi spacing tau s) with tau = 2 R / c -> complex64
    const double tau = 2.0 * range_m / speed_of_light;
    const double c = (-two_pi * d_spacing) * tau;
    for (int64_t s = 0; s < d_S; ++s) {
        const double phase = c * double(s);
        rho[s] = cfloat(float(std::cos(phase)), float(std::sin(phase)));
    }
}

void echo_synthesizer::sensing(const cfloat* X, int64_t T, const double* angles_rad, const double* ranges_m,
                               const cdouble* gains, const double* n_re, const double* n_im, double noise_scale,
                               cfloat* Y)
{
    const int64_t K = d_K, S = d_S;
    if (T < 0)
        throw std::invalid_argument("echo_synthesizer::sensing: T must be >= 0");
    if (int64_t(d_zr.size()) < T * S) {
        d_zr.resize(T * S);
        d_zi.resize(T * S);
    }
    if (int64_t(d_A.size()) < T * K)
        d_A.resize(T * K);
    double* zr = d_zr.data();
    double* zi = d_zi.data();
    cfloat* A = d_A.data(); // a_t for every target, T x K
    for (int64_t t = 0; t < T; ++t)
        steering(angles_rad[t], A + t * K);
    // Z = A^T X: row k of X is read once (as split double planes) for all targets
    for (int64_t i = 0; i < T * S; ++i)
        zr[i] = zi[i] = 0.0;
    double* xr = d_xr.data();
    double* xi = d_xi.data();
    for (int64_t k = 0; k < K && T > 0; ++k) {
        const cfloat* row = X + k * S;
        for (int64_t s = 0; s < S; ++s) {
            xr[s] = row[s].real();
            xi[s] = row[s].imag();
        }
        for (int64_t t = 0; t < T; ++t) {
            const double ar = A[t * K + k].real(), ai = A[t * K + k].imag();
            double* __restrict zrt = zr + t * S;
            double* __restrict zit = zi + t * S;
            for (int64_t s = 0; s < S; ++s) {
                zrt[s] += ar * xr[s] - ai * xi[s];
                zit[s] += ar * xi[s] + ai * xr[s];
            }
        }
    }
    // W = Z (.) rho_t
    for (int64_t t = 0; t < T; ++t) {
        delay_response(ranges_m[t], d_rho.data());
        double* zrt = zr + t * S;
        double* zit = zi + t * S;
        for (int64_t s = 0; s < S; ++s) {
            const double rr = d_rho[s].real(), ri = d_rho[s].imag();
            const double a = zrt[s], b = zit[s];
            zrt[s] = a * rr - b * ri;
            zit[s] = a * ri + b * rr;
        }
    }
    // Y = (A diag(psi) / sqrt(S)) W + noise
    const double sqrt_s = std::sqrt(double(S));
    double* yr = d_yr.data();
    double* yi = d_yi.data();
    for (int64_t k = 0; k < K; ++k) {
        for (int64_t s = 0; s < S; ++s)
            yr[s] = yi[s] = 0.0;
        for (int64_t t = 0; t < T; ++t) {
            const cdouble g = gains[t] / sqrt_s; // psi_t / sqrt(S), as the model divides
            const double ar = A[t * K + k].real(), ai = A[t * K + k].imag();
            const double cr = ar * g.real() - ai * g.imag(), ci = ar * g.imag() + ai * g.real();
            const double* __restrict wr = zr + t * S;
            const double* __restrict wi = zi + t * S;
            for (int64_t s = 0; s < S; ++s) {
                yr[s] += cr * wr[s] - ci * wi[s];
                yi[s] += cr * wi[s] + ci * wr[s];
            }
        }
        cfloat* out = Y + k * S;
        if (n_re != nullptr) {
            const double* nr = n_re + k * S;
            const double* ni = n_im + k * S;
            for (int64_t s = 0; s < S; ++s)
                out[s] = cfloat(float(yr[s] + noise_scale * nr[s]), float(yi[s] + noise_scale * ni[s]));
        } else {
            for (int64_t s = 0; s < S; ++s)
                out[s] = cfloat(float(yr[s]), float(yi[s]));
        }
    }
}

void echo_synthesizer::project(const cfloat* X, double phi_rad, cdouble* out)
{
    const int64_t K = d_K, S = d_S;
    steering(phi_rad, d_a.data());
    double* yr = d_yr.data();
    double* yi = d_yi.data();
    for (int64_t s = 0; s < S; ++s)
        yr[s] = yi[s] = 0.0;
    for (int64_t k = 0; k < K; ++k) {
        const double ar = d_a[k].real(), ai = d_a[k].imag();
        const cfloat* row = X + k * S;
        for (int64_t s = 0; s < S; ++s) {
            const double xr = row[s].real(), xi = row[s].imag();
            yr[s] += ar * xr - ai * xi;
            yi[s] += ar * xi + ai * xr;
        }
    }
    for (int64_t s = 0; s < S; ++s)
        out[s] = cdouble(yr[s], yi[s]);
}

} // namespace isac
} // namespace gr
