/*
 * OMP (Algorithm 1) and the differentiable-OMP inference step on Eigen.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Cost per frame: one angle-delay map (angle_delay_mapper), then per iteration t one
 * fused pass over the Na x Nd map (residual = M0 - sum of t rank-one terms, power,
 * argmax), two dictionary projections (K x Na and S x Nd) and a t x t Hermitian
 * eigen-solve. See include/gnuradio/isac/omp.h for the semantics.
 *
 * OMP over angle, delay and speed (omp_doppler_kernel): the same with the map of
 * angle_delay_doppler_mapper (Nv speed slices), a third projection (Phi_v^H d_t) and the pass
 * over Na x Nd x Nv cells.
 */

#include <gnuradio/isac/omp.h>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace gr {
namespace isac {

namespace {

using RowMat = Eigen::Matrix<cfloat, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat>;
using CVecF = Eigen::Matrix<cfloat, Eigen::Dynamic, 1>;
using CMatD = Eigen::MatrixXcd;
using CVecD = Eigen::VectorXcd;

void check_grid(const char* fn, const map_dims& d)
{
    if (d.K < 0 || d.S < 0 || d.Na < 0 || d.Nd < 0)
        throw std::invalid_argument(std::string(fn) + ": negative dimension");
    if (d.Na == 0 || d.Nd == 0)
        throw std::invalid_argument(std::string(fn) + ": empty angle or delay grid");
}

void check_iterations(const char* fn, int iterations)
{
    if (iterations < 1)
        throw std::invalid_argument(std::string(fn) + ": iterations must be >= 1, got " + std::to_string(iterations));
}

uint32_t float_bits(float v)
{
    uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b;
}

/*
 * Joint LS gains (13): x = pinv(G) c with the Hermitian pseudo-inverse of numpy
 * (eigen-decomposition of the lower triangle, eigenvalues with |w| <= 1e-6 max|w| dropped).
 */
CVecD pinv_solve(const CMatD& G, const CVecD& c)
{
    Eigen::SelfAdjointEigenSolver<CMatD> es(G);
    const Eigen::VectorXd& w = es.eigenvalues();
    const CMatD& V = es.eigenvectors();
    const double cutoff = 1e-6 * w.cwiseAbs().maxCoeff();
    CVecD proj = V.adjoint() * c;
    for (Eigen::Index k = 0; k < w.size(); ++k)
        proj[k] = std::abs(w[k]) > cutoff ? proj[k] / w[k] : cdouble(0.0);
    return V * proj;
}

/*
 * One row of the residual power map with N atoms known at compile time, so the atom loop
 * unrolls and the row is vectorised over j with the residual in registers:
 * p[j] = |m[j] - sum_s u_s q_s[j]|^2, u_s = (ur[s], ui[s]), q_s = (qr + s Nd, qi + s Nd).
 */
template <int N>
void residual_power_row(const float* __restrict mr, const float* __restrict mi, const float* ur, const float* ui,
                        const float* __restrict qr, const float* __restrict qi, int64_t Nd, float* __restrict p)
{
    float a[N], b[N];
    for (int s = 0; s < N; ++s) {
        a[s] = ur[s];
        b[s] = ui[s];
    }
    for (int64_t j = 0; j < Nd; ++j) {
        float xr = mr[j], xi = mi[j];
        for (int s = 0; s < N; ++s) {
            xr -= a[s] * qr[s * Nd + j] - b[s] * qi[s * Nd + j];
            xi -= a[s] * qi[s * Nd + j] + b[s] * qr[s * Nd + j];
        }
        p[j] = xr * xr + xi * xi;
    }
}

/*
 * One row of the residual power map of t atoms: p[j] = |m[j] - sum_{s<t} u_s q_s[j]|^2
 * (t = 0: |m[j]|^2), with the unrolled rows above for t <= 8; xr, xi are Nd floats of
 * scratch for larger t.
 */
void residual_power(int t, const float* mr, const float* mi, const float* ur, const float* ui, const float* qr,
                    const float* qi, int64_t Nd, float* p, float* xr, float* xi)
{
    switch (t) {
    case 0:
        for (int64_t j = 0; j < Nd; ++j)
            p[j] = mr[j] * mr[j] + mi[j] * mi[j];
        break;
    case 1:
        residual_power_row<1>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 2:
        residual_power_row<2>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 3:
        residual_power_row<3>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 4:
        residual_power_row<4>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 5:
        residual_power_row<5>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 6:
        residual_power_row<6>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 7:
        residual_power_row<7>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    case 8:
        residual_power_row<8>(mr, mi, ur, ui, qr, qi, Nd, p);
        break;
    default:
        std::copy(mr, mr + Nd, xr);
        std::copy(mi, mi + Nd, xi);
        for (int s = 0; s < t; ++s) {
            const float a = ur[s], b = ui[s];
            const float* sr = qr + s * Nd;
            const float* si = qi + s * Nd;
            for (int64_t j = 0; j < Nd; ++j) {
                xr[j] -= a * sr[j] - b * si[j];
                xi[j] -= a * si[j] + b * sr[j];
            }
        }
        for (int64_t j = 0; j < Nd; ++j)
            p[j] = xr[j] * xr[j] + xi[j] * xi[j];
    }
}

/*
 * The map of the input, M0, and the residual maps M0 - sum_t alpha_t pa_t pd_t^T with
 * pa_t = Phi_a^H a_t (Na) and pd_t = Phi_d^H rho_t (Nd), as split real/imaginary planes
 * so that the fused residual/power pass vectorises.
 */
struct residual_engine {
    map_dims d;
    angle_delay_mapper mapper;
    RowMat pa;              // Phi_a (K x Na)
    RowMat pd;              // Phi_d (S x Nd)
    std::vector<cfloat> m0; // M0 (Na x Nd)
    std::vector<float> m0r, m0i;
    std::vector<float> power;    // residual power map (Na x Nd)
    std::vector<float> rr, ri;   // one residual row
    RowMat proj_a;               // row t: Phi_a^H a_t (T x Na)
    std::vector<float> pdr, pdi; // row t: Phi_d^H rho_t (T x Nd), split
    std::vector<cfloat> alpha;   // gains as complex64, as the numpy reference applies them

    residual_engine(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims)
        : d(dims), mapper(Phi_a, Phi_d, dims), pa(ConstMap(Phi_a, dims.K, dims.Na)),
          pd(ConstMap(Phi_d, dims.S, dims.Nd)), m0(dims.Na * dims.Nd), m0r(dims.Na * dims.Nd), m0i(dims.Na * dims.Nd),
          power(dims.Na * dims.Nd), rr(dims.Nd), ri(dims.Nd)
    {
    }

    void start(const cfloat* Y, int iterations)
    {
        mapper.map_complex(Y, m0.data());
        const int64_t n = d.Na * d.Nd;
        for (int64_t k = 0; k < n; ++k) {
            m0r[k] = m0[k].real();
            m0i[k] = m0[k].imag();
        }
        proj_a.resize(iterations, d.Na);
        pdr.assign(size_t(iterations) * d.Nd, 0.0f);
        pdi.assign(size_t(iterations) * d.Nd, 0.0f);
        alpha.assign(iterations, cfloat(0.0f));
    }

    //! Stores the projections of atom t: Phi_a^H a (a: K) and Phi_d^H rho (rho: S).
    void set_projections(int t, const cfloat* a, const cfloat* rho)
    {
        Eigen::Map<const CVecF> av(a, d.K);
        Eigen::Map<const CVecF> rv(rho, d.S);
        proj_a.row(t).transpose().noalias() = pa.adjoint() * av;
        CVecF q(d.Nd);
        q.noalias() = pd.adjoint() * rv;
        for (int64_t j = 0; j < d.Nd; ++j) {
            pdr[t * d.Nd + j] = q[j].real();
            pdi[t * d.Nd + j] = q[j].imag();
        }
    }

    /*
     * Power map of the residual with atoms 0..t-1 and gains alpha[0..t), written to
     * `power` (all rows); returns the first maximum within rows [r0, r1] (numpy.argmax:
     * a NaN wins).
     */
    map_peak residual_argmax(int t, int64_t r0, int64_t r1)
    {
        const int64_t Nd = d.Nd;
        // Powers are >= +0 or NaN, so their IEEE bit patterns order like the floats
        // (NaN above +inf): the row maximum is an integer reduction that vectorises.
        const uint32_t inf_bits = float_bits(std::numeric_limits<float>::infinity());
        int64_t best_index = -1;
        uint32_t best_bits = 0;
        float ur[64], ui[64]; // iterations are few; checked by the callers (<= 64)
        for (int64_t i = 0; i < d.Na; ++i) {
            float* p = power.data() + i * Nd;
            const float* mr = m0r.data() + i * Nd;
            const float* mi = m0i.data() + i * Nd;
            for (int s = 0; s < t; ++s) {
                const cfloat u = proj_a(s, i) * alpha[s];
                ur[s] = u.real();
                ui[s] = u.imag();
            }
            residual_power(t, mr, mi, ur, ui, pdr.data(), pdi.data(), Nd, p, rr.data(), ri.data());
            if (i < r0 || i > r1)
                continue;
            const uint32_t* bits = reinterpret_cast<const uint32_t*>(p);
            uint32_t row_max = 0;
            for (int64_t j = 0; j < Nd; ++j)
                row_max = std::max(row_max, bits[j]);
            if (row_max > inf_bits) { // a NaN in this row: the first one wins
                for (int64_t j = 0; j < Nd; ++j)
                    if (std::isnan(p[j]))
                        return {i * Nd + j, p[j]};
            }
            if (best_index < 0 || row_max > best_bits) {
                for (int64_t j = 0; j < Nd; ++j)
                    if (bits[j] == row_max) {
                        best_index = i * Nd + j;
                        break;
                    }
                best_bits = row_max;
            }
        }
        return {best_index, power[best_index]};
    }
};

/*
 * The angle-delay-Doppler twin of residual_engine: M0 (Na x Nd x Nv) kept slice by slice
 * (plane l holds M0[:, :, l], Na x Nd) as split real/imaginary planes, and the residual maps
 * M0 - sum_t alpha_t pa_t x pd_t x pv_t with pv_t = Phi_v^H d_t (Nv). A residual row (l, i) is
 * the 2-D residual row i with the gains alpha_t [pv_t]_l, so residual_power serves it; the
 * power is not stored (one row at a time), only its argmax in numpy's (Na, Nd, Nv) order.
 */
struct doppler_engine {
    doppler_dims d;
    angle_delay_doppler_mapper mapper;
    RowMat pa, pd, pv;           // Phi_a (K x Na), Phi_d (S x Nd), Phi_v (M x Nv)
    std::vector<float> m0r, m0i; // M0, plane l = speed l (Nv x Na x Nd)
    std::vector<cfloat> slice;   // one complex slice of M0 (Na x Nd)
    std::vector<float> row;      // the power of one residual row (Nd)
    std::vector<float> rr, ri;   // scratch of residual_power (Nd)
    RowMat proj_a, proj_v;       // row t: Phi_a^H a_t (T x Na), Phi_v^H d_t (T x Nv)
    std::vector<float> pdr, pdi; // row t: Phi_d^H rho_t (T x Nd), split
    std::vector<cfloat> alpha;   // gains as complex64, as the numpy reference applies them

    doppler_engine(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v, const doppler_dims& dims)
        : d(dims), mapper(Phi_a, Phi_d, Phi_v, dims), pa(ConstMap(Phi_a, dims.K, dims.Na)),
          pd(ConstMap(Phi_d, dims.S, dims.Nd)), pv(ConstMap(Phi_v, dims.M, dims.Nv)),
          m0r(size_t(dims.Nv * dims.Na * dims.Nd)), m0i(size_t(dims.Nv * dims.Na * dims.Nd)),
          slice(size_t(dims.Na * dims.Nd)), row(dims.Nd), rr(dims.Nd), ri(dims.Nd), proj_a(64, dims.Na),
          proj_v(64, dims.Nv), pdr(size_t(64 * dims.Nd)), pdi(size_t(64 * dims.Nd)), alpha(64)
    {
    }

    size_t workspace_bytes() const
    {
        const size_t floats = m0r.size() + m0i.size() + row.size() + rr.size() + ri.size() + pdr.size() + pdi.size();
        const size_t complexes = slice.size() + size_t(proj_a.size() + proj_v.size()) + alpha.size();
        return sizeof(float) * floats + sizeof(cfloat) * complexes + mapper.workspace_bytes();
    }

    void start(const cfloat* Y)
    {
        const int64_t n = d.Na * d.Nd;
        mapper.contract(Y);
        for (int64_t l = 0; l < d.Nv; ++l) {
            mapper.slice_complex(l, slice.data());
            float* re = m0r.data() + l * n;
            float* im = m0i.data() + l * n;
            for (int64_t k = 0; k < n; ++k) {
                re[k] = slice[k].real();
                im[k] = slice[k].imag();
            }
        }
    }

    //! M0[i, j, l] as complex64.
    cfloat m0(int64_t i, int64_t j, int64_t l) const
    {
        const size_t k = size_t((l * d.Na + i) * d.Nd + j);
        return cfloat(m0r[k], m0i[k]);
    }

    //! Stores the projections of dictionary atom t: columns i, j, l of Phi_a, Phi_d, Phi_v.
    void set_projections(int t, int64_t i, int64_t j, int64_t l)
    {
        proj_a.row(t).transpose().noalias() = pa.adjoint() * pa.col(i);
        proj_v.row(t).transpose().noalias() = pv.adjoint() * pv.col(l);
        CVecF q(d.Nd);
        q.noalias() = pd.adjoint() * pd.col(j);
        for (int64_t c = 0; c < d.Nd; ++c) {
            pdr[t * d.Nd + c] = q[c].real();
            pdi[t * d.Nd + c] = q[c].imag();
        }
    }

    /*
     * First maximum of the residual power map of atoms 0..t-1 with gains alpha[0..t), in
     * numpy's flat order of (Na, Nd, Nv): index (i Nd + j) Nv + l; a NaN wins (the first).
     * The planes are swept slice by slice, so ties between rows compare the flat indices.
     */
    map_peak residual_argmax(int t)
    {
        const int64_t Na = d.Na, Nd = d.Nd, Nv = d.Nv, n = Na * Nd;
        // powers are >= +0 or NaN: their bits order like the floats, every NaN above +inf
        const uint32_t inf_bits = float_bits(std::numeric_limits<float>::infinity());
        const uint32_t nan_key = inf_bits + 1; // all NaNs rank alike: the first flat index wins
        int64_t best_index = -1;
        uint32_t best_key = 0;
        float best_value = 0.0f;
        cfloat av[64];
        float ur[64], ui[64];
        float* p = row.data();
        const uint32_t* bits = reinterpret_cast<const uint32_t*>(p);
        for (int64_t l = 0; l < Nv; ++l) {
            for (int s = 0; s < t; ++s)
                av[s] = alpha[s] * proj_v(s, l);
            for (int64_t i = 0; i < Na; ++i) {
                const float* mr = m0r.data() + l * n + i * Nd;
                const float* mi = m0i.data() + l * n + i * Nd;
                for (int s = 0; s < t; ++s) {
                    const cfloat u = proj_a(s, i) * av[s];
                    ur[s] = u.real();
                    ui[s] = u.imag();
                }
                residual_power(t, mr, mi, ur, ui, pdr.data(), pdi.data(), Nd, p, rr.data(), ri.data());
                uint32_t row_max = 0;
                for (int64_t j = 0; j < Nd; ++j)
                    row_max = std::max(row_max, bits[j]);
                const uint32_t key = row_max > inf_bits ? nan_key : row_max;
                if (best_index >= 0 && key < best_key)
                    continue;
                int64_t j = 0;
                if (key == nan_key)
                    while (!std::isnan(p[j]))
                        ++j;
                else
                    while (bits[j] != row_max)
                        ++j;
                const int64_t flat = (i * Nd + j) * Nv + l;
                if (best_index < 0 || key > best_key || flat < best_index) {
                    best_index = flat;
                    best_key = key;
                    best_value = p[j];
                }
            }
        }
        return {best_index, best_value};
    }
};

void check_max_iterations(const char* fn, int iterations)
{
    if (iterations > 64)
        throw std::invalid_argument(std::string(fn) + ": iterations must be <= 64, got " + std::to_string(iterations));
}

} // namespace

/* ---------------------------------------------------------------- OMP ---- */

struct omp_kernel::impl {
    residual_engine e;
    impl(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& d) : e(Phi_a, Phi_d, d) {}

    void run(const cfloat* Y, int T, const omp_output& out)
    {
        const map_dims& d = e.d;
        e.start(Y, T);
        std::fill(out.gains, out.gains + size_t(T) * T, cdouble(0.0));
        std::vector<int64_t> ai(T), di(T);
        for (int it = 0; it < T; ++it) {
            const map_peak peak = e.residual_argmax(it, 0, d.Na - 1);
            ai[it] = peak.index / d.Nd;
            di[it] = peak.index % d.Nd;
            out.angle_index[it] = ai[it];
            out.delay_index[it] = di[it];
            out.peaks[it] = double(peak.value);
            // dictionary atoms: columns of Phi_a and Phi_d
            CVecF a = e.pa.col(ai[it]);
            CVecF rho = e.pd.col(di[it]);
            e.set_projections(it, a.data(), rho.data());
            const int t = it + 1;
            // G_su = (a_s^H a_u)(rho_s^H rho_u) = [Phi_a^H a_u]_{i_s} [Phi_d^H rho_u]_{j_s}
            CMatD G(t, t);
            CVecD c(t);
            for (int s = 0; s < t; ++s) {
                for (int u = 0; u < t; ++u) {
                    const cdouble ga(e.proj_a(u, ai[s]));
                    const cdouble gd(e.pdr[u * d.Nd + di[s]], e.pdi[u * d.Nd + di[s]]);
                    G(s, u) = ga * gd;
                }
                c[s] = cdouble(e.m0[ai[s] * d.Nd + di[s]]); // <a_s rho_s^T, Y> = M0[i_s, j_s]
            }
            const CVecD x = pinv_solve(G, c);
            for (int s = 0; s < t; ++s) {
                out.gains[it * T + s] = x[s];
                e.alpha[s] = cfloat(x[s]);
            }
        }
    }
};

omp_kernel::omp_kernel(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims)
{
    check_grid("omp", dims);
    d_impl = std::make_unique<impl>(Phi_a, Phi_d, dims);
}
omp_kernel::~omp_kernel() = default;
omp_kernel::omp_kernel(omp_kernel&&) noexcept = default;
omp_kernel& omp_kernel::operator=(omp_kernel&&) noexcept = default;
const map_dims& omp_kernel::dims() const
{
    return d_impl->e.d;
}

void omp_kernel::run(const cfloat* Y, int iterations, const omp_output& out)
{
    check_iterations("omp", iterations);
    check_max_iterations("omp", iterations);
    d_impl->run(Y, iterations, out);
}

/* ------------------------------------------------ OMP over angle, delay and speed ---- */

struct omp_doppler_kernel::impl {
    doppler_engine e;
    impl(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v, const doppler_dims& d)
        : e(Phi_a, Phi_d, Phi_v, d)
    {
    }

    void run(const cfloat* Y, int T, const omp_doppler_output& out)
    {
        const doppler_dims& d = e.d;
        e.start(Y);
        std::fill(out.gains, out.gains + size_t(T) * T, cdouble(0.0));
        std::vector<int64_t> ai(T), di(T), vi(T);
        for (int it = 0; it < T; ++it) {
            const map_peak peak = e.residual_argmax(it);
            ai[it] = peak.index / (d.Nd * d.Nv);
            di[it] = (peak.index / d.Nv) % d.Nd;
            vi[it] = peak.index % d.Nv;
            out.angle_index[it] = ai[it];
            out.delay_index[it] = di[it];
            out.doppler_index[it] = vi[it];
            out.peaks[it] = double(peak.value);
            e.set_projections(it, ai[it], di[it], vi[it]);
            const int t = it + 1;
            // G_su = (a_s^H a_u)(rho_s^H rho_u)(d_s^H d_u): entries i_s, j_s, l_s of atom u's projections
            CMatD G(t, t);
            CVecD c(t);
            for (int s = 0; s < t; ++s) {
                for (int u = 0; u < t; ++u) {
                    const cdouble ga(e.proj_a(u, ai[s]));
                    const cdouble gd(e.pdr[u * d.Nd + di[s]], e.pdi[u * d.Nd + di[s]]);
                    const cdouble gv(e.proj_v(u, vi[s]));
                    G(s, u) = ga * gd * gv;
                }
                c[s] = cdouble(e.m0(ai[s], di[s], vi[s])); // <a_s x rho_s x d_s, Y> = M0[i_s, j_s, l_s]
            }
            const CVecD x = pinv_solve(G, c);
            for (int s = 0; s < t; ++s) {
                out.gains[it * T + s] = x[s];
                e.alpha[s] = cfloat(x[s]);
            }
        }
    }
};

omp_doppler_kernel::omp_doppler_kernel(const cfloat* Phi_a, const cfloat* Phi_d, const cfloat* Phi_v,
                                       const doppler_dims& dims)
{
    if (dims.M < 0 || dims.Nv < 0)
        throw std::invalid_argument("omp_doppler: negative dimension");
    check_grid("omp_doppler", dims.slice());
    if (dims.Nv == 0)
        throw std::invalid_argument("omp_doppler: empty speed grid");
    d_impl = std::make_unique<impl>(Phi_a, Phi_d, Phi_v, dims);
}
omp_doppler_kernel::~omp_doppler_kernel() = default;
omp_doppler_kernel::omp_doppler_kernel(omp_doppler_kernel&&) noexcept = default;
omp_doppler_kernel& omp_doppler_kernel::operator=(omp_doppler_kernel&&) noexcept = default;
const doppler_dims& omp_doppler_kernel::dims() const
{
    return d_impl->e.d;
}

size_t omp_doppler_kernel::workspace_bytes() const
{
    return d_impl->e.workspace_bytes();
}

void omp_doppler_kernel::run(const cfloat* Y, int iterations, const omp_doppler_output& out)
{
    check_iterations("omp_doppler", iterations);
    check_max_iterations("omp_doppler", iterations);
    d_impl->run(Y, iterations, out);
}

/* ------------------------------------------------ dOMP inference step ---- */

struct domp_kernel::impl {
    residual_engine e;
    std::vector<double> angles, delays, positions;
    double wavelength, spacing, temperature;
    int64_t wa, wd;

    impl(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& d, const domp_params& p)
        : e(Phi_a, Phi_d, d), angles(p.angles_rad, p.angles_rad + d.Na), delays(p.delays_s, p.delays_s + d.Nd),
          positions(p.positions_m, p.positions_m + d.K), wavelength(p.wavelength_m), spacing(p.spacing_hz),
          temperature(p.temperature), wa(p.half_width_angle), wd(p.half_width_delay)
    {
    }

    void run(const cfloat* Y, int T, const domp_output& out, int64_t r0, int64_t r1)
    {
        const map_dims& d = e.d;
        e.start(Y, T);
        std::fill(out.gains, out.gains + size_t(T) * T, cdouble(0.0));
        ConstMap y(Y, d.K, d.S);
        RowMat A(T, d.K), R(T, d.S); // recomputed atoms a(theta^_t), rho(tau^_t)
        CMatD G(T, T);               // Gram matrix of the atoms
        CVecD c(T);                  // c_s = a_s^H Y conj(rho_s)
        const double two_pi = 2.0 * M_PI;
        for (int it = 0; it < T; ++it) {
            const map_peak peak = e.residual_argmax(it, r0, r1);
            const int64_t i0 = peak.index / d.Nd, j0 = peak.index % d.Nd;
            out.angle_index[it] = i0;
            out.delay_index[it] = j0;
            const double pk = double(peak.value);
            out.peaks[it] = pk;
            // window around the argmax, clipped to the grid; softmax of (L / L_max) / T
            const int64_t i_lo = std::max<int64_t>(0, i0 - wa), i_hi = std::min(d.Na - 1, i0 + wa);
            const int64_t j_lo = std::max<int64_t>(0, j0 - wd), j_hi = std::min(d.Nd - 1, j0 + wd);
            const bool normal = pk > 0.0 && std::isfinite(pk);
            // softmax shift: the window maximum (the peak itself, unless a sector
            // restriction left a larger cell outside the sector inside the window)
            double top = 0.0;
            if (normal)
                for (int64_t i = i_lo; i <= i_hi; ++i)
                    for (int64_t j = j_lo; j <= j_hi; ++j)
                        top = std::max(top, double(e.power[i * d.Nd + j]) / pk / temperature);
            double z = 0.0, th = 0.0, ta = 0.0;
            std::vector<double> col_w(j_hi - j_lo + 1, 0.0);
            for (int64_t i = i_lo; i <= i_hi; ++i) {
                double row_w = 0.0;
                for (int64_t j = j_lo; j <= j_hi; ++j) {
                    const double logit = normal ? double(e.power[i * d.Nd + j]) / pk / temperature : 0.0;
                    const double w = std::exp(logit - top);
                    row_w += w;
                    col_w[j - j_lo] += w;
                }
                z += row_w;
                th += row_w * angles[i];
            }
            for (int64_t j = j_lo; j <= j_hi; ++j)
                ta += col_w[j - j_lo] * delays[j];
            const double theta = th / z, tau = ta / z;
            out.angles_rad[it] = theta;
            out.delays_s[it] = tau;
            // atoms at (theta^, tau^) from the steering model, as complex64
            const double st = std::sin(theta);
            for (int64_t k = 0; k < d.K; ++k) {
                const double ph = (-two_pi / wavelength) * positions[k] * st;
                A(it, k) = cfloat(std::polar(1.0, ph));
            }
            for (int64_t s = 0; s < d.S; ++s) {
                const double ph = -two_pi * spacing * tau * double(s);
                R(it, s) = cfloat(std::polar(1.0, ph));
            }
            e.set_projections(it, A.row(it).data(), R.row(it).data());
            // joint LS over the recomputed atoms, in double; earlier atoms do not change,
            // so only the new row/column of G and the new c entry are computed
            const int t = it + 1;
            for (int s = 0; s < t; ++s) {
                cdouble ga = 0.0, gd = 0.0; // a_s^H a_it, rho_s^H rho_it
                for (int64_t k = 0; k < d.K; ++k)
                    ga += std::conj(cdouble(A(s, k))) * cdouble(A(it, k));
                for (int64_t n = 0; n < d.S; ++n)
                    gd += std::conj(cdouble(R(s, n))) * cdouble(R(it, n));
                G(s, it) = ga * gd;
                G(it, s) = std::conj(G(s, it));
            }
            {
                // c_it = a_it^H Y conj(rho_it)
                cdouble acc = 0.0;
                for (int64_t k = 0; k < d.K; ++k) {
                    cdouble row = 0.0;
                    for (int64_t n = 0; n < d.S; ++n)
                        row += cdouble(y(k, n)) * std::conj(cdouble(R(it, n)));
                    acc += std::conj(cdouble(A(it, k))) * row;
                }
                c[it] = acc;
            }
            const CVecD x = pinv_solve(G.topLeftCorner(t, t), c.head(t));
            for (int s = 0; s < t; ++s) {
                out.gains[it * T + s] = x[s];
                e.alpha[s] = cfloat(x[s]);
            }
        }
    }
};

domp_kernel::domp_kernel(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims, const domp_params& params)
{
    check_grid("domp", dims);
    if (params.half_width_angle < 0 || params.half_width_delay < 0)
        throw std::invalid_argument("domp: half-widths must be >= 0");
    if (!(params.temperature > 0.0) || !std::isfinite(params.temperature))
        throw std::invalid_argument("domp: temperature must be finite and > 0");
    if (!(params.wavelength_m > 0.0) || !std::isfinite(params.wavelength_m))
        throw std::invalid_argument("domp: wavelength must be finite and > 0");
    if (!std::isfinite(params.spacing_hz))
        throw std::invalid_argument("domp: subcarrier spacing must be finite");
    d_impl = std::make_unique<impl>(Phi_a, Phi_d, dims, params);
}
domp_kernel::~domp_kernel() = default;
domp_kernel::domp_kernel(domp_kernel&&) noexcept = default;
domp_kernel& domp_kernel::operator=(domp_kernel&&) noexcept = default;
const map_dims& domp_kernel::dims() const
{
    return d_impl->e.d;
}

void domp_kernel::run(const cfloat* Y, int iterations, const domp_output& out, int64_t first_row, int64_t last_row)
{
    check_iterations("domp", iterations);
    check_max_iterations("domp", iterations);
    const int64_t Na = d_impl->e.d.Na;
    if (last_row < 0)
        last_row = Na - 1;
    if (first_row < 0 || first_row > last_row || last_row >= Na)
        throw std::invalid_argument("domp: argmax rows [" + std::to_string(first_row) + ", " +
                                    std::to_string(last_row) + "] outside the grid of " + std::to_string(Na) +
                                    " angles");
    d_impl->run(Y, iterations, out, first_row, last_row);
}

} // namespace isac
} // namespace gr
