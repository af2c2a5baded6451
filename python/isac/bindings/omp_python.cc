/*
 * numpy bindings of the OMP and dOMP kernels (include/gnuradio/isac/omp.h).
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "numpy_checks.h"

#include <gnuradio/isac/omp.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;
using gr::isac::cdouble;
using gr::isac::cfloat;
using gr::isac::map_dims;

namespace {

using isac_bindings::carray;
using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;

using isac_bindings::fail;
using isac_bindings::n;
using isac_bindings::problem;
using isac_bindings::run_frames;

problem check_inputs(const char* fn, const carray& Y, const carray& Pa, const carray& Pd, int iterations)
{
    problem p = isac_bindings::check_shapes(fn, Y, Pa, Pd);
    if (p.dims.Na == 0)
        fail(fn, "Phi_a has no columns (empty angle grid)");
    if (p.dims.Nd == 0)
        fail(fn, "Phi_d has no columns (empty delay grid)");
    if (iterations < 1)
        fail(fn, "iterations must be >= 1, got " + n(iterations));
    if (iterations > 64)
        fail(fn, "iterations must be <= 64, got " + n(iterations));
    return p; // Y's finiteness is checked by the run, without the GIL (check_finite)
}

//! After the GIL-free part of a run: the ValueError for a Y with NaN or Inf.
void check_finite(const char* fn, bool finite)
{
    if (!finite)
        fail(fn, "Y contains NaN or Inf");
}

int64_t workers(const char* fn, int threads, int64_t batch)
{
    if (threads < 1)
        fail(fn, "threads must be >= 1, got " + n(threads));
    return std::max<int64_t>(1, std::min<int64_t>(threads, batch));
}

struct omp_arrays {
    py::array_t<int64_t> ai, di;
    py::array_t<double> peaks;
    py::array_t<cdouble> gains;
    int64_t T;
    // raw pointers, taken with the GIL held
    int64_t *pai, *pdi;
    double* ppk;
    cdouble* pg;

    omp_arrays(int64_t B, int64_t T)
        : ai({B, T}), di({B, T}), peaks({B, T}), gains({B, T, T}), T(T), pai(ai.mutable_data()), pdi(di.mutable_data()),
          ppk(peaks.mutable_data()), pg(gains.mutable_data())
    {
    }
    gr::isac::omp_output frame(int64_t b) const { return {pai + b * T, pdi + b * T, ppk + b * T, pg + b * T * T}; }
};

/*
 * A dictionary pair with one kernel per worker thread, kept between calls (the
 * OmpKernel / DompKernel classes) or built for one call (the omp / domp functions).
 */
struct omp_runner {
    carray Pa, Pd;
    std::vector<gr::isac::omp_kernel> kernels;
    std::mutex mu;

    omp_runner(const carray& pa, const carray& pd) : Pa(pa), Pd(pd) {}

    py::tuple run(const carray& Y, int iterations, int threads)
    {
        const problem p = check_inputs("omp", Y, Pa, Pd, iterations);
        const int64_t W = workers("omp", threads, p.batch);
        const int64_t T = iterations;
        omp_arrays o(p.batch, T);
        const cfloat* y = Y.data();
        const int64_t step = p.dims.K * p.dims.S;
        bool finite;
        {
            py::gil_scoped_release release;
            finite = isac_bindings::all_finite(y, Y.size());
            if (finite) {
                std::lock_guard<std::mutex> lock(mu); // one call at a time per instance
                while (int64_t(kernels.size()) < W)
                    kernels.emplace_back(Pa.data(), Pd.data(), p.dims);
                run_frames(kernels, W, p.batch,
                           [&](gr::isac::omp_kernel& k, int64_t b) { k.run(y + b * step, iterations, o.frame(b)); });
            }
        }
        check_finite("omp", finite);
        return py::make_tuple(o.ai, o.di, o.peaks, o.gains);
    }
};

struct domp_arrays {
    py::array_t<double> th, ta, peaks;
    py::array_t<cdouble> gains;
    py::array_t<int64_t> ai, di;
    int64_t T;
    double *pth, *pta, *ppk;
    cdouble* pg;
    int64_t *pai, *pdi;

    domp_arrays(int64_t B, int64_t T)
        : th({B, T}), ta({B, T}), peaks({B, T}), gains({B, T, T}), ai({B, T}), di({B, T}), T(T), pth(th.mutable_data()),
          pta(ta.mutable_data()), ppk(peaks.mutable_data()), pg(gains.mutable_data()), pai(ai.mutable_data()),
          pdi(di.mutable_data())
    {
    }
    gr::isac::domp_output frame(int64_t b) const
    {
        return {pth + b * T, pta + b * T, ppk + b * T, pg + b * T * T, pai + b * T, pdi + b * T};
    }
};

void check_vector(const char* fn, const char* name, const darray& v, int64_t len, const char* what)
{
    if (v.ndim() != 1 || v.shape(0) != len)
        fail(fn, std::string(name) + " must have shape (" + n(len) + ",) (" + what + "), got " +
                     (v.ndim() == 1 ? "(" + n(v.shape(0)) + ",)" : n(v.ndim()) + " dimension(s)"));
    for (int64_t i = 0; i < len; ++i)
        if (!std::isfinite(v.data()[i]))
            fail(fn, std::string(name) + " contains NaN or Inf");
}

struct domp_runner {
    carray Pa, Pd;
    darray angles, delays, positions;
    double wavelength, spacing, temperature;
    std::pair<int64_t, int64_t> half_widths;
    std::vector<gr::isac::domp_kernel> kernels;
    std::mutex mu;

    domp_runner(const carray& pa, const carray& pd, const darray& angles, const darray& delays, const darray& positions,
                double wavelength, double spacing, std::pair<int64_t, int64_t> half_widths, double temperature)
        : Pa(pa), Pd(pd), angles(angles), delays(delays), positions(positions), wavelength(wavelength),
          spacing(spacing), temperature(temperature), half_widths(half_widths)
    {
        const char* fn = "domp";
        if (Pa.ndim() != 2)
            fail(fn, "Phi_a must have shape (K, Na), got " + n(Pa.ndim()) + " dimension(s)");
        if (Pd.ndim() != 2)
            fail(fn, "Phi_d must have shape (S, Nd), got " + n(Pd.ndim()) + " dimension(s)");
        check_vector(fn, "angles_rad", angles, Pa.shape(1), "one angle per column of Phi_a");
        check_vector(fn, "delays_s", delays, Pd.shape(1), "one delay per column of Phi_d");
        check_vector(fn, "positions_m", positions, Pa.shape(0), "one position per antenna");
        if (!(wavelength > 0.0) || !std::isfinite(wavelength))
            fail(fn, "wavelength_m must be finite and > 0, got " + std::to_string(wavelength));
        if (!std::isfinite(spacing))
            fail(fn, "spacing_hz must be finite");
        if (half_widths.first < 0 || half_widths.second < 0)
            fail(fn, "half_widths must be >= 0, got (" + n(half_widths.first) + ", " + n(half_widths.second) + ")");
        if (!(temperature > 0.0) || !std::isfinite(temperature))
            fail(fn, "temperature must be finite and > 0, got " + std::to_string(temperature));
    }

    /*
     * Map rows of the a-priori sector [lo, hi] (rad) per frame, as the trainer's
     * sector_rows: first grid angle >= lo to last grid angle <= hi; a sector between two
     * grid angles gets the grid angle nearest to its centre. None: every row.
     */
    std::vector<std::pair<int64_t, int64_t>> sector_rows(const py::object& sector, int64_t batch) const
    {
        const int64_t Na = angles.shape(0);
        if (sector.is_none())
            return {{0, Na - 1}};
        const darray sec = darray::ensure(sector);
        if (!sec || !((sec.ndim() == 1 && sec.shape(0) == 2) ||
                      (sec.ndim() == 2 && sec.shape(0) == batch && sec.shape(1) == 2)))
            fail("domp", "sector_rad must be None, (lo, hi) or shape (" + n(batch) + ", 2) (rad)");
        const double* g = angles.data();
        for (int64_t i = 1; i < Na; ++i)
            if (!(g[i] > g[i - 1]))
                fail("domp", "sector_rad needs an ascending angle grid (angles_rad)");
        std::vector<std::pair<int64_t, int64_t>> rows;
        for (int64_t b = 0; b < (sec.ndim() == 1 ? 1 : batch); ++b) {
            const double lo = sec.data()[2 * b], hi = sec.data()[2 * b + 1];
            if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
                fail("domp", "sector_rad must be finite with lo <= hi, got (" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + ")");
            int64_t first = std::lower_bound(g, g + Na, lo) - g;
            int64_t last = int64_t(std::upper_bound(g, g + Na, hi) - g) - 1;
            if (last < first) {
                const double mid = 0.5 * (lo + hi);
                int64_t best = 0;
                for (int64_t i = 1; i < Na; ++i)
                    if (std::abs(g[i] - mid) < std::abs(g[best] - mid))
                        best = i;
                first = last = best;
            }
            rows.emplace_back(first, last);
        }
        return rows;
    }

    py::tuple run(const carray& Y, int iterations, int threads, const py::object& sector)
    {
        const problem p = check_inputs("domp", Y, Pa, Pd, iterations);
        const int64_t W = workers("domp", threads, p.batch);
        const int64_t T = iterations;
        domp_arrays o(p.batch, T);
        const gr::isac::domp_params prm{angles.data(), delays.data(),     positions.data(),   wavelength,
                                        spacing,       half_widths.first, half_widths.second, temperature};
        const std::vector<std::pair<int64_t, int64_t>> rows = sector_rows(sector, p.batch);
        const cfloat* y = Y.data();
        const int64_t step = p.dims.K * p.dims.S;
        bool finite;
        {
            py::gil_scoped_release release;
            finite = isac_bindings::all_finite(y, Y.size());
            if (finite) {
                std::lock_guard<std::mutex> lock(mu); // one call at a time per instance
                while (int64_t(kernels.size()) < W)
                    kernels.emplace_back(Pa.data(), Pd.data(), p.dims, prm);
                run_frames(kernels, W, p.batch, [&](gr::isac::domp_kernel& k, int64_t b) {
                    const auto& r = rows[rows.size() == 1 ? 0 : b];
                    k.run(y + b * step, iterations, o.frame(b), r.first, r.second);
                });
            }
        }
        check_finite("domp", finite);
        return py::make_tuple(o.th, o.ta, o.peaks, o.gains, o.ai, o.di);
    }
};

//! Largest |re|, |im| of each frame of Y (B, ...) complex64, NaN when the frame has a NaN (as
//! numpy's abs(Y.view(float32)).max(axis=1)): max_abs_bits of each frame.
py::array_t<float> frame_max_abs(const carray& Y)
{
    if (Y.ndim() < 1)
        fail("frame_max_abs", "Y must have a frame axis (B, ...)");
    const int64_t B = Y.shape(0), words = B ? 2 * (Y.size() / B) : 0;
    py::array_t<float> out(B);
    const uint32_t* u = reinterpret_cast<const uint32_t*>(Y.data());
    float* o = out.mutable_data();
    {
        isac_bindings::gil_release_for release(B * words);
        for (int64_t b = 0; b < B; ++b) {
            const uint32_t top = isac_bindings::max_abs_bits(u + b * words, words);
            float v;
            std::memcpy(&v, &top, sizeof v);
            o[b] = top > isac_bindings::FLOAT_INF_BITS ? std::numeric_limits<float>::quiet_NaN() : v;
        }
    }
    return out;
}

} // namespace

void bind_omp(py::module& m)
{
    m.def("frame_max_abs", &frame_max_abs, py::arg("Y"),
          R"doc(Largest |real| or |imaginary| part of each frame of Y (B, ...) (converted to
complex64): a (B,) float32 array, NaN for a frame that has a NaN (numpy's
abs(Y.view(float32)).reshape(B, -1).max(axis=1)). The GIL is released for large Y.)doc");
    m.def(
        "omp",
        [](const carray& Y, const carray& Pa, const carray& Pd, int iterations, int threads) {
            return omp_runner(Pa, Pd).run(Y, iterations, threads);
        },
        py::arg("Y"), py::arg("Phi_a"), py::arg("Phi_d"), py::arg("iterations"), py::arg("threads") = 1,
        R"doc(Baseline OMP (Algorithm 1), the C++ twin of gnuradio.isac.model.omp.omp.

Y: (K, S) or (B, K, S) reciprocal-filtered frames; Phi_a: (K, Na); Phi_d: (S, Nd);
inputs are converted to complex64. Runs `iterations` (T_max, 1..64) iterations per frame.
Returns (angle_index, delay_index, peaks, gains): (B, T) int64, (B, T) int64, (B, T)
float64 (residual map maximum at each iteration, before selection) and (B, T, T)
complex128 (gains[b, i, :i+1]: joint LS gains after iteration i); B = 1 for a 2-D Y.
`threads` worker threads split the frames (default 1). The GIL is released.
Raises ValueError (message names the argument) on shape mismatch, iterations out of
range, or a non-finite Y.)doc");

    m.def(
        "domp",
        [](const carray& Y, const carray& Pa, const carray& Pd, const darray& angles, const darray& delays,
           const darray& positions, double wavelength, double spacing, int iterations,
           std::pair<int64_t, int64_t> half_widths, double temperature, int threads, const py::object& sector) {
            return domp_runner(Pa, Pd, angles, delays, positions, wavelength, spacing, half_widths, temperature)
                .run(Y, iterations, threads, sector);
        },
        py::arg("Y"), py::arg("Phi_a"), py::arg("Phi_d"), py::arg("angles_rad"), py::arg("delays_s"),
        py::arg("positions_m"), py::arg("wavelength_m"), py::arg("spacing_hz"), py::arg("iterations"),
        py::arg("half_widths"), py::arg("temperature"), py::arg("threads") = 1, py::arg("sector_rad") = py::none(),
        R"doc(Inference step of differentiable OMP (Sec. IV-B), the C++ twin of
gnuradio.isac.model.domp.domp_inference.

Y, Phi_a, Phi_d as for omp; angles_rad (Na,) and delays_s (Nd,) the grids of the
dictionary columns; positions_m (K,) element positions, wavelength_m, spacing_hz the
steering model a_k = exp(-j2pi p_k sin(theta)/lambda), rho_s = exp(-j2pi s spacing tau)
of the recomputed atoms; half_widths (wa, wd) window half-widths in pixels;
temperature of the softmax on the map normalised to its maximum; sector_rad None,
(lo, hi) or (B, 2) rad restricts the argmax to the grid angles inside the a-priori
sector (as the trainer does; windows may extend beyond it).
Returns (angles_rad, delays_s, peaks, gains, angle_index, delay_index): (B, T) float64
soft estimates, (B, T) float64 peaks, (B, T, T) complex128 gains, (B, T) int64 argmax
cells. The GIL is released. Raises ValueError naming the argument on bad input.)doc");

    py::class_<omp_runner>(m, "OmpKernel", R"doc(OMP with dictionaries prepared once: for a
receiver that calls it chunk after chunk. OmpKernel(Phi_a, Phi_d)(Y, iterations,
threads=1) returns what omp(Y, Phi_a, Phi_d, iterations, threads) returns. Calls on one
instance from several Python threads run one after the other (it keeps work buffers).)doc")
        .def(py::init<const carray&, const carray&>(), py::arg("Phi_a"), py::arg("Phi_d"))
        .def("__call__", &omp_runner::run, py::arg("Y"), py::arg("iterations"), py::arg("threads") = 1);

    py::class_<domp_runner>(m, "DompKernel", R"doc(dOMP inference with dictionaries and steering
model prepared once. DompKernel(Phi_a, Phi_d, angles_rad, delays_s, positions_m,
wavelength_m, spacing_hz, half_widths, temperature)(Y, iterations, threads=1) returns what
domp(...) returns. Calls on one instance run one after the other.)doc")
        .def(py::init<const carray&, const carray&, const darray&, const darray&, const darray&, double, double,
                      std::pair<int64_t, int64_t>, double>(),
             py::arg("Phi_a"), py::arg("Phi_d"), py::arg("angles_rad"), py::arg("delays_s"), py::arg("positions_m"),
             py::arg("wavelength_m"), py::arg("spacing_hz"), py::arg("half_widths"), py::arg("temperature"))
        .def("__call__", &domp_runner::run, py::arg("Y"), py::arg("iterations"), py::arg("threads") = 1,
             py::arg("sector_rad") = py::none());
}
