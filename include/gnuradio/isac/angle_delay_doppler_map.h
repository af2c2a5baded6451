/*
 * Angle-delay-Doppler map of one sensing frame of M OFDM symbols.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * All matrices are dense, row-major, complex64 (std::complex<float>):
 *   Y      M  x K x S     received symbols after reciprocal filtering (symbols x antennas x subcarriers)
 *   Phi_a  K  x Na        angle dictionary (one steering vector per column)
 *   Phi_d  S  x Nd        delay dictionary (one delay response per column)
 *   Phi_v  M  x Nv        Doppler dictionary (one slow-time vector d(v) per column)
 *   M      Na x Nd x Nv   M[i][j][l] = sum_{m,k,s} conj(Phi_a[k][i]) Y[m][k][s] conj(Phi_d[s][j]) conj(Phi_v[m][l])
 * (python/isac/model/angle_delay.py, angle_delay_doppler_map_complex). The map is computed
 * mode by mode, never as a (M K S) x (Na Nd Nv) matrix: the Doppler mode first,
 *   Z_l = sum_m conj(Phi_v[m][l]) Y[m]     (K x S, one per speed l: a GEMM Phi_v^H Y),
 * then the angle-delay map (angle_delay_mapper: chirp-z delay side, symmetric-array angle side)
 * of each speed slice, M[:, :, l] = Phi_a^H Z_l conj(Phi_d). Cost: M Nv K S complex MACs for
 * the Doppler mode plus Nv angle-delay maps.
 */

#ifndef INCLUDED_ISAC_ANGLE_DELAY_DOPPLER_MAP_H
#define INCLUDED_ISAC_ANGLE_DELAY_DOPPLER_MAP_H

#include <gnuradio/isac/angle_delay_map.h>
#include <gnuradio/isac/api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace gr {
namespace isac {

//! Sizes of one angle-delay-Doppler map problem (all >= 0).
struct doppler_dims {
    int64_t M;  //!< OFDM symbols per frame (rows of Phi_v)
    int64_t K;  //!< antennas (rows of Phi_a)
    int64_t S;  //!< subcarriers (rows of Phi_d)
    int64_t Na; //!< angle grid points (columns of Phi_a)
    int64_t Nd; //!< delay grid points (columns of Phi_d)
    int64_t Nv; //!< speed grid points (columns of Phi_v)

    map_dims slice() const { return {K, S, Na, Nd}; }
};

/*!
 * \brief Angle-delay-Doppler maps of many frames with one set of dictionaries.
 *
 * The dictionaries are copied and prepared once (the 2-D angle_delay_mapper of the speed
 * slices with its chirp-z / symmetric-array paths, Phi_v^H as a real matrix). An instance
 * keeps work buffers (the Doppler-contracted frame Z, Nv x K x S): use one instance per
 * thread.
 */
class ISAC_API angle_delay_doppler_mapper {
public:
    //! Phi_a (K x Na), Phi_d (S x Nd), Phi_v (M x Nv), row-major complex64; all are copied.
    //! allow_chirp_z / allow_symmetric as for angle_delay_mapper. Throws
    //! std::invalid_argument on negative sizes.
    angle_delay_doppler_mapper(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v, const doppler_dims& dims,
                               bool allow_chirp_z = true, bool allow_symmetric = true);
    ~angle_delay_doppler_mapper();
    angle_delay_doppler_mapper(angle_delay_doppler_mapper&&) noexcept;
    angle_delay_doppler_mapper& operator=(angle_delay_doppler_mapper&&) noexcept;

    const doppler_dims& dims() const;
    bool uses_chirp_z() const;
    bool uses_symmetric_array() const;

    //! Step 1 of a map: the Doppler mode of one frame Y (M x K x S), Z_l = sum_m
    //! conj(Phi_v[m][l]) Y[m], kept in the instance for slice_complex().
    void contract(const cfloat* Y);
    //! Step 2: the speed slice l (0 <= l < Nv) of the map of the last contracted frame,
    //! M_l = Phi_a^H Z_l conj(Phi_d), into M_l (Na x Nd).
    void slice_complex(int64_t l, cfloat* M_l);

    //! Complex map of one frame Y (M x K x S) into M (Na x Nd x Nv, the numpy layout).
    void map_complex(const cfloat* Y, cfloat* M);
    //! Power map |M|^2 of one frame into L (Na x Nd x Nv float32).
    void map_power(const cfloat* Y, float* L);

    //! Bytes of the per-frame work buffers of contract() (Z and the real GEMM's block; the
    //! slices' 2-D mapper adds its own, and map_complex / map_power a scratch of up to 8
    //! slices).
    size_t workspace_bytes() const;

private:
    struct impl;
    std::unique_ptr<impl> d_impl;
};

} // namespace isac
} // namespace gr

#endif /* INCLUDED_ISAC_ANGLE_DELAY_DOPPLER_MAP_H */
