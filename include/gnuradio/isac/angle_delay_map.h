/*
 * Angle-delay map of one sensing frame (the receiver's hot kernel).
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * All matrices are dense, row-major, complex64 (std::complex<float>):
 *   Y      K  x S   received symbols after reciprocal filtering (antennas x subcarriers)
 *   Phi_a  K  x Na  angle dictionary (one steering vector per column)
 *   Phi_d  S  x Nd  delay dictionary (one delay response per column)
 *   M      Na x Nd  M = Phi_a^H * Y * conj(Phi_d)
 * The product is evaluated as Phi_a^H * (Y * conj(Phi_d)): K*S*Nd + Na*K*Nd
 * multiply-adds instead of Na*K*S + Na*S*Nd for the paper's left-to-right order.
 */

#ifndef INCLUDED_ISAC_ANGLE_DELAY_MAP_H
#define INCLUDED_ISAC_ANGLE_DELAY_MAP_H

#include <gnuradio/isac/api.h>
#include <complex>
#include <cstdint>

namespace gr {
namespace isac {

using cfloat = std::complex<float>;

//! Sizes of one angle-delay map problem (all >= 0).
struct map_dims {
    int64_t K;  //!< antennas (rows of Y and Phi_a)
    int64_t S;  //!< subcarriers (columns of Y, rows of Phi_d)
    int64_t Na; //!< angle grid points (columns of Phi_a)
    int64_t Nd; //!< delay grid points (columns of Phi_d)
};

//! Largest entry of a map: flat row-major index and value.
struct map_peak {
    int64_t index;
    float value;
};

/*!
 * \brief Complex angle-delay map M = Phi_a^H * Y * conj(Phi_d), written to M (Na x Nd).
 * Throws std::invalid_argument on negative sizes.
 */
ISAC_API void angle_delay_map_complex(const cfloat* Y,
                                      const cfloat* Phi_a,
                                      const cfloat* Phi_d,
                                      const map_dims& dims,
                                      cfloat* M);

/*!
 * \brief Power map L = |Phi_a^H * Y * conj(Phi_d)|^2, written to L (Na x Nd float32).
 */
ISAC_API void angle_delay_map_power(const cfloat* Y,
                                    const cfloat* Phi_a,
                                    const cfloat* Phi_d,
                                    const map_dims& dims,
                                    float* L);

/*!
 * \brief First largest entry of L[0..n): like numpy.argmax, a NaN wins (the first
 * NaN is returned). Throws std::invalid_argument when n <= 0.
 */
ISAC_API map_peak map_argmax(const float* L, int64_t n);

} // namespace isac
} // namespace gr

#endif /* INCLUDED_ISAC_ANGLE_DELAY_MAP_H */
