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

#include <complex>
#include <cstdint>
#include <gnuradio/isac/api.h>
#include <memory>

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
 * \brief Angle-delay maps of many frames with one pair of dictionaries.
 *
 * The dictionaries are copied and prepared once (conjugated; when Phi_d is a partial
 * DFT on a uniform delay grid, a chirp-z plan: see uses_chirp_z(); when Phi_a is
 * symmetric about the array centre, a half-size real form: uses_symmetric_array()), so a
 * receiver builds one mapper and calls map_complex() per frame. An instance keeps
 * work buffers: use one instance per thread.
 */
class ISAC_API angle_delay_mapper {
public:
    //! Phi_a (K x Na) and Phi_d (S x Nd), row-major complex64; both are copied.
    //! allow_chirp_z / allow_symmetric = false force the general GEMM paths of the delay
    //! / angle side (for tests and benchmarks). Throws std::invalid_argument on negative
    //! sizes.
    angle_delay_mapper(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims, bool allow_chirp_z = true,
                       bool allow_symmetric = true);
    ~angle_delay_mapper();
    angle_delay_mapper(angle_delay_mapper&&) noexcept;
    angle_delay_mapper& operator=(angle_delay_mapper&&) noexcept;

    const map_dims& dims() const;
    //! True when Y conj(Phi_d) is evaluated as a chirp-z transform (FFTW) instead of a
    //! GEMM: Phi_d[s][j] = exp(-j 2 pi s (f0 + j g)) within float tolerance.
    bool uses_chirp_z() const;
    //! True when Phi_a^H T is one real GEMM of half the work: Phi_a is symmetric about the
    //! array centre, Phi_a[K-1-k][i] = conj(Phi_a[k][i]) within float tolerance (element
    //! positions p_{K-1-k} = -p_k, e.g. the nominal array).
    bool uses_symmetric_array() const;
    //! Complex map of one frame Y (K x S) into M (Na x Nd).
    void map_complex(const cfloat* Y, cfloat* M);
    //! Power map |M|^2 of one frame Y (K x S) into L (Na x Nd).
    void map_power(const cfloat* Y, float* L);

private:
    struct impl;
    std::unique_ptr<impl> d_impl;
};

/*!
 * \brief Complex angle-delay map M = Phi_a^H * Y * conj(Phi_d), written to M (Na x Nd).
 * Throws std::invalid_argument on negative sizes.
 */
ISAC_API void angle_delay_map_complex(const cfloat* Y, const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims,
                                      cfloat* M);

/*!
 * \brief Power map L = |Phi_a^H * Y * conj(Phi_d)|^2, written to L (Na x Nd float32).
 */
ISAC_API void angle_delay_map_power(const cfloat* Y, const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims,
                                    float* L);

/*!
 * \brief First largest entry of L[0..n): like numpy.argmax, a NaN wins (the first
 * NaN is returned). Throws std::invalid_argument when n <= 0.
 */
ISAC_API map_peak map_argmax(const float* L, int64_t n);

} // namespace isac
} // namespace gr

#endif /* INCLUDED_ISAC_ANGLE_DELAY_MAP_H */
