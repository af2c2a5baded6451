/*
 * Angle-delay map kernel on Eigen.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Instruction set: this file is built with -O3 and no -march flag by default, so
 * Eigen vectorises with the x86-64 baseline (SSE2) and the library runs on any
 * x86-64 machine it is copied to. A build for one machine can add AVX2/FMA or
 * AVX-512 through the CMake cache variable ISAC_ARCH_FLAGS; Eigen then picks the
 * wider packets by itself (EIGEN_VECTORIZE_AVX* follow the compiler's macros).
 * Eigen runs single-threaded here (no OpenMP): callers parallelise over frames.
 */

#include <gnuradio/isac/angle_delay_map.h>

#include <Eigen/Core>
#include <cmath>
#include <stdexcept>

namespace gr {
namespace isac {

namespace {

using RowMat = Eigen::Matrix<cfloat, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat>;
using OutMap = Eigen::Map<RowMat>;

void check_dims(const map_dims& d)
{
    if (d.K < 0 || d.S < 0 || d.Na < 0 || d.Nd < 0)
        throw std::invalid_argument("angle_delay_map: negative dimension");
}

} // namespace

void angle_delay_map_complex(const cfloat* Y,
                             const cfloat* Phi_a,
                             const cfloat* Phi_d,
                             const map_dims& d,
                             cfloat* M)
{
    check_dims(d);
    ConstMap y(Y, d.K, d.S);
    ConstMap pa(Phi_a, d.K, d.Na);
    ConstMap pd(Phi_d, d.S, d.Nd);
    OutMap m(M, d.Na, d.Nd);

    // Cheap order: T = Y conj(Phi_d) (K x Nd), then M = Phi_a^H T.
    RowMat t(d.K, d.Nd);
    t.noalias() = y * pd.conjugate();
    m.noalias() = pa.adjoint() * t;
}

void angle_delay_map_power(const cfloat* Y,
                           const cfloat* Phi_a,
                           const cfloat* Phi_d,
                           const map_dims& d,
                           float* L)
{
    check_dims(d);
    RowMat m(d.Na, d.Nd);
    angle_delay_map_complex(Y, Phi_a, Phi_d, d, m.data());
    Eigen::Map<Eigen::ArrayXf>(L, d.Na * d.Nd) =
        Eigen::Map<const Eigen::ArrayXcf>(m.data(), d.Na * d.Nd).abs2();
}

map_peak map_argmax(const float* L, int64_t n)
{
    if (n <= 0)
        throw std::invalid_argument("map_argmax: empty map");
    map_peak best{ 0, L[0] };
    for (int64_t i = 0; i < n; ++i) {
        const float v = L[i];
        if (std::isnan(v))
            return { i, v };
        if (v > best.value)
            best = { i, v };
    }
    return best;
}

} // namespace isac
} // namespace gr
