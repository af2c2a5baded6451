/*
 * Shared pieces of the numpy kernel bindings: argument checks (errors are ValueErrors that name
 * the function and the argument, e.g. "omp: Phi_a has 63 rows but Y has 64 (K must match)")
 * and the per-frame worker pool.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#ifndef INCLUDED_ISAC_BINDINGS_NUMPY_CHECKS_H
#define INCLUDED_ISAC_BINDINGS_NUMPY_CHECKS_H

#include <gnuradio/isac/angle_delay_map.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace isac_bindings {

namespace py = pybind11;

// Inputs of any numeric dtype or layout are converted to C-contiguous complex64.
using carray = py::array_t<gr::isac::cfloat, py::array::c_style | py::array::forcecast>;

[[noreturn]] inline void fail(const char* fn, const std::string& what)
{
    throw py::value_error(std::string(fn) + ": " + what);
}

inline std::string n(int64_t v)
{
    return std::to_string(v);
}

// Sizes of one kernel call on Y (K, S) or (B, K, S) with dictionaries Phi_a (K, Na), Phi_d (S, Nd).
struct problem {
    gr::isac::map_dims dims;
    int64_t batch; // number of frames (1 for a 2-D Y)
    bool batched;  // Y was (B, K, S)
};

inline problem check_shapes(const char* fn, const carray& Y, const carray& Pa, const carray& Pd)
{
    if (Y.ndim() != 2 && Y.ndim() != 3)
        fail(fn, "Y must have shape (K, S) or (B, K, S), got " + n(Y.ndim()) + " dimension(s)");
    if (Pa.ndim() != 2)
        fail(fn, "Phi_a must have shape (K, Na), got " + n(Pa.ndim()) + " dimension(s)");
    if (Pd.ndim() != 2)
        fail(fn, "Phi_d must have shape (S, Nd), got " + n(Pd.ndim()) + " dimension(s)");
    problem p;
    p.batched = Y.ndim() == 3;
    p.batch = p.batched ? Y.shape(0) : 1;
    p.dims = {Y.shape(Y.ndim() - 2), Y.shape(Y.ndim() - 1), Pa.shape(1), Pd.shape(1)};
    if (Pa.shape(0) != p.dims.K)
        fail(fn, "Phi_a has " + n(Pa.shape(0)) + " rows but Y has " + n(p.dims.K) + " (K must match)");
    if (Pd.shape(0) != p.dims.S)
        fail(fn, "Phi_d has " + n(Pd.shape(0)) + " rows but Y has " + n(p.dims.S) + " columns (S must match)");
    return p;
}

/*
 * Largest magnitude bit pattern (bits & 0x7fffffff) of the n floats at u: non-negative floats
 * order like their bits, with +inf = 0x7f800000 and every NaN above it, so this one integer
 * maximum (which the compiler vectorises) gives the largest |value| and tells NaN / Inf apart.
 * Needs no GIL.
 */
inline uint32_t max_abs_bits(const uint32_t* u, int64_t n)
{
    uint32_t top = 0;
    for (int64_t i = 0; i < n; ++i)
        top = std::max(top, u[i] & 0x7fffffffu);
    return top;
}

//! +inf's bit pattern: max_abs_bits above it is a NaN, equal to it an Inf.
constexpr uint32_t FLOAT_INF_BITS = 0x7f800000u;

/*
 * True when no real or imaginary part of the n complex64 values at y is NaN or Inf, in one
 * max_abs_bits pass (an early-exit loop of std::isfinite does not vectorise: 10 us per 64 x 256
 * frame against 1.6 us with AVX-512, 2.7 us with the portable SSE2 build). Needs no GIL.
 */
inline bool all_finite(const gr::isac::cfloat* y, int64_t n)
{
    return max_abs_bits(reinterpret_cast<const uint32_t*>(y), 2 * n) < FLOAT_INF_BITS;
}

/*
 * Work below this many 32-bit words (a few hundred microseconds) runs with the GIL held: a
 * thread that releases the GIL for a short step must win it back from the threads that took it
 * meanwhile (up to Python's switch interval each time), which cost the streaming receiver's
 * workers more than the step itself.
 */
constexpr int64_t GIL_RELEASE_MIN_WORDS = int64_t(1) << 22;

/*
 * Releases the GIL for its scope when the step touches at least GIL_RELEASE_MIN_WORDS 32-bit
 * words (a long step); keeps it for a short one.
 */
class gil_release_for {
public:
    explicit gil_release_for(int64_t words)
    {
        if (words >= GIL_RELEASE_MIN_WORDS)
            d_release.emplace();
    }

private:
    std::optional<py::gil_scoped_release> d_release;
};

/*
 * Runs frame(kernels[w], b) for frames b = w, w + W, ... (W worker threads, one kernel
 * each, so no shared buffers). Called without the GIL.
 */
template <typename Kernel, typename Frame>
void run_frames(std::vector<Kernel>& kernels, int64_t W, int64_t batch, Frame frame)
{
    auto work = [&](int64_t w) {
        for (int64_t b = w; b < batch; b += W)
            frame(kernels[w], b);
    };
    if (W == 1) {
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

} // namespace isac_bindings

#endif
