/*
 * The random stream of simulation.frame_rng in C++: numpy's SeedSequence, its PCG64 bit
 * generator and numpy's own distribution functions (libnpyrandom, which numpy ships for C
 * extensions), so that a frame drawn here is the frame numpy draws, bit for bit (tested in
 * tests/test_kernels.py against numpy.random.Generator).
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 *   frame_rng(seed, stream, i) = Generator(PCG64(SeedSequence([seed, stream, i])))
 *
 * - SeedSequence: the entropy words (each integer as little-endian 32-bit words) are hashed
 *   into a pool of 4 words, and generate_state(4, uint64) gives the PCG64 seed (words 0, 1)
 *   and increment (words 2, 3); the constants are numpy's (those of O'Neill's seed_seq_fe).
 * - PCG64: the 128-bit LCG state' = state * M + inc, output XSL-RR of the new state;
 *   next_uint32 returns the low half of a 64-bit output and keeps the high half for the next
 *   call (numpy's has_uint32 / uinteger), next_double = (next_uint64 >> 11) * 2^-53.
 *   Outputs are generated 1024 at a time with interleaved LCG lanes (state jumps by M^L for L
 *   lanes: 16 in two groups of AVX-512 registers when the build has AVX-512, else 4), which
 *   breaks the multiply chain; the sequence is the same.
 * - Distributions: numpy's random_standard_normal (ziggurat) and random_bounded_uint64_fill
 *   (Lemire) are called on a bitgen_t over this generator. The ziggurat's fast path
 *   (99 % of draws: x = rabs * w[idx] when rabs < k[idx]) is evaluated inline with the tables
 *   read back from random_standard_normal itself at start-up (w[idx] from rabs = 1, k[idx] by
 *   bisection on rabs); every other draw is handed to random_standard_normal with its first
 *   64-bit word replayed. A self-check against random_standard_normal on 20,000 words turns
 *   the inline path off if it ever disagrees.
 */
#ifndef INCLUDED_ISAC_BINDINGS_NUMPY_STREAM_H
#define INCLUDED_ISAC_BINDINGS_NUMPY_STREAM_H

#include <numpy/random/bitgen.h>

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define ISAC_NUMPY_STREAM_AVX512 1 // 2 x 8 LCG lanes and eight ziggurat draws per instruction
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" {
// numpy/random/distributions.h (libnpyrandom.a); declared here to keep Python.h and the numpy
// C API headers out of this translation unit
double random_standard_normal(bitgen_t* bitgen_state);
void random_bounded_uint64_fill(bitgen_t* bitgen_state, uint64_t off, uint64_t rng, intptr_t cnt, bool use_masked,
                                uint64_t* out);
}

namespace isac_bindings {

using u128 = unsigned __int128;

//! PCG64 state after numpy's SeedSequence(entropy) seeding: (state, inc).
struct pcg64_seed {
    u128 state, inc;
};

//! numpy's SeedSequence(entropy).generate_state(4, uint64) fed to PCG64's seeding.
inline pcg64_seed seed_sequence_pcg64(const std::vector<uint64_t>& entropy_ints)
{
    constexpr uint32_t INIT_A = 0x43b0d7e5u, MULT_A = 0x931e8875u, INIT_B = 0x8b51f9ddu, MULT_B = 0x58f38dedu,
                       MIX_MULT_L = 0xca01f9ddu, MIX_MULT_R = 0x4973f715u;
    constexpr int XSHIFT = 16, POOL = 4;
    std::vector<uint32_t> words; // each integer as little-endian 32-bit words, 0 -> [0]
    for (uint64_t v : entropy_ints) {
        if (v == 0)
            words.push_back(0);
        while (v > 0) {
            words.push_back(uint32_t(v & 0xffffffffu));
            v >>= 32;
        }
    }
    uint32_t hash_const = INIT_A;
    auto hashmix = [&](uint32_t value) {
        value ^= hash_const;
        hash_const *= MULT_A;
        value *= hash_const;
        value ^= value >> XSHIFT;
        return value;
    };
    auto mix = [](uint32_t x, uint32_t y) {
        uint32_t r = MIX_MULT_L * x - MIX_MULT_R * y;
        r ^= r >> XSHIFT;
        return r;
    };
    uint32_t pool[POOL];
    for (int i = 0; i < POOL; ++i)
        pool[i] = hashmix(i < int(words.size()) ? words[i] : 0u);
    for (int src = 0; src < POOL; ++src)
        for (int dst = 0; dst < POOL; ++dst)
            if (src != dst)
                pool[dst] = mix(pool[dst], hashmix(pool[src]));
    for (size_t src = POOL; src < words.size(); ++src)
        for (int dst = 0; dst < POOL; ++dst)
            pool[dst] = mix(pool[dst], hashmix(words[src]));
    uint32_t state32[8];
    uint32_t hc = INIT_B;
    for (int i = 0; i < 8; ++i) {
        uint32_t v = pool[i % POOL];
        v ^= hc;
        hc *= MULT_B;
        v *= hc;
        v ^= v >> XSHIFT;
        state32[i] = v;
    }
    uint64_t w[4];
    for (int i = 0; i < 4; ++i)
        w[i] = uint64_t(state32[2 * i]) | (uint64_t(state32[2 * i + 1]) << 32);
    const u128 initstate = (u128(w[0]) << 64) | w[1];
    const u128 initseq = (u128(w[2]) << 64) | w[3];
    pcg64_seed out;
    out.inc = (initseq << 1) | 1u;
    out.state = 0;
    out.state = out.state * (u128(0x2360ED051FC65DA4ull) << 64 | 0x4385DF649FCCF645ull) + out.inc;
    out.state += initstate;
    out.state = out.state * (u128(0x2360ED051FC65DA4ull) << 64 | 0x4385DF649FCCF645ull) + out.inc;
    return out;
}

//! Ziggurat tables of numpy's random_standard_normal, read back from it (see the file comment).
struct ziggurat_tables {
    uint64_t k[256];
    double w[256];
    bool inline_ok; //!< the inline fast path reproduces random_standard_normal
};

//! The tables, probed once (thread-safe static initialisation).
const ziggurat_tables& ziggurat();

/*!
 * numpy's PCG64 with its Generator's draws. One instance per frame (or per thread).
 */
class numpy_pcg64 {
public:
    explicit numpy_pcg64(const pcg64_seed& seed) : d_state(seed.state), d_inc(seed.inc)
    {
        const u128 M = multiplier();
        const u128 M2 = M * M, M3 = M2 * M;
        d_M4 = M2 * M2;
        d_C4 = d_inc * (M3 + M2 + M + 1u);
        d_bitgen.state = this;
        d_bitgen.next_uint64 = &numpy_pcg64::bg_next64;
        d_bitgen.next_uint32 = &numpy_pcg64::bg_next32;
        d_bitgen.next_double = &numpy_pcg64::bg_double;
        d_bitgen.next_raw = &numpy_pcg64::bg_next64;
    }
    numpy_pcg64(const numpy_pcg64&) = delete;
    numpy_pcg64& operator=(const numpy_pcg64&) = delete;

    static constexpr u128 multiplier() { return (u128(0x2360ED051FC65DA4ull) << 64) | 0x4385DF649FCCF645ull; }

    uint64_t next64()
    {
        if (d_replay) {
            d_replay = false;
            return d_replayed;
        }
        if (d_pos == N)
            refill();
        return d_buf[d_pos++];
    }
    uint32_t next32()
    {
        if (d_has32) {
            d_has32 = false;
            return d_u32;
        }
        const uint64_t v = next64();
        d_has32 = true;
        d_u32 = uint32_t(v >> 32);
        return uint32_t(v & 0xffffffffu);
    }
    double next_double() { return double(next64() >> 11) * (1.0 / 9007199254740992.0); }
    //! Generator.uniform(low, high): low + (high - low) * next_double.
    double uniform(double low, double high) { return low + (high - low) * next_double(); }
    //! Generator.integers(0, high + 1, size=n) (int64, high >= 0).
    void integers(uint64_t high, int64_t n, uint64_t* out)
    {
        random_bounded_uint64_fill(&d_bitgen, 0, high, n, false, out);
    }
    //! n draws of Generator.standard_normal.
    void normals(double* out, int64_t n)
    {
        const ziggurat_tables& z = ziggurat();
        if (!z.inline_ok) {
            for (int64_t i = 0; i < n; ++i)
                out[i] = random_standard_normal(&d_bitgen);
            return;
        }
        int64_t i = 0;
#ifdef ISAC_NUMPY_STREAM_AVX512
        // eight words at a time: the lanes before the first slow draw are stored from the vector,
        // the slow draw goes to numpy's function (all eight are fast ~89 % of the time)
        const __m512i m8 = _mm512_set1_epi64(0xff), m52 = _mm512_set1_epi64(0x000fffffffffffffll),
                      one = _mm512_set1_epi64(1);
        while (i + 8 <= n) {
            if (d_pos + 8 > N) { // the last words of the buffer (and the refill), one by one
                out[i++] = normal_scalar(z);
                continue;
            }
            const __m512i r = _mm512_loadu_si512(d_buf + d_pos);
            const __m512i idx = _mm512_and_si512(r, m8);
            const __m512i rabs = _mm512_and_si512(_mm512_srli_epi64(r, 9), m52);
            const __m512i k = _mm512_i64gather_epi64(idx, z.k, 8);
            const unsigned fast = _mm512_cmplt_epu64_mask(rabs, k);
            const __m512d w = _mm512_i64gather_pd(idx, z.w, 8);
            const __m512d x = _mm512_mul_pd(_mm512_cvtepu64_pd(rabs), w);
            const __m512i sign = _mm512_slli_epi64(_mm512_and_si512(_mm512_srli_epi64(r, 8), one), 63);
            const __m512d y = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(x), sign));
            if (fast == 0xff) {
                _mm512_storeu_pd(out + i, y);
                d_pos += 8;
                i += 8;
                continue;
            }
            const int p = __builtin_ctz(~fast); // lanes before the first slow one, 0..7
            _mm512_mask_storeu_pd(out + i, __mmask8((1u << p) - 1u), y);
            d_pos += p;
            i += p;
            out[i++] = normal_scalar(z); // the slow draw (word d_buf[d_pos]) and the words it takes
        }
#endif
        for (; i < n; ++i)
            out[i] = normal_scalar(z);
    }
    bitgen_t* bitgen() { return &d_bitgen; }

private:
    //! One Generator.standard_normal draw: the ziggurat's fast path inline, the rest by numpy.
    double normal_scalar(const ziggurat_tables& z)
    {
        const uint64_t r = next64();
        const unsigned idx = unsigned(r & 0xff);
        const uint64_t rabs = (r >> 9) & 0x000fffffffffffffull;
        if (rabs < z.k[idx]) {
            // -x when the sign bit is set, without a branch (the sign is a coin flip)
            const double x = double(rabs) * z.w[idx];
            uint64_t bits;
            std::memcpy(&bits, &x, sizeof bits);
            bits ^= ((r >> 8) & 1) << 63;
            double y;
            std::memcpy(&y, &bits, sizeof bits);
            return y;
        }
        d_replay = true; // the word is read again by numpy's ziggurat
        d_replayed = r;
        return random_standard_normal(&d_bitgen);
    }

    static constexpr int N = 1024; // words per refill: the vector stores have left the store buffer when read
    static uint64_t output(u128 s)
    {
        const uint64_t hi = uint64_t(s >> 64), lo = uint64_t(s);
        const unsigned rot = unsigned(hi >> 58);
        const uint64_t x = hi ^ lo;
        return (x >> rot) | (x << ((64u - rot) & 63u));
    }
    void refill()
    {
#ifdef ISAC_NUMPY_STREAM_AVX512
        refill16();
#else
        refill4();
#endif
    }
#ifdef ISAC_NUMPY_STREAM_AVX512
    //! (hi, lo) of the 128-bit products of eight 64-bit lanes a with the constant m (mod 2^128 later)
    static void mul_64x64(__m512i a, uint64_t m, __m512i& lo, __m512i& hi)
    {
        const __m512i mask32 = _mm512_set1_epi64(0xffffffffll);
        const __m512i m0 = _mm512_set1_epi64(int64_t(m & 0xffffffffu)), m1 = _mm512_set1_epi64(int64_t(m >> 32));
        const __m512i a1 = _mm512_srli_epi64(a, 32);
        const __m512i p00 = _mm512_mul_epu32(a, m0), p01 = _mm512_mul_epu32(a, m1);
        const __m512i p10 = _mm512_mul_epu32(a1, m0), p11 = _mm512_mul_epu32(a1, m1);
        const __m512i mid = _mm512_add_epi64(
            _mm512_add_epi64(_mm512_srli_epi64(p00, 32), _mm512_and_si512(p01, mask32)), _mm512_and_si512(p10, mask32));
        hi = _mm512_add_epi64(_mm512_add_epi64(p11, _mm512_srli_epi64(p01, 32)),
                              _mm512_add_epi64(_mm512_srli_epi64(p10, 32), _mm512_srli_epi64(mid, 32)));
        lo = _mm512_or_si512(_mm512_slli_epi64(mid, 32), _mm512_and_si512(p00, mask32));
    }
    void refill16()
    {
        const u128 M = multiplier();
        if (!d_lanes16) { // M^16 and inc (M^15 + ... + 1), once per generator
            u128 p = 1, sum = 0;
            for (int j = 0; j < 16; ++j) {
                sum += p;
                p *= M;
            }
            d_M16 = p;
            d_C16 = d_inc * sum;
            d_lanes16 = true;
        }
        // two independent groups of eight lanes (words 16 m + j and 16 m + 8 + j), each stepped by
        // M^16: the two multiply chains overlap
        alignas(64) uint64_t hi[16], lo[16];
        u128 s = d_state;
        for (int j = 0; j < 16; ++j) {
            s = s * M + d_inc;
            hi[j] = uint64_t(s >> 64);
            lo[j] = uint64_t(s);
        }
        __m512i H0 = _mm512_load_si512(hi), L0 = _mm512_load_si512(lo);
        __m512i H1 = _mm512_load_si512(hi + 8), L1 = _mm512_load_si512(lo + 8);
        const uint64_t mh = uint64_t(d_M16 >> 64), ml = uint64_t(d_M16);
        const __m512i cl = _mm512_set1_epi64(int64_t(uint64_t(d_C16))), ch = _mm512_set1_epi64(int64_t(d_C16 >> 64));
        const __m512i mlv = _mm512_set1_epi64(int64_t(ml)), mhv = _mm512_set1_epi64(int64_t(mh));
        const __m512i onev = _mm512_set1_epi64(1);
        auto step = [&](__m512i& H, __m512i& L) { // state <- state * M^16 + C16 (mod 2^128)
            __m512i plo, phi;
            mul_64x64(L, ml, plo, phi);
            __m512i nh =
                _mm512_add_epi64(phi, _mm512_add_epi64(_mm512_mullo_epi64(H, mlv), _mm512_mullo_epi64(L, mhv)));
            const __m512i nl = _mm512_add_epi64(plo, cl);
            const __mmask8 carry = _mm512_cmplt_epu64_mask(nl, cl);
            nh = _mm512_add_epi64(nh, ch);
            H = _mm512_mask_add_epi64(nh, carry, nh, onev);
            L = nl;
        };
        for (int i = 0; i < N; i += 16) {
            // XSL-RR output of each lane's state
            _mm512_storeu_si512(d_buf + i, _mm512_rorv_epi64(_mm512_xor_si512(H0, L0), _mm512_srli_epi64(H0, 58)));
            _mm512_storeu_si512(d_buf + i + 8, _mm512_rorv_epi64(_mm512_xor_si512(H1, L1), _mm512_srli_epi64(H1, 58)));
            if (i + 16 == N) {
                _mm512_store_si512(hi, H1);
                _mm512_store_si512(lo, L1);
                d_state = (u128(hi[7]) << 64) | lo[7];
                break;
            }
            step(H0, L0);
            step(H1, L1);
        }
        d_pos = 0;
    }
#endif
    void refill4()
    {
        const u128 M = multiplier();
        u128 l0 = d_state * M + d_inc;
        u128 l1 = l0 * M + d_inc;
        u128 l2 = l1 * M + d_inc;
        u128 l3 = l2 * M + d_inc;
        for (int i = 0; i < N; i += 4) {
            d_buf[i] = output(l0);
            d_buf[i + 1] = output(l1);
            d_buf[i + 2] = output(l2);
            d_buf[i + 3] = output(l3);
            d_state = l3;
            l0 = l0 * d_M4 + d_C4;
            l1 = l1 * d_M4 + d_C4;
            l2 = l2 * d_M4 + d_C4;
            l3 = l3 * d_M4 + d_C4;
        }
        d_pos = 0;
    }
    static uint64_t bg_next64(void* st) { return static_cast<numpy_pcg64*>(st)->next64(); }
    static uint32_t bg_next32(void* st) { return static_cast<numpy_pcg64*>(st)->next32(); }
    static double bg_double(void* st) { return static_cast<numpy_pcg64*>(st)->next_double(); }

    u128 d_state, d_inc, d_M4, d_C4, d_M16 = 0, d_C16 = 0; // the 4- and 16-lane jumps
    bool d_lanes16 = false;
    alignas(64) uint64_t d_buf[N];
    int d_pos = N;
    bool d_has32 = false;
    uint32_t d_u32 = 0;
    bool d_replay = false;
    uint64_t d_replayed = 0;
    bitgen_t d_bitgen;
};

} // namespace isac_bindings

#endif
