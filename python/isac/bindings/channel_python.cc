/*
 * numpy bindings of the streaming channel (include/gnuradio/isac/channel.h) and of the
 * random stream of simulation.frame_rng (numpy_stream.h).
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 *   reciprocal_filter_frames(Y, x)        reciprocal filter (3), bit-equal to the numpy model
 *   frame_messages(seed, stream, first, count, S)
 *                                          the messages of frames first.. (message_source)
 *   FrameChannel(...).run(X, seed, stream, first)
 *                                          scenes, Y_r (1) and the downlink's draws (4) of
 *                                          frames first.. (ula_channel)
 *   numpy_stream_state / numpy_stream_draws
 *                                          the stream itself, for the tests against numpy
 * The last three exist when the module was built with numpy's libnpyrandom
 * (numpy_stream_available() says so).
 */

#include "numpy_checks.h"

#include <gnuradio/isac/channel.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifdef ISAC_NUMPY_RANDOM
#include "numpy_stream.h"
#endif

namespace py = pybind11;
using gr::isac::cdouble;
using gr::isac::cfloat;

namespace {

using isac_bindings::carray;
using isac_bindings::fail;
using isac_bindings::n;
using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using zarray = py::array_t<cdouble, py::array::c_style | py::array::forcecast>;

//! Run frame(w, b) for b = w, w + W, ... on W threads (without the GIL).
template <typename Frame>
void split_frames(int64_t W, int64_t batch, Frame frame)
{
    auto work = [&](int64_t w) {
        for (int64_t b = w; b < batch; b += W)
            frame(w, b);
    };
    if (W <= 1) {
        work(0);
        return;
    }
    std::vector<std::thread> pool;
    for (int64_t w = 1; w < W; ++w)
        pool.emplace_back(work, w);
    work(0);
    for (auto& t : pool)
        t.join();
}

//! ``out`` as a writable C-contiguous complex64 array of the given shape (no copy), or a new one.
py::array_t<cfloat> output(const char* fn, const py::object& out, std::vector<int64_t> shape)
{
    if (out.is_none())
        return py::array_t<cfloat>(shape);
    auto a = py::array::ensure(out);
    bool ok = a && a.dtype().is(py::dtype::of<cfloat>()) && a.writeable() && (a.flags() & py::array::c_style) &&
              a.ndim() == int(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i)
        ok = a.shape(i) == shape[i];
    if (!ok) {
        std::string dims;
        for (auto d : shape)
            dims += (dims.empty() ? "" : ", ") + n(d);
        fail(fn, "out must be a writable C-contiguous complex64 array of shape (" + dims + ")");
    }
    return py::reinterpret_borrow<py::array_t<cfloat>>(a);
}

py::tuple reciprocal_frames(const carray& Y, const carray& x, double min_magnitude, int threads, const py::object& out_)
{
    const char* fn = "reciprocal_filter_frames";
    if (Y.ndim() != 3 || x.ndim() != 2)
        fail(fn, "Y must be (B, K, S) and x (B, S), got " + n(Y.ndim()) + " and " + n(x.ndim()) + " dimensions");
    const int64_t B = Y.shape(0), K = Y.shape(1), S = Y.shape(2);
    if (x.shape(0) != B || x.shape(1) != S)
        fail(fn, "x must have shape (" + n(B) + ", " + n(S) + "), got (" + n(x.shape(0)) + ", " + n(x.shape(1)) + ")");
    if (threads < 1)
        fail(fn, "threads must be >= 1, got " + n(threads));
    py::array_t<cfloat> out = output(fn, out_, {B, K, S});
    py::array_t<int64_t> nulled(B);
    const cfloat* y = Y.data();
    const cfloat* xs = x.data();
    cfloat* o = out.mutable_data();
    int64_t* nl = nulled.mutable_data();
    {
        isac_bindings::gil_release_for release(4 * B * K * S); // Y and out, complex64
        split_frames(std::min<int64_t>(threads, B), B, [&](int64_t, int64_t b) {
            nl[b] = gr::isac::reciprocal_filter(y + b * K * S, xs + b * S, K, S, min_magnitude, o + b * K * S);
        });
    }
    return py::make_tuple(out, nulled);
}

py::array_t<cfloat> array_frames(const carray& f, const carray& x, int threads, const py::object& out_)
{
    const char* fn = "array_frames";
    if (f.ndim() != 1 || x.ndim() != 2)
        fail(fn, "f must be (K,) and x (B, S), got " + n(f.ndim()) + " and " + n(x.ndim()) + " dimensions");
    if (threads < 1)
        fail(fn, "threads must be >= 1, got " + n(threads));
    const int64_t K = f.shape(0), B = x.shape(0), S = x.shape(1);
    py::array_t<cfloat> out = output(fn, out_, {B, K, S});
    const cfloat* fp = f.data();
    const cfloat* xp = x.data();
    cfloat* o = out.mutable_data();
    {
        isac_bindings::gil_release_for release(2 * B * K * S); // out, complex64
        split_frames(std::min<int64_t>(threads, B), B,
                     [&](int64_t, int64_t b) { gr::isac::array_frame(fp, xp + b * S, K, S, o + b * K * S); });
    }
    return out;
}

#ifdef ISAC_NUMPY_RANDOM
using isac_bindings::numpy_pcg64;
using isac_bindings::seed_sequence_pcg64;
using isac_bindings::u128;

py::object to_int(u128 v)
{
    return py::int_(uint64_t(v >> 64)).attr("__lshift__")(64).attr("__or__")(py::int_(uint64_t(v)));
}

std::vector<uint64_t> entropy(uint64_t seed, uint64_t stream, uint64_t index)
{
    return {seed, stream, index};
}

py::array_t<int32_t> frame_messages(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, int64_t S)
{
    if (count < 0 || S < 1)
        fail("frame_messages", "count must be >= 0 and S >= 1, got " + n(count) + ", " + n(S));
    py::array_t<int32_t> out({count, S});
    int32_t* o = out.mutable_data();
    {
        isac_bindings::gil_release_for release(count * S * 16); // ~16 words of generator work per draw
        std::vector<uint64_t> m(S);
        for (int64_t b = 0; b < count; ++b) {
            numpy_pcg64 g(seed_sequence_pcg64(entropy(seed, stream, first + b)));
            g.integers(3, S, m.data());
            for (int64_t s = 0; s < S; ++s)
                o[b * S + s] = int32_t(m[s]);
        }
    }
    return out;
}

/*
 * Both channels of streamed frames, drawn in the order of simulation.Simulator.frame:
 * messages (discarded), scene, sensing noise, comm angle, taps, comm noise.
 */
struct frame_channel {
    std::vector<double> positions;
    double wavelength, spacing;
    int64_t K, S, max_targets;
    double sector_lo, sector_hi, range_lo, range_hi, gain_variance, comm_lo, comm_hi, noise_power;
    std::vector<double> tap_variances;
    bool fixed = false;
    std::vector<double> fixed_angles, fixed_ranges;
    std::vector<cdouble> fixed_gains;
    std::vector<gr::isac::echo_synthesizer> synth; // one per worker thread
    std::vector<std::vector<double>> bufs;         // one work buffer per worker thread (kept between calls)
    std::mutex mu;

    frame_channel(const darray& pos, double wavelength_m, double spacing_hz, int64_t subcarriers, int64_t max_targets_,
                  std::pair<double, double> sector_rad, std::pair<double, double> range_m, double gain_variance_,
                  std::pair<double, double> comm_sector_rad, const darray& taps, double noise_power_,
                  const py::object& fixed_angles_rad, const py::object& fixed_ranges_m, const py::object& fixed_gains_)
        : wavelength(wavelength_m), spacing(spacing_hz), K(0), S(subcarriers), max_targets(max_targets_),
          sector_lo(sector_rad.first), sector_hi(sector_rad.second), range_lo(range_m.first), range_hi(range_m.second),
          gain_variance(gain_variance_), comm_lo(comm_sector_rad.first), comm_hi(comm_sector_rad.second),
          noise_power(noise_power_)
    {
        const char* fn = "FrameChannel";
        if (pos.ndim() != 1 || pos.shape(0) < 1)
            fail(fn, "positions_m must be a 1-D array of K >= 1 element positions (m)");
        K = pos.shape(0);
        positions.assign(pos.data(), pos.data() + K);
        if (S < 1)
            fail(fn, "subcarriers must be >= 1, got " + n(S));
        if (max_targets < 0)
            fail(fn, "max_targets must be >= 0, got " + n(max_targets));
        if (taps.ndim() != 1)
            fail(fn, "tap_variances must be 1-D");
        tap_variances.assign(taps.data(), taps.data() + taps.shape(0));
        if (!fixed_angles_rad.is_none()) {
            const darray a = darray::ensure(fixed_angles_rad), r = darray::ensure(fixed_ranges_m);
            const zarray g = zarray::ensure(fixed_gains_);
            if (!a || !r || !g || a.ndim() != 1 || r.ndim() != 1 || g.ndim() != 1 || r.shape(0) != a.shape(0) ||
                g.shape(0) != a.shape(0))
                fail(fn, "fixed_angles_rad, fixed_ranges_m and fixed_gains must be 1-D of equal lengths");
            fixed = true;
            fixed_angles.assign(a.data(), a.data() + a.shape(0));
            fixed_ranges.assign(r.data(), r.data() + r.shape(0));
            fixed_gains.assign(g.data(), g.data() + g.shape(0));
        }
        synth.emplace_back(positions.data(), K, S, wavelength, spacing); // checks K, S, wavelength
    }

    int64_t slots() const { return fixed ? int64_t(fixed_angles.size()) : max_targets; }

    py::tuple run(const carray& X, uint64_t seed, uint64_t stream, uint64_t first, int threads, const py::object& out)
    {
        const char* fn = "FrameChannel.run";
        if (X.ndim() != 3 || X.shape(1) != K || X.shape(2) != S)
            fail(fn, "X must have shape (B, " + n(K) + ", " + n(S) + ")");
        if (threads < 1)
            fail(fn, "threads must be >= 1, got " + n(threads));
        const int64_t B = X.shape(0), T = slots(), L = tap_variances.size();
        py::array_t<cfloat> Y = output(fn, out, {B, K, S});
        py::array_t<int64_t> counts(B);
        py::array_t<double> angles({B, T}), ranges({B, T}), phi(B);
        py::array_t<cdouble> gains({B, T}), taps({B, L}), comm_noise({B, S}), comm_signal({B, S});
        const cfloat* x = X.data();
        cfloat* y = Y.mutable_data();
        int64_t* cnt = counts.mutable_data();
        double *an = angles.mutable_data(), *ra = ranges.mutable_data(), *ph = phi.mutable_data();
        cdouble *ga = gains.mutable_data(), *tp = taps.mutable_data(), *cn = comm_noise.mutable_data(),
                *cs = comm_signal.mutable_data();
        std::memset(static_cast<void*>(ga), 0, sizeof(cdouble) * B * T);
        std::memset(static_cast<void*>(an), 0, sizeof(double) * B * T);
        std::memset(static_cast<void*>(ra), 0, sizeof(double) * B * T);
        const int64_t W = std::max<int64_t>(1, std::min<int64_t>(threads, B));
        {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(mu);
            while (int64_t(synth.size()) < W)
                synth.emplace_back(positions.data(), K, S, wavelength, spacing);
            const size_t need = size_t(2 * K * S + 2 * std::max(S, L) + 2 * T);
            if (int64_t(bufs.size()) < W)
                bufs.resize(W);
            for (int64_t w = 0; w < W; ++w)
                if (bufs[w].size() < need)
                    bufs[w].resize(need);
            split_frames(W, B, [&](int64_t w, int64_t b) {
                frame(synth[w], bufs[w].data(), x + b * K * S, seed, stream, first + b, y + b * K * S, cnt[b],
                      an + b * T, ra + b * T, ga + b * T, ph[b], tp + b * L, cn + b * S, cs + b * S);
            });
        }
        return py::make_tuple(Y, counts, angles, ranges, gains, phi, taps, comm_noise, comm_signal);
    }

    void frame(gr::isac::echo_synthesizer& syn, double* buf, const cfloat* X, uint64_t seed, uint64_t stream,
               uint64_t index, cfloat* Y, int64_t& count, double* angles, double* ranges, cdouble* gains, double& phi,
               cdouble* taps, cdouble* comm_noise, cdouble* comm_signal) const
    {
        numpy_pcg64 g(seed_sequence_pcg64(entropy(seed, stream, index)));
        double* nre = buf;
        double* nim = buf + K * S;
        double* a = buf + 2 * K * S; // max(S, L) doubles
        double* bb = a + std::max(S, int64_t(tap_variances.size()));
        // 1. the transmitter's messages (drawn by the message source; discarded here)
        g.integers(3, S, reinterpret_cast<uint64_t*>(nre)); // nre is overwritten below
        // 2. the scene (model/scene.py random_scene): T ~ U{0..T_max}, angles, ranges, gains
        if (fixed) {
            count = fixed_angles.size();
            for (int64_t t = 0; t < count; ++t) {
                angles[t] = fixed_angles[t];
                ranges[t] = fixed_ranges[t];
                gains[t] = fixed_gains[t];
            }
        } else {
            uint64_t t = 0;
            g.integers(uint64_t(max_targets), 1, &t);
            count = int64_t(t);
            for (int64_t i = 0; i < count; ++i)
                angles[i] = g.uniform(sector_lo, sector_hi);
            for (int64_t i = 0; i < count; ++i)
                ranges[i] = g.uniform(range_lo, range_hi);
            double* re = bb;
            double* im = bb + count;
            g.normals(re, count);
            g.normals(im, count);
            const double scale = std::sqrt(gain_variance / 2.0);
            for (int64_t i = 0; i < count; ++i)
                gains[i] = cdouble(scale * re[i], scale * im[i]);
        }
        // 3. the sensing echo (1) with its noise W ~ CN(0, N0)
        g.normals(nre, K * S);
        g.normals(nim, K * S);
        syn.sensing(X, count, angles, ranges, gains, nre, nim, std::sqrt(noise_power / 2.0), Y);
        // 4. the downlink (4): phi ~ U[comm sector], taps ~ CN(0, sigma_l^2), noise ~ CN(0, N0)
        phi = g.uniform(comm_lo, comm_hi);
        syn.project(X, phi, comm_signal);
        const int64_t L = tap_variances.size();
        g.normals(a, L);
        g.normals(bb, L);
        const double unit = std::sqrt(1.0 / 2.0);
        for (int64_t l = 0; l < L; ++l) {
            const double sv = std::sqrt(tap_variances[l]);
            taps[l] = cdouble(unit * a[l] * sv, unit * bb[l] * sv);
        }
        g.normals(a, S);
        g.normals(bb, S);
        const double cs = std::sqrt(noise_power / 2.0);
        for (int64_t s = 0; s < S; ++s)
            comm_noise[s] = cdouble(cs * a[s], cs * bb[s]);
    }
};

py::tuple stream_state(uint64_t seed, uint64_t stream, uint64_t index)
{
    const auto s = seed_sequence_pcg64(entropy(seed, stream, index));
    return py::make_tuple(to_int(s.state), to_int(s.inc));
}

py::tuple stream_draws(uint64_t seed, uint64_t stream, uint64_t index, int64_t integers, uint64_t high, int64_t normals,
                       int64_t uniforms)
{
    if (integers < 0 || normals < 0 || uniforms < 0)
        fail("numpy_stream_draws", "counts must be >= 0");
    py::array_t<int64_t> ints(integers);
    py::array_t<double> norm(normals), uni(uniforms);
    numpy_pcg64 g(seed_sequence_pcg64(entropy(seed, stream, index)));
    g.integers(high, integers, reinterpret_cast<uint64_t*>(ints.mutable_data()));
    g.normals(norm.mutable_data(), normals);
    for (int64_t i = 0; i < uniforms; ++i)
        uni.mutable_data()[i] = g.uniform(0.0, 1.0);
    return py::make_tuple(ints, norm, uni);
}
#endif

} // namespace

#ifdef ISAC_NUMPY_RANDOM
namespace isac_bindings {

namespace {
struct probe {
    uint64_t first;
    int calls;
};
uint64_t probe_next64(void* st)
{
    auto* p = static_cast<probe*>(st);
    return p->calls++ == 0 ? p->first : 0x8000000000000000ull; // later words: next_double = 0.5
}
uint32_t probe_next32(void* st)
{
    return uint32_t(probe_next64(st));
}
double probe_double(void* st)
{
    return double(probe_next64(st) >> 11) * (1.0 / 9007199254740992.0);
}

//! random_standard_normal on the 64-bit word r (then 0.5s): its value and whether it took more words.
bool slow_path(uint64_t r, double& x)
{
    probe p{r, 0};
    bitgen_t b{&p, probe_next64, probe_next32, probe_double, probe_next64};
    x = random_standard_normal(&b);
    return p.calls > 1;
}

ziggurat_tables probe_tables()
{
    ziggurat_tables z;
    z.inline_ok = true;
    for (uint64_t idx = 0; idx < 256; ++idx) {
        double x = 0.0;
        if (slow_path(idx | (uint64_t(1) << 9), x)) { // rabs = 1 is not on the fast path: never inline
            z.k[idx] = 0;
            z.w[idx] = 0.0;
            continue;
        }
        z.w[idx] = x;                            // x = 1 * w[idx]
        uint64_t lo = 1, hi = uint64_t(1) << 52; // smallest rabs off the fast path (2^52: none)
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2;
            if (slow_path(idx | (mid << 9), x))
                hi = mid;
            else
                lo = mid + 1;
        }
        z.k[idx] = lo;
    }
    // self-check of the inline evaluation against random_standard_normal on 20,000 words
    numpy_pcg64 g(seed_sequence_pcg64({20240521}));
    for (int i = 0; i < 20000 && z.inline_ok; ++i) {
        const uint64_t r = g.next64();
        const unsigned idx = unsigned(r & 0xff);
        const uint64_t rabs = (r >> 9) & 0x000fffffffffffffull;
        double ref = 0.0;
        const bool slow = slow_path(r, ref);
        if (rabs < z.k[idx]) {
            const double x = ((r >> 8) & 1) ? -(double(rabs) * z.w[idx]) : double(rabs) * z.w[idx];
            if (slow || std::memcmp(&x, &ref, sizeof x) != 0)
                z.inline_ok = false;
        }
    }
    return z;
}
} // namespace

const ziggurat_tables& ziggurat()
{
    static const ziggurat_tables tables = probe_tables();
    return tables;
}

} // namespace isac_bindings
#endif

void bind_channel(py::module& m)
{
    m.def("reciprocal_filter_frames", &reciprocal_frames, py::arg("Y"), py::arg("x"), py::arg("min_magnitude") = 1e-6,
          py::arg("threads") = 1, py::arg("out") = py::none(),
          R"doc(Reciprocal filter (3) of frames, the C++ twin of
gnuradio.isac.model.reciprocal.reciprocal_filter(Y, x, invalid="zero"), bit for bit.

Y: (B, K, S), x: (B, S), converted to complex64. Returns (Y~ (B, K, S) complex64, nulled
(B,) int64): subcarriers whose symbol is below min_magnitude in modulus or not finite are
set to 0 and counted. ``out``: a writable C-contiguous complex64 (B, K, S) array to write Y~
into (it is returned). The GIL is released for large batches (about 64 frames of 64 x 256 and up).)doc");
    m.def("array_frames", &array_frames, py::arg("f"), py::arg("x"), py::arg("threads") = 1,
          py::arg("out") = py::none(),
          R"doc(Transmitted array frames X = f x^T (B, K, S) complex64 of the precoder f (K,) and the
symbols x (B, S): gnuradio.isac.model.channels_stream.array_frame, bit for bit. ``out``: a
writable C-contiguous complex64 (B, K, S) array to write into. The GIL is released for large
batches (about 128 frames of 64 x 256 and up).)doc");
    m.def(
        "numpy_stream_available",
        []() {
#ifdef ISAC_NUMPY_RANDOM
            return true;
#else
            return false;
#endif
        },
        "True when the module was built with numpy's libnpyrandom (frame_messages, FrameChannel).");
#ifdef ISAC_NUMPY_RANDOM
    m.def("frame_messages", &frame_messages, py::arg("seed"), py::arg("stream"), py::arg("first"), py::arg("count"),
          py::arg("S"),
          R"doc(Messages of frames first..first+count-1: row b is
model.ofdm.random_messages(simulation.frame_rng(seed, stream name, first + b), S) as int32,
where `stream` is the stream's number (simulation.STREAMS). The GIL is released for large
counts (about 1000 frames of 256 and up).)doc");
    m.def("numpy_stream_state", &stream_state, py::arg("seed"), py::arg("stream"), py::arg("index"),
          "(state, inc) of PCG64 seeded by numpy's SeedSequence([seed, stream, index]) (for tests).");
    m.def("numpy_stream_draws", &stream_draws, py::arg("seed"), py::arg("stream"), py::arg("index"),
          py::arg("integers"), py::arg("high"), py::arg("normals"), py::arg("uniforms"),
          R"doc(From the generator of SeedSequence([seed, stream, index]): integers(0, high + 1,
size=integers), then standard_normal(normals), then uniform(0, 1, uniforms) (for tests).)doc");
    m.def(
        "numpy_stream_inline_ziggurat", []() { return isac_bindings::ziggurat().inline_ok; },
        "True when standard normals take the inline ziggurat fast path (it reproduces numpy's).");
    py::class_<frame_channel>(m, "FrameChannel", R"doc(The sensing echo (1) and the MISO downlink's
draws (4) of streamed frames, the C++ twin of gnuradio.isac.model.channels_stream.channel_frame.

FrameChannel(positions_m, wavelength_m, spacing_hz, subcarriers, max_targets, sector_rad,
range_m, gain_variance, comm_sector_rad, tap_variances, noise_power, fixed_angles_rad=None,
fixed_ranges_m=None, fixed_gains=None): the true array (element positions, m), the OFDM
numerology, the scene distribution (or a fixed scene), the tap variances and N0.

run(X, seed, stream, first, threads=1) on transmitted frames X (B, K, S) draws frame
first + b from SeedSequence([seed, stream, first + b]) in the order of
simulation.Simulator.frame and returns (Y_r (B, K, S) complex64, counts (B,), angles_rad (B, T),
ranges_m (B, T), gains (B, T) complex128, phi_rad (B,), taps (B, L) complex128,
comm_noise (B, S) complex128, comm_signal (B, S) complex128 = a(phi)^T X), T = max_targets
(or the fixed count); entries beyond counts[b] are 0. The downlink is completed by the caller
(y_c = beta (.) comm_signal + comm_noise, beta the DFT of the taps). The GIL is released;
`threads` worker threads split the frames; ``out``: a writable C-contiguous complex64 (B, K, S)
array for Y_r (returned as its first result).)doc")
        .def(py::init<const darray&, double, double, int64_t, int64_t, std::pair<double, double>,
                      std::pair<double, double>, double, std::pair<double, double>, const darray&, double,
                      const py::object&, const py::object&, const py::object&>(),
             py::arg("positions_m"), py::arg("wavelength_m"), py::arg("spacing_hz"), py::arg("subcarriers"),
             py::arg("max_targets"), py::arg("sector_rad"), py::arg("range_m"), py::arg("gain_variance"),
             py::arg("comm_sector_rad"), py::arg("tap_variances"), py::arg("noise_power"),
             py::arg("fixed_angles_rad") = py::none(), py::arg("fixed_ranges_m") = py::none(),
             py::arg("fixed_gains") = py::none())
        .def("run", &frame_channel::run, py::arg("X"), py::arg("seed"), py::arg("stream"), py::arg("first"),
             py::arg("threads") = 1, py::arg("out") = py::none());
#endif
}
