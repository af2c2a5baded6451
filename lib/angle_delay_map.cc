/*
 * Angle-delay map kernel on Eigen.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Instruction set: this file is built with -O3 and no -march flag by default, so
 * Eigen vectorises with the x86-64 baseline (SSE2) and the library runs on any
 * x86-64 machine it is copied to. A build for one machine can add AVX2/FMA or
 * AVX-512 through the CMake cache variable ISAC_ARCH_FLAGS; Eigen then picks the
 * wider packets by itself (EIGEN_VECTORIZE_AVX* follow the compiler's macros).
 * tools/setup.sh builds with -march=native. With AVX-512 the angle side Phi_a^H T is
 * one complex GEMM; otherwise four real GEMMs on split parts, which Eigen runs 2-4x
 * faster there (see map() below).
 * Eigen runs single-threaded here (no OpenMP): callers parallelise over frames.
 *
 * Delay side. When Phi_d is a partial DFT on a uniform delay grid,
 *   Phi_d[s][j] = exp(-j 2 pi s (f0 + j g))   (f0 = Delta_f tau_0, g = Delta_f Delta_tau),
 * which is what model/ofdm.delay_dictionary builds, Y conj(Phi_d) is a zoomed DFT of each
 * row of Y, evaluated by Bluestein's chirp-z algorithm with FFTs of length N >= S + Nd - 1:
 *   sum_s x_s z^{sj} = c_j sum_s (x_s c_s) conj(c_{j-s}),  z = e^{j 2 pi g}, c_n = e^{j pi g n^2},
 * (x_s = Y[k][s] e^{j 2 pi s f0}): 2 FFTs of 512 points per antenna instead of S*Nd
 * multiply-adds. The structure is detected from Phi_d itself (f0 and g estimated from
 * its phases, then every entry checked against the model to 2e-6); any other Phi_d,
 * e.g. a learned one, takes the GEMM path. Both paths give the same map to float
 * rounding (lib/qa_angle_delay_map.cc, tests/test_kernels.py).
 */

#include <gnuradio/isac/angle_delay_map.h>

#include <gnuradio/fft/fft.h> // gr::fft::planner::mutex(): FFTW's planner is not thread-safe

#include <Eigen/Core>
#include <cmath>
#include <fftw3.h>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace gr {
namespace isac {

namespace {

using RowMat = Eigen::Matrix<cfloat, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat>;
using OutMap = Eigen::Map<RowMat>;
using cdouble = std::complex<double>;

void check_dims(const map_dims& d)
{
    if (d.K < 0 || d.S < 0 || d.Na < 0 || d.Nd < 0)
        throw std::invalid_argument("angle_delay_map: negative dimension");
}

// Fractional part of a number of cycles, as a phase in radians.
double cycles_to_rad(double cycles)
{
    return 2.0 * M_PI * (cycles - std::floor(cycles));
}

// x = n * v (mod 1) measured as `observed` (cycles); v_coarse known to << 0.5 / n.
double refine(double v_coarse, double n, double observed)
{
    const double k = std::round(n * v_coarse - observed);
    return (observed + k) / n;
}

double phase_cycles(cfloat v)
{
    return -std::atan2(double(v.imag()), double(v.real())) / (2.0 * M_PI);
}

/*
 * Detects Phi_d[s][j] = exp(-j 2 pi s (f0 + j g)) within `tol` per entry; returns f0, g.
 */
bool detect_uniform_dft(const cfloat* Pd, int64_t S, int64_t Nd, double& f0, double& g)
{
    if (S < 2 || Nd < 2)
        return false;
    auto phi = [&](int64_t s, int64_t j) { return phase_cycles(Pd[s * Nd + j]); };
    auto wrap = [](double c) { return c - std::round(c); };
    // coarse from row 1, then refined on longer baselines (errors shrink by 1/n)
    f0 = wrap(phi(1, 0));
    g = wrap(phi(1, 1) - phi(1, 0));
    g = refine(g, double(Nd - 1), wrap(phi(1, Nd - 1) - phi(1, 0)));
    g = refine(g, double((S - 1) * (Nd - 1)), wrap(phi(S - 1, Nd - 1) - phi(S - 1, 0)));
    f0 = refine(f0, double(S - 1), wrap(phi(S - 1, 0)));
    // every entry against the model, row by row with a double-precision recurrence
    // (rounding drift ~Nd * 1e-16, far below the tolerance)
    const double tol2 = 2e-6 * 2e-6;
    for (int64_t s = 0; s < S; ++s) {
        const cdouble step = std::polar(1.0, -cycles_to_rad(double(s) * g));
        cdouble v = std::polar(1.0, -cycles_to_rad(double(s) * f0));
        const cfloat* row = Pd + s * Nd;
        for (int64_t j = 0; j < Nd; ++j) {
            const double dr = double(row[j].real()) - v.real(), di = double(row[j].imag()) - v.imag();
            if (!(dr * dr + di * di <= tol2))
                return false;
            v = cdouble(v.real() * step.real() - v.imag() * step.imag(),
                        v.real() * step.imag() + v.imag() * step.real());
        }
    }
    return true;
}

/*
 * Detects an array symmetric about its centre: Phi_a[K-1-k][i] = conj(Phi_a[k][i]) within
 * `tol` per entry (a middle row, for odd K, must be real). Element positions p_{K-1-k} =
 * -p_k give it: the nominal array of Example 1, not an impaired or learned one.
 */
bool detect_conj_symmetric(const cfloat* Pa, int64_t K, int64_t Na)
{
    if (K < 2 || Na < 1)
        return false;
    const double tol2 = 2e-6 * 2e-6;
    for (int64_t k = 0; k <= (K - 1) / 2; ++k) {
        const cfloat* a = Pa + k * Na;
        const cfloat* b = Pa + (K - 1 - k) * Na;
        for (int64_t i = 0; i < Na; ++i) {
            const double dr = double(b[i].real()) - double(a[i].real());
            const double di = double(b[i].imag()) + double(a[i].imag());
            if (!(dr * dr + di * di <= tol2))
                return false;
        }
    }
    return true;
}

// o = a * b elementwise (interleaved complex64), without the NaN-checking complex multiply.
inline void cmul(const cfloat* a, const cfloat* b, cfloat* o, int64_t n)
{
    const float* x = reinterpret_cast<const float*>(a);
    const float* y = reinterpret_cast<const float*>(b);
    float* z = reinterpret_cast<float*>(o);
    for (int64_t i = 0; i < n; ++i) {
        const float xr = x[2 * i], xi = x[2 * i + 1], yr = y[2 * i], yi = y[2 * i + 1];
        z[2 * i] = xr * yr - xi * yi;
        z[2 * i + 1] = xr * yi + xi * yr;
    }
}

/*
 * Y conj(Phi_d) for every row of Y by Bluestein's chirp-z transform (see the top).
 */
class chirp_z {
public:
    chirp_z(int64_t K, int64_t S, int64_t Nd, double f0, double g) : K(K), S(S), Nd(Nd)
    {
        N = 1;
        while (N < S + Nd - 1)
            N *= 2;
        // c_n = e^{j pi g n^2}; pre_s = e^{j 2 pi s f0} c_s; post_j = c_j / N
        auto chirp = [&](int64_t n) { return std::polar(1.0, cycles_to_rad(0.5 * g * double(n * n))); };
        pre.resize(S);
        for (int64_t s = 0; s < S; ++s)
            pre[s] = cfloat(std::polar(1.0, cycles_to_rad(double(s) * f0)) * chirp(s));
        post.resize(Nd);
        for (int64_t j = 0; j < Nd; ++j)
            post[j] = cfloat(chirp(j) / double(N));
        buf = static_cast<cfloat*>(fftwf_malloc(sizeof(cfloat) * size_t(std::max<int64_t>(K, 1) * N)));
        H = static_cast<cfloat*>(fftwf_malloc(sizeof(cfloat) * size_t(N)));
        if (!buf || !H)
            throw std::bad_alloc();
        fftwf_plan h_plan;
        {
            std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
            const int n[1] = {int(N)};
            auto* b = reinterpret_cast<fftwf_complex*>(buf);
            fwd = fftwf_plan_many_dft(1, n, int(K), b, nullptr, 1, int(N), b, nullptr, 1, int(N), FFTW_FORWARD,
                                      FFTW_ESTIMATE);
            bwd = fftwf_plan_many_dft(1, n, int(K), b, nullptr, 1, int(N), b, nullptr, 1, int(N), FFTW_BACKWARD,
                                      FFTW_ESTIMATE);
            auto* h = reinterpret_cast<fftwf_complex*>(H);
            h_plan = fftwf_plan_dft_1d(int(N), h, h, FFTW_FORWARD, FFTW_ESTIMATE);
        }
        if (!fwd || !bwd || !h_plan)
            throw std::runtime_error("angle_delay_map: FFTW planning failed");
        // h_n = conj(c_n) for n in [-(S-1), Nd-1], stored circularly; zeros elsewhere
        std::fill(H, H + N, cfloat(0.0f));
        for (int64_t n = 0; n < Nd; ++n)
            H[n] = cfloat(std::conj(chirp(n)));
        for (int64_t m = 1; m < S; ++m)
            H[N - m] = cfloat(std::conj(chirp(m)));
        fftwf_execute(h_plan);
        {
            std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
            fftwf_destroy_plan(h_plan);
        }
    }

    ~chirp_z()
    {
        {
            std::lock_guard<std::mutex> lock(gr::fft::planner::mutex());
            fftwf_destroy_plan(fwd);
            fftwf_destroy_plan(bwd);
        }
        fftwf_free(buf);
        fftwf_free(H);
    }
    chirp_z(const chirp_z&) = delete;
    chirp_z& operator=(const chirp_z&) = delete;

    //! T (K x Nd, row-major) = Y (K x S) conj(Phi_d)
    void run(const cfloat* Y, cfloat* T)
    {
        for (int64_t k = 0; k < K; ++k) {
            cfloat* row = buf + k * N;
            cmul(Y + k * S, pre.data(), row, S);
            std::fill(row + S, row + N, cfloat(0.0f));
        }
        fftwf_execute(fwd);
        for (int64_t k = 0; k < K; ++k)
            cmul(buf + k * N, H, buf + k * N, N);
        fftwf_execute(bwd);
        for (int64_t k = 0; k < K; ++k)
            cmul(buf + k * N, post.data(), T + k * Nd, Nd);
    }

private:
    int64_t K, S, Nd, N;
    std::vector<cfloat> pre, post;
    cfloat* buf = nullptr;
    cfloat* H = nullptr;
    fftwf_plan fwd = nullptr, bwd = nullptr;
};

} // namespace

struct angle_delay_mapper::impl {
    map_dims dims;
    RowMat pa_h;                  // Phi_a^H (Na x K)
    RowMat pd_conj;               // conj(Phi_d) (S x Nd)
    RowMat t;                     // Y conj(Phi_d) (K x Nd)
    std::vector<cfloat> scratch;  // complex map for map_power
    std::unique_ptr<chirp_z> czt; // fast delay side, when Phi_d is a uniform partial DFT
    bool symmetric = false;       // half-size angle side, when Phi_a is centro-symmetric
    using RealRowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    RealRowMat sym_c, sym_r, sym_g; // see map_symmetric()

    impl(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& d, bool allow_chirp_z, bool allow_symmetric)
        : dims(d), pa_h(ConstMap(Phi_a, d.K, d.Na).adjoint()), t(d.K, d.Nd)
    {
        double f0, g;
        if (allow_chirp_z && d.K > 0 && detect_uniform_dft(Phi_d, d.S, d.Nd, f0, g))
            czt = std::make_unique<chirp_z>(d.K, d.S, d.Nd, f0, g);
        else
            pd_conj = ConstMap(Phi_d, d.S, d.Nd).conjugate();
        symmetric = allow_symmetric && d.Nd > 0 && detect_conj_symmetric(Phi_a, d.K, d.Na);
        if (symmetric) {
            // C = [Re Phi_a[k<h]^T, Im Phi_a[k<h]^T, (Re Phi_a[mid]^T)] (Na x K)
            const int64_t h = d.K / 2;
            sym_c.resize(d.Na, d.K);
            for (int64_t i = 0; i < d.Na; ++i) {
                for (int64_t k = 0; k < h; ++k) {
                    sym_c(i, k) = Phi_a[k * d.Na + i].real();
                    sym_c(i, h + k) = Phi_a[k * d.Na + i].imag();
                }
                if (d.K % 2)
                    sym_c(i, 2 * h) = Phi_a[h * d.Na + i].real();
            }
            sym_r.resize(d.K, 2 * d.Nd);
            sym_g.resize(d.Na, 2 * d.Nd);
        }
#ifndef EIGEN_VECTORIZE_AVX512
        if (!symmetric) {
            pr = pa_h.real();
            pi = pa_h.imag();
        }
#endif
    }

    /*
     * Phi_a^H T for a centro-symmetric Phi_a with one real GEMM of half the work: with
     * Phi_a[k][i] = a + jb and T_k' = T[K-1-k], conj(Phi_a[k]) T_k + Phi_a[k] T_k' =
     * a U + j b V, U = T_k + T_k', V = T_k' - T_k, so
     * [Re M | Im M] = C R, R = [[Re U, Im U], [-Im V, Re V], ([Re T_mid, Im T_mid])].
     */
    void map_symmetric(cfloat* M)
    {
        const int64_t K = dims.K, Nd = dims.Nd, h = K / 2;
        for (int64_t k = 0; k < h; ++k) {
            const cfloat* a = t.data() + k * Nd;
            const cfloat* b = t.data() + (K - 1 - k) * Nd;
            float* u = sym_r.data() + k * 2 * Nd;
            float* v = sym_r.data() + (h + k) * 2 * Nd;
            for (int64_t j = 0; j < Nd; ++j) {
                u[j] = a[j].real() + b[j].real();
                u[Nd + j] = a[j].imag() + b[j].imag();
                v[j] = a[j].imag() - b[j].imag();      // -Im V
                v[Nd + j] = b[j].real() - a[j].real(); // Re V
            }
        }
        if (K % 2) {
            const cfloat* m = t.data() + h * Nd;
            float* r = sym_r.data() + 2 * h * 2 * Nd;
            for (int64_t j = 0; j < Nd; ++j) {
                r[j] = m[j].real();
                r[Nd + j] = m[j].imag();
            }
        }
        sym_g.noalias() = sym_c * sym_r;
        for (int64_t i = 0; i < dims.Na; ++i) {
            const float* g = sym_g.data() + i * 2 * Nd;
            cfloat* o = M + i * Nd;
            for (int64_t j = 0; j < Nd; ++j)
                o[j] = cfloat(g[j], g[Nd + j]);
        }
    }

    void map(const cfloat* Y, cfloat* M)
    {
        // Cheap order: T = Y conj(Phi_d) (K x Nd), then M = Phi_a^H T.
        if (czt)
            czt->run(Y, t.data());
        else
            t.noalias() = ConstMap(Y, dims.K, dims.S) * pd_conj;
        if (symmetric) {
            map_symmetric(M);
            return;
        }
#ifdef EIGEN_VECTORIZE_AVX512
        OutMap(M, dims.Na, dims.Nd).noalias() = pa_h * t;
#else
        // Without AVX-512, Eigen's complex GEMM is slow (SSE2: 7.9 ms, AVX2: 1.5 ms for
        // the paper's angle side, against 2.0 ms and 0.7 ms for four real GEMMs on split
        // real/imaginary parts, measured on the AMD EPYC of docs/performance.md).
        tr = t.real();
        ti = t.imag();
        mr.noalias() = pr * tr;
        mr.noalias() -= pi * ti;
        mi.noalias() = pr * ti;
        mi.noalias() += pi * tr;
        for (int64_t i = 0; i < dims.Na; ++i)
            for (int64_t j = 0; j < dims.Nd; ++j)
                M[i * dims.Nd + j] = cfloat(mr(i, j), mi(i, j));
#endif
    }

#ifndef EIGEN_VECTORIZE_AVX512
    Eigen::MatrixXf pr, pi, tr, ti, mr, mi; // split parts of Phi_a^H, T and M (column-major)
#endif
};

angle_delay_mapper::angle_delay_mapper(const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& dims,
                                       bool allow_chirp_z, bool allow_symmetric)
{
    check_dims(dims);
    d_impl = std::make_unique<impl>(Phi_a, Phi_d, dims, allow_chirp_z, allow_symmetric);
}

angle_delay_mapper::~angle_delay_mapper() = default;
angle_delay_mapper::angle_delay_mapper(angle_delay_mapper&&) noexcept = default;
angle_delay_mapper& angle_delay_mapper::operator=(angle_delay_mapper&&) noexcept = default;

const map_dims& angle_delay_mapper::dims() const
{
    return d_impl->dims;
}

bool angle_delay_mapper::uses_chirp_z() const
{
    return bool(d_impl->czt);
}

bool angle_delay_mapper::uses_symmetric_array() const
{
    return d_impl->symmetric;
}

void angle_delay_mapper::map_complex(const cfloat* Y, cfloat* M)
{
    d_impl->map(Y, M);
}

void angle_delay_mapper::map_power(const cfloat* Y, float* L)
{
    const int64_t n = d_impl->dims.Na * d_impl->dims.Nd;
    auto& m = d_impl->scratch;
    if (m.size() < size_t(n))
        m.resize(n);
    map_complex(Y, m.data());
    Eigen::Map<Eigen::ArrayXf>(L, n) = Eigen::Map<const Eigen::ArrayXcf>(m.data(), n).abs2();
}

void angle_delay_map_complex(const cfloat* Y, const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& d, cfloat* M)
{
    angle_delay_mapper(Phi_a, Phi_d, d).map_complex(Y, M);
}

void angle_delay_map_power(const cfloat* Y, const cfloat* Phi_a, const cfloat* Phi_d, const map_dims& d, float* L)
{
    angle_delay_mapper(Phi_a, Phi_d, d).map_power(Y, L);
}

map_peak map_argmax(const float* L, int64_t n)
{
    if (n <= 0)
        throw std::invalid_argument("map_argmax: empty map");
    map_peak best{0, L[0]};
    for (int64_t i = 0; i < n; ++i) {
        const float v = L[i];
        if (std::isnan(v))
            return {i, v};
        if (v > best.value)
            best = {i, v};
    }
    return best;
}

} // namespace isac
} // namespace gr
