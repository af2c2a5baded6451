/*
 * OMP (Algorithm 1, Sec. III-B) and the inference step of differentiable OMP
 * (Sec. IV-B) on one frame: the receiver's detection kernels.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Both kernels follow python/isac/model/omp.py (and model/domp.py):
 *   - the complex angle-delay map M0 = Phi_a^H Y conj(Phi_d) is computed once
 *     (angle_delay_mapper);
 *   - the map of the residual is updated, not recomputed: M(Y - sum_t alpha_t a_t rho_t^T)
 *     = M0 - sum_t alpha_t (Phi_a^H a_t)(Phi_d^H rho_t)^T (the map is linear in Y);
 *   - the joint LS gains (13) solve the t x t Gram system G_st = (a_s^H a_t)(rho_s^H rho_t),
 *     c_s = a_s^H Y conj(rho_s), with a Hermitian pseudo-inverse (eigenvalues below
 *     1e-6 of the largest magnitude dropped, as numpy.linalg.pinv(rcond=1e-6,
 *     hermitian=True)), so a repeated atom stays well defined;
 *   - argmax ties go to the first row-major index (numpy.argmax), a NaN wins.
 * Matrices are row-major complex64 as in angle_delay_map.h; gains are complex128.
 * A kernel keeps work buffers: use one instance per thread.
 */

#ifndef INCLUDED_ISAC_OMP_H
#define INCLUDED_ISAC_OMP_H

#include <gnuradio/isac/angle_delay_doppler_map.h>
#include <gnuradio/isac/angle_delay_map.h>
#include <gnuradio/isac/api.h>

#include <complex>
#include <cstdint>
#include <memory>

namespace gr {
namespace isac {

using cdouble = std::complex<double>;

//! Outputs of `iterations` (T) iterations on one frame; every pointer holds T entries
//! except gains (T x T, row-major): row i holds the joint LS gains after iteration i
//! in columns 0..i, zeros after.
struct omp_output {
    int64_t* angle_index; //!< selected (argmax) row of the map per iteration
    int64_t* delay_index; //!< selected (argmax) column per iteration
    double* peaks;        //!< residual map maximum at each iteration, before selection
    cdouble* gains;       //!< T x T joint LS gains
};

/*!
 * \brief Baseline OMP (Algorithm 1) on dictionary atoms.
 */
class ISAC_API omp_kernel {
public:
    //! Phi_a (K x Na), Phi_d (S x Nd) are copied. Throws std::invalid_argument on
    //! negative sizes or an empty grid (Na or Nd zero).
    omp_kernel(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims);
    ~omp_kernel();
    omp_kernel(omp_kernel&&) noexcept;
    omp_kernel& operator=(omp_kernel&&) noexcept;

    const map_dims& dims() const;
    //! T = iterations >= 1 iterations on Y (K x S). Throws std::invalid_argument
    //! when iterations < 1. Y is not checked for NaN/Inf (the bindings do).
    void run(const cfloat* Y, int iterations, const omp_output& out);

private:
    struct impl;
    std::unique_ptr<impl> d_impl;
};

//! Outputs of `iterations` (T) iterations of omp_doppler_kernel on one frame: as omp_output,
//! with the speed grid index of each iteration's atom.
struct omp_doppler_output {
    int64_t* angle_index;   //!< selected angle (map axis 0) per iteration
    int64_t* delay_index;   //!< selected delay (map axis 1) per iteration
    int64_t* doppler_index; //!< selected speed (map axis 2) per iteration
    double* peaks;          //!< residual map maximum at each iteration, before selection
    cdouble* gains;         //!< T x T joint LS gains
};

/*!
 * \brief OMP (Algorithm 1) over angle x delay x speed on frames of M OFDM symbols, the C++
 * twin of python/isac/model/omp.py omp_doppler.
 *
 * The map M0 (Na x Nd x Nv) of the frame comes from angle_delay_doppler_mapper (Doppler mode,
 * then the angle-delay map of each speed slice) and is kept as split real/imaginary planes,
 * slice by slice; each iteration is one fused pass over its cells (residual M0 - sum_t
 * alpha_t (Phi_a^H a_t) x (Phi_d^H rho_t) x (Phi_v^H d_t), power, argmax) with the argmax of
 * numpy on the (Na, Nd, Nv) layout: the first flat index (i Nd + j) Nv + l on ties, the
 * first NaN. The joint LS gains solve G_su = (a_s^H a_u)(rho_s^H rho_u)(d_s^H d_u),
 * c_s = M0[i_s, j_s, l_s], with the pseudo-inverse of omp_kernel.
 */
class ISAC_API omp_doppler_kernel {
public:
    //! Phi_a (K x Na), Phi_d (S x Nd), Phi_v (M x Nv) are copied. Throws
    //! std::invalid_argument on negative sizes or an empty grid (Na, Nd or Nv zero).
    omp_doppler_kernel(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v, const doppler_dims& dims);
    ~omp_doppler_kernel();
    omp_doppler_kernel(omp_doppler_kernel&&) noexcept;
    omp_doppler_kernel& operator=(omp_doppler_kernel&&) noexcept;

    const doppler_dims& dims() const;
    //! T = iterations (1..64) on Y (M x K x S). Y is not checked for NaN/Inf (the bindings do).
    void run(const cfloat* Y, int iterations, const omp_doppler_output& out);
    //! Bytes of the per-frame work buffers: the map planes (8 bytes per cell), the mapper's
    //! (angle_delay_doppler_mapper::workspace_bytes) and the projections of 64 atoms.
    size_t workspace_bytes() const;

private:
    struct impl;
    std::unique_ptr<impl> d_impl;
};

//! Grids and steering model of the differentiable-OMP inference step.
struct domp_params {
    const double* angles_rad;  //!< Na grid angles of Phi_a's columns (rad)
    const double* delays_s;    //!< Nd grid delays of Phi_d's columns (s)
    const double* positions_m; //!< K element positions p_k (m): a_k = exp(-j2pi p_k sin(theta)/lambda)
    double wavelength_m;       //!< lambda (m)
    double spacing_hz;         //!< subcarrier spacing: rho_s = exp(-j2pi s spacing tau)
    int64_t half_width_angle;  //!< window half-width in map rows (>= 0)
    int64_t half_width_delay;  //!< window half-width in map columns (>= 0)
    double temperature;        //!< softmax temperature (> 0) on the map normalised to its maximum
};

//! Outputs of the dOMP inference step on one frame (T entries each; gains T x T as in
//! omp_output).
struct domp_output {
    double* angles_rad;   //!< soft angle estimate theta^ per iteration
    double* delays_s;     //!< soft delay estimate tau^ per iteration
    double* peaks;        //!< residual map maximum at each iteration
    cdouble* gains;       //!< T x T joint LS gains of the recomputed atoms
    int64_t* angle_index; //!< argmax row per iteration
    int64_t* delay_index; //!< argmax column per iteration
};

/*!
 * \brief Forward (inference) step of differentiable OMP, Sec. IV-B (model/domp.py).
 *
 * Per iteration: argmax (i0, j0) of the residual map L (optionally within a range of
 * rows, the a-priori sector); the window of rows [i0 - wa, i0 + wa] and columns
 * [j0 - wd, j0 + wd] clipped to the grid; softmax of (L / L[i0, j0]) / temperature over
 * the window cells (uniform weights when the map is all zero); theta^ and tau^ the weighted sums of the grid angles and
 * delays; atoms a(theta^), rho(tau^) recomputed from the steering model; joint LS gains over the recomputed atoms;
 * residual map update with Phi_a^H a(theta^) and Phi_d^H rho(tau^).
 */
class ISAC_API domp_kernel {
public:
    //! Copies the dictionaries and the parameter arrays. Throws std::invalid_argument
    //! on negative sizes, an empty grid, negative half-widths or a temperature <= 0.
    domp_kernel(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims, const domp_params& params);
    ~domp_kernel();
    domp_kernel(domp_kernel&&) noexcept;
    domp_kernel& operator=(domp_kernel&&) noexcept;

    const map_dims& dims() const;
    //! T = iterations (1..64) on Y (K x S). The argmax (step 1) is restricted to map rows
    //! [first_row, last_row] (the a-priori angular sector; last_row = -1: the last row);
    //! windows may extend beyond them. Throws std::invalid_argument on a bad row range.
    void run(const cfloat* Y, int iterations, const domp_output& out, int64_t first_row = 0, int64_t last_row = -1);

private:
    struct impl;
    std::unique_ptr<impl> d_impl;
};

} // namespace isac
} // namespace gr

#endif /* INCLUDED_ISAC_OMP_H */
