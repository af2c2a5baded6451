/*
 * The streaming channel's signal kernels: the transmitted array frame X = f x^T, the sensing
 * echo (1) of one frame from it, the projection a(phi)^T X of the MISO downlink (4), and the
 * reciprocal filter (3).
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * They follow python/isac/model/channels_stream.py and model/reciprocal.py:
 *   - the true array is given by its element positions p_k (m) at wavelength lambda (m):
 *     a_k(theta) = exp(-j 2 pi p_k sin(theta) / lambda), rounded to complex64 as the model's
 *     steering matrix is (model/array.py);
 *   - rho_s(tau) = exp(-j 2 pi s Delta_f tau), tau = 2 R / c, rounded to complex64 (model/ofdm.py);
 *   - Y_r = 1/sqrt(S) sum_t psi_t a_t (a_t^T X) (.) rho_t^T + W, evaluated in double and rounded
 *     to complex64 once at the end, W = noise_scale (n_re + j n_im) from given standard normal
 *     draws (the caller draws them, so that the random stream stays the model's).
 * Matrices are row-major complex64 (antenna k, subcarrier s at k*S + s) as in angle_delay_map.h.
 */

#ifndef INCLUDED_ISAC_CHANNEL_H
#define INCLUDED_ISAC_CHANNEL_H

#include <gnuradio/isac/api.h>

#include <complex>
#include <cstdint>
#include <vector>

namespace gr {
namespace isac {

using cfloat = std::complex<float>;
using cdouble = std::complex<double>;

//! Speed of light (m/s), as model/grids.py.
constexpr double speed_of_light = 299792458.0;

/*!
 * \brief Sensing echo (1) and comm projection of frames through one array.
 *
 * Keeps the element positions and work buffers: use one instance per thread.
 */
class ISAC_API echo_synthesizer {
public:
    //! K element positions (m) at wavelength_m (> 0), S subcarriers spaced spacing_hz.
    //! Throws std::invalid_argument on K < 1, S < 1 or a wavelength <= 0.
    echo_synthesizer(const double* positions_m, int64_t K, int64_t S, double wavelength_m, double spacing_hz);

    int64_t antennas() const { return d_K; }
    int64_t subcarriers() const { return d_S; }

    //! a(theta) (K entries), rounded to complex64.
    void steering(double theta_rad, cfloat* a) const;
    //! rho(2 R / c) (S entries), rounded to complex64.
    void delay_response(double range_m, cfloat* rho) const;

    /*!
     * Y (K x S, complex64) = 1/sqrt(S) sum_{t<T} gains[t] a(angles[t]) (a(angles[t])^T X) (.)
     * rho(ranges[t]) + noise_scale (n_re + j n_im), with X (K x S, complex64); n_re and n_im
     * hold K*S standard normal draws each (nullptr: noiseless).
     */
    void sensing(const cfloat* X, int64_t T, const double* angles_rad, const double* ranges_m, const cdouble* gains,
                 const double* n_re, const double* n_im, double noise_scale, cfloat* Y);

    //! out (S) = a(phi)^T X, in double: the array response of the downlink (4) before the taps.
    void project(const cfloat* X, double phi_rad, cdouble* out);

private:
    int64_t d_K, d_S;
    double d_wavelength, d_spacing;
    std::vector<double> d_positions;
    // work buffers (split real / imaginary planes, T x S and S)
    std::vector<double> d_xr, d_xi, d_zr, d_zi, d_yr, d_yi;
    std::vector<cfloat> d_a, d_rho, d_A;
};

/*!
 * \brief Reciprocal filter (3) of one frame: Y~[k][s] = Y[k][s] / x[s] in complex64 with
 * numpy's complex64 division (Smith's algorithm in single precision), so the result equals
 * model.reciprocal.reciprocal_filter bit for bit. Symbols with |x| < min_magnitude or a
 * non-finite part null their subcarrier column (invalid="zero"). Returns the number of
 * nulled subcarriers.
 */
ISAC_API int64_t reciprocal_filter(const cfloat* Y, const cfloat* x, int64_t K, int64_t S, double min_magnitude,
                                   cfloat* out);

/*!
 * \brief The transmitted array frame X = f x^T (K x S, row-major complex64) of the precoder f (K)
 * and the symbols x (S), with numpy's complex64 product, so it equals
 * model.channels_stream.array_frame bit for bit.
 */
ISAC_API void array_frame(const cfloat* f, const cfloat* x, int64_t K, int64_t S, cfloat* out);

} // namespace isac
} // namespace gr

#endif /* INCLUDED_ISAC_CHANNEL_H */
