/*
 * Angle-delay-Doppler map kernel: the Doppler mode as one real GEMM per block of columns,
 * then the angle-delay map of each speed slice (angle_delay_mapper).
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Doppler mode. Z = Phi_v^H Y (Nv x KS, Y viewed as M x KS) in complex arithmetic is
 * evaluated as ONE real GEMM on the interleaved floats of Y: with W = conj(Phi_v)^T =
 * Wr + j Wi (Nv x M) and Y as the real M x 2KS matrix of its (re, im) pairs,
 *   C = [Wr; Wi] Y   (2Nv x 2KS),
 *   Re Z[l][c] = C[l][2c] - C[Nv+l][2c+1],   Im Z[l][c] = C[l][2c+1] + C[Nv+l][2c],
 * the four real products of the complex product, summed as it sums them. A real GEMM is
 * fast with any instruction set (Eigen's complex GEMM is slow without AVX-512, see
 * angle_delay_map.cc). C is formed block by block (CONTRACT_BLOCK complex columns) so
 * that it stays in cache; Z (Nv x K x S) is kept for the slices.
 */

#include <gnuradio/isac/angle_delay_doppler_map.h>

#include <Eigen/Core>
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace gr {
namespace isac {

namespace {

using RealRowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

//! Complex columns of Y per block of the Doppler GEMM: C is 2 Nv x 2 * 512 floats (132 kB
//! for Nv = 16).
constexpr int64_t CONTRACT_BLOCK = 512;

void check_dims(const doppler_dims& d)
{
    if (d.M < 0 || d.K < 0 || d.S < 0 || d.Na < 0 || d.Nd < 0 || d.Nv < 0)
        throw std::invalid_argument("angle_delay_doppler_map: negative dimension");
}

} // namespace

struct angle_delay_doppler_mapper::impl {
    doppler_dims d;
    angle_delay_mapper slices;   // the 2-D map of one speed slice
    RealRowMat w;                // [Re conj(Phi_v)^T; Im conj(Phi_v)^T] (2Nv x M)
    std::vector<cfloat> z;       // Z = Phi_v^H Y (Nv x K x S)
    std::vector<float> block;    // C of one block of columns (2Nv x 2 CONTRACT_BLOCK)
    std::vector<cfloat> scratch; // up to 8 complex slices for map_complex / map_power (Na x Nd each)

    impl(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v, const doppler_dims& dims, bool allow_chirp_z,
         bool allow_symmetric)
        : d(dims), slices(Phi_a, Phi_d, dims.slice(), allow_chirp_z, allow_symmetric), w(2 * dims.Nv, dims.M),
          z(size_t(dims.Nv * dims.K * dims.S)), block(size_t(2 * dims.Nv * 2 * CONTRACT_BLOCK))
    {
        for (int64_t l = 0; l < d.Nv; ++l)
            for (int64_t m = 0; m < d.M; ++m) {
                const cfloat v = std::conj(Phi_v[m * d.Nv + l]);
                w(l, m) = v.real();
                w(d.Nv + l, m) = v.imag();
            }
    }

    void contract(const cfloat* Y)
    {
        const int64_t n = d.K * d.S, Nv = d.Nv;
        if (d.M == 0 || n == 0 || Nv == 0) {
            std::fill(z.begin(), z.end(), cfloat(0.0f));
            return;
        }
        Eigen::Map<const RealRowMat> y(reinterpret_cast<const float*>(Y), d.M, 2 * n);
        for (int64_t c0 = 0; c0 < n; c0 += CONTRACT_BLOCK) {
            const int64_t cb = std::min(CONTRACT_BLOCK, n - c0);
            Eigen::Map<RealRowMat> C(block.data(), 2 * Nv, 2 * cb);
            C.noalias() = w * y.middleCols(2 * c0, 2 * cb);
            for (int64_t l = 0; l < Nv; ++l) {
                const float* re = C.data() + l * 2 * cb;        // row l: Wr Y
                const float* im = C.data() + (Nv + l) * 2 * cb; // row Nv + l: Wi Y
                cfloat* out = z.data() + l * n + c0;
                for (int64_t c = 0; c < cb; ++c)
                    out[c] = cfloat(re[2 * c] - im[2 * c + 1], re[2 * c + 1] + im[2 * c]);
            }
        }
    }
};

angle_delay_doppler_mapper::angle_delay_doppler_mapper(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v,
                                                       const doppler_dims& dims, bool allow_chirp_z,
                                                       bool allow_symmetric)
{
    check_dims(dims);
    d_impl = std::make_unique<impl>(Phi_a, Phi_d, Phi_v, dims, allow_chirp_z, allow_symmetric);
}

angle_delay_doppler_mapper::~angle_delay_doppler_mapper() = default;
angle_delay_doppler_mapper::angle_delay_doppler_mapper(angle_delay_doppler_mapper&&) noexcept = default;
angle_delay_doppler_mapper& angle_delay_doppler_mapper::operator=(angle_delay_doppler_mapper&&) noexcept = default;

const doppler_dims& angle_delay_doppler_mapper::dims() const
{
    return d_impl->d;
}

bool angle_delay_doppler_mapper::uses_chirp_z() const
{
    return d_impl->slices.uses_chirp_z();
}

bool angle_delay_doppler_mapper::uses_symmetric_array() const
{
    return d_impl->slices.uses_symmetric_array();
}

void angle_delay_doppler_mapper::contract(const cfloat* Y)
{
    d_impl->contract(Y);
}

void angle_delay_doppler_mapper::slice_complex(int64_t l, cfloat* M_l)
{
    const doppler_dims& d = d_impl->d;
    if (l < 0 || l >= d.Nv)
        throw std::invalid_argument("angle_delay_doppler_map: speed slice " + std::to_string(l) + " outside 0.." +
                                    std::to_string(d.Nv - 1));
    d_impl->slices.map_complex(d_impl->z.data() + l * d.K * d.S, M_l);
}

/*
 * The map in numpy's (Na, Nd, Nv) layout: MAP_GROUP slices at a time into a scratch, then
 * interleaved into the output cell by cell (writing one slice at a time with stride Nv would
 * pass over the whole output once per slice).
 */
namespace {

template <typename T, typename Convert>
void map_interleaved(angle_delay_doppler_mapper& mapper, std::vector<cfloat>& scratch, const cfloat* Y, T* out,
                     Convert convert)
{
    constexpr int64_t MAP_GROUP = 8;
    const doppler_dims& d = mapper.dims();
    const int64_t cells = d.Na * d.Nd, group = std::min(MAP_GROUP, d.Nv);
    scratch.resize(size_t(group * cells));
    mapper.contract(Y);
    for (int64_t l0 = 0; l0 < d.Nv; l0 += group) {
        const int64_t g = std::min(group, d.Nv - l0);
        for (int64_t l = 0; l < g; ++l)
            mapper.slice_complex(l0 + l, scratch.data() + l * cells);
        for (int64_t c = 0; c < cells; ++c) {
            T* o = out + c * d.Nv + l0;
            for (int64_t l = 0; l < g; ++l)
                o[l] = convert(scratch[l * cells + c]);
        }
    }
}

} // namespace

void angle_delay_doppler_mapper::map_complex(const cfloat* Y, cfloat* M)
{
    map_interleaved(*this, d_impl->scratch, Y, M, [](cfloat v) { return v; });
}

void angle_delay_doppler_mapper::map_power(const cfloat* Y, float* L)
{
    map_interleaved(*this, d_impl->scratch, Y, L, [](cfloat v) { return v.real() * v.real() + v.imag() * v.imag(); });
}

size_t angle_delay_doppler_mapper::workspace_bytes() const
{
    const impl& p = *d_impl;
    return sizeof(cfloat) * p.z.size() + sizeof(float) * p.block.size();
}

} // namespace isac
} // namespace gr
