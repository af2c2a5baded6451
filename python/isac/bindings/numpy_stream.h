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
 *   Outputs are generated 256 at a time with four interleaved LCG lanes (state jumps by
 *   M^4), which breaks the multiply chain; the sequence is the same.
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

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" {
// numpy/random/distributions.h (libnpyrandom.a); declared here to keep Python.h and the numpy
// C API headers out of this translation unit
double random_standard_normal(bitgen_t* bitgen_state);
void random_bounded_uint64_fill(
    bitgen_t* bitgen_state, uint64_t off, uint64_t rng, intptr_t cnt, bool use_masked, uint64_t* out);
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
class numpy_pcg64
{
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
        for (int64_t i = 0; i < n; ++i) {
            const uint64_t r = next64();
            const unsigned idx = unsigned(r & 0xff);
            const uint64_t rabs = (r >> 9) & 0x000fffffffffffffull;
            if (rabs < z.k[idx]) {
                // -x when the sign bit is set, without a branch (the sign is a coin flip)
                const double x = double(rabs) * z.w[idx];
                uint64_t bits;
                std::memcpy(&bits, &x, sizeof bits);
                bits ^= ((r >> 8) & 1) << 63;
                std::memcpy(&out[i], &bits, sizeof bits);
            } else {
                d_replay = true; // the word is read again by numpy's ziggurat
                d_replayed = r;
                out[i] = random_standard_normal(&d_bitgen);
            }
        }
    }
    bitgen_t* bitgen() { return &d_bitgen; }

private:
    static constexpr int N = 256;
    static uint64_t output(u128 s)
    {
        const uint64_t hi = uint64_t(s >> 64), lo = uint64_t(s);
        const unsigned rot = unsigned(hi >> 58);
        const uint64_t x = hi ^ lo;
        return (x >> rot) | (x << ((64u - rot) & 63u));
    }
    void refill()
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

    u128 d_state, d_inc, d_M4, d_C4;
    uint64_t d_buf[N];
    int d_pos = N;
    bool d_has32 = false;
    uint32_t d_u32 = 0;
    bool d_replay = false;
    uint64_t d_replayed = 0;
    bitgen_t d_bitgen;
};

} // namespace isac_bindings

#endif
