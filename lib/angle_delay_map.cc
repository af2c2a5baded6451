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
#include <vector>

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

struct angle_delay_mapper::impl {
    map_dims dims;
    RowMat pa_h;    // Phi_a^H (Na x K)
    RowMat pd_conj; // conj(Phi_d) (S x Nd)
    RowMat t;       // Y conj(Phi_d) (K x Nd)
    std::vector<cfloat> scratch; // complex map for map_power

    impl(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& d)
        : dims(d),
          pa_h(ConstMap(Phi_a, d.K, d.Na).adjoint()),
          pd_conj(ConstMap(Phi_d, d.S, d.Nd).conjugate()),
          t(d.K, d.Nd)
    {
    }

    void map(const cfloat* Y, cfloat* M)
    {
        // Cheap order: T = Y conj(Phi_d) (K x Nd), then M = Phi_a^H T.
        t.noalias() = ConstMap(Y, dims.K, dims.S) * pd_conj;
        OutMap(M, dims.Na, dims.Nd).noalias() = pa_h * t;
    }
};

angle_delay_mapper::angle_delay_mapper(const cfloat* Phi_a,
                                       const cfloat* Phi_d,
                                       const map_dims& dims)
{
    check_dims(dims);
    d_impl = std::make_unique<impl>(Phi_a, Phi_d, dims);
}

angle_delay_mapper::~angle_delay_mapper() = default;
angle_delay_mapper::angle_delay_mapper(angle_delay_mapper&&) noexcept = default;
angle_delay_mapper& angle_delay_mapper::operator=(angle_delay_mapper&&) noexcept = default;

const map_dims& angle_delay_mapper::dims() const { return d_impl->dims; }

bool angle_delay_mapper::uses_chirp_z() const { return false; }

void angle_delay_mapper::map_complex(const cfloat* Y, cfloat* M) { d_impl->map(Y, M); }

void angle_delay_mapper::map_power(const cfloat* Y, float* L)
{
    const int64_t n = d_impl->dims.Na * d_impl->dims.Nd;
    auto& m = d_impl->scratch;
    if (m.size() < size_t(n))
        m.resize(n);
    map_complex(Y, m.data());
    Eigen::Map<Eigen::ArrayXf>(L, n) = Eigen::Map<const Eigen::ArrayXcf>(m.data(), n).abs2();
}

void angle_delay_map_complex(const cfloat* Y,
                             const cfloat* Phi_a,
                             const cfloat* Phi_d,
                             const map_dims& d,
                             cfloat* M)
{
    angle_delay_mapper(Phi_a, Phi_d, d).map_complex(Y, M);
}

void angle_delay_map_power(const cfloat* Y,
                           const cfloat* Phi_a,
                           const cfloat* Phi_d,
                           const map_dims& d,
                           float* L)
{
    angle_delay_mapper(Phi_a, Phi_d, d).map_power(Y, L);
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
