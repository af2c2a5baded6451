/*
 * Reciprocal filter (3) of one frame, and the transmitted frame X = f x^T: see channel.h.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * The division is numpy's complex64 division (Smith's algorithm in single precision):
 * for |x_r| >= |x_i|: rat = x_i / x_r, scl = 1 / (x_r + x_i rat),
 *   out = ((y_r + y_i rat) scl, (y_i - y_r rat) scl);
 * else: rat = x_r / x_i, scl = 1 / (x_i + x_r rat),
 *   out = ((y_r rat + y_i) scl, (y_i rat - y_r) scl).
 * Both branches are out = ((y_r p + y_i q) scl, (y_i p - y_r q) scl) with (p, q) = (1, rat)
 * or (rat, 1) (products with 1 are exact), so rat and scl are computed once per subcarrier.
 * X = f x^T is numpy's complex64 product (f_r x_r - f_i x_i, f_r x_i + f_i x_r).
 * This file is compiled with -ffp-contract=off: a fused multiply-add would round differently
 * from numpy's separate multiply and add.
 */

#include <gnuradio/isac/channel.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#endif

namespace gr {
namespace isac {

int64_t reciprocal_filter(const cfloat* Y, const cfloat* x, int64_t K, int64_t S, double min_magnitude, cfloat* out)
{
    if (K < 0 || S < 0)
        throw std::invalid_argument("reciprocal_filter: K and S must be >= 0");
    // model/reciprocal.py: |x| < MIN_SYMBOL_MAGNITUDE (compared in float32) or non-finite
    const float min_mag = float(min_magnitude);
    std::vector<float> p(S), q(S), scl(S);
    std::vector<unsigned char> bad(S);
    int64_t nulled = 0;
    for (int64_t s = 0; s < S; ++s) {
        const float xr = x[s].real(), xi = x[s].imag();
        bad[s] = !(std::isfinite(xr) && std::isfinite(xi)) || std::hypot(xr, xi) < min_mag;
        if (bad[s]) {
            ++nulled;
            p[s] = q[s] = scl[s] = 0.0f;
            continue;
        }
        if (std::fabs(xr) >= std::fabs(xi)) {
            const float rat = xi / xr;
            scl[s] = 1.0f / (xr + xi * rat);
            p[s] = 1.0f;
            q[s] = rat;
        } else {
            const float rat = xr / xi;
            scl[s] = 1.0f / (xi + xr * rat);
            p[s] = rat;
            q[s] = 1.0f;
        }
    }
    const float* ps = p.data();
    const float* qs = q.data();
    const float* ss = scl.data();
    for (int64_t k = 0; k < K; ++k) {
        const float* __restrict y = reinterpret_cast<const float*>(Y + k * S);
        float* __restrict o = reinterpret_cast<float*>(out + k * S);
        for (int64_t s = 0; s < S; ++s) {
            const float yr = y[2 * s], yi = y[2 * s + 1];
            o[2 * s] = (yr * ps[s] + yi * qs[s]) * ss[s];
            o[2 * s + 1] = (yi * ps[s] - yr * qs[s]) * ss[s];
        }
        if (nulled)
            for (int64_t s = 0; s < S; ++s)
                if (bad[s])
                    o[2 * s] = o[2 * s + 1] = 0.0f;
    }
    return nulled;
}

namespace {
// GCC turns the complex product of a plain loop into fused vfmaddsub even with
// -ffp-contract=off; the scalar loop is kept scalar, the AVX-512 one multiplies and adds apart.
__attribute__((optimize("no-tree-vectorize"))) void array_row_scalar(float fr, float fi, const float* xs, int64_t S,
                                                                     float* o)
{
    for (int64_t s = 0; s < S; ++s) {
        const float xr = xs[2 * s], xi = xs[2 * s + 1];
        o[2 * s] = fr * xr - fi * xi;
        o[2 * s + 1] = fr * xi + fi * xr;
    }
}
} // namespace

void array_frame(const cfloat* f, const cfloat* x, int64_t K, int64_t S, cfloat* out)
{
    const float* xs = reinterpret_cast<const float*>(x);
    for (int64_t k = 0; k < K; ++k) {
        const float fr = f[k].real(), fi = f[k].imag();
        float* o = reinterpret_cast<float*>(out + k * S);
        int64_t s = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
        // (fr x_r, fr x_i) + (-(fi x_i), fi x_r): the product's parts, each rounded once
        const __m512 vfr = _mm512_set1_ps(fr), vfi = _mm512_set1_ps(fi);
        const __m512 neg_re = _mm512_castsi512_ps(_mm512_set1_epi64(0x80000000ll)); // sign of the real lanes
        for (; s + 8 <= S; s += 8) {
            const __m512 v = _mm512_loadu_ps(xs + 2 * s);
            const __m512 swapped = _mm512_permute_ps(v, 0xB1); // (x_i, x_r) pairs
            const __m512 a = _mm512_mul_ps(vfr, v);
            const __m512 b = _mm512_xor_ps(_mm512_mul_ps(vfi, swapped), neg_re);
            _mm512_storeu_ps(o + 2 * s, _mm512_add_ps(a, b));
        }
#endif
        array_row_scalar(fr, fi, xs + 2 * s, S - s, o + 2 * s);
    }
}

} // namespace isac
} // namespace gr
