/*
 * numpy bindings of the angle-delay-Doppler kernels for frames of M OFDM symbols
 * (include/gnuradio/isac/angle_delay_doppler_map.h, omp_doppler_kernel in omp.h).
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "numpy_checks.h"

#include <gnuradio/isac/angle_delay_doppler_map.h>
#include <gnuradio/isac/omp.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace py = pybind11;
using gr::isac::cdouble;
using gr::isac::cfloat;
using gr::isac::doppler_dims;

namespace {

using isac_bindings::carray;
using isac_bindings::fail;
using isac_bindings::n;
using isac_bindings::run_frames;

// Sizes of one call on Y (M, K, S) or (B, M, K, S).
struct doppler_problem {
    doppler_dims dims;
    int64_t batch; // number of frames (1 for a 3-D Y)
    bool batched;  // Y was (B, M, K, S)
};

void check_dictionaries(const char* fn, const carray& Pa, const carray& Pd, const carray& Pv)
{
    if (Pa.ndim() != 2)
        fail(fn, "Phi_a must have shape (K, Na), got " + n(Pa.ndim()) + " dimension(s)");
    if (Pd.ndim() != 2)
        fail(fn, "Phi_d must have shape (S, Nd), got " + n(Pd.ndim()) + " dimension(s)");
    if (Pv.ndim() != 2)
        fail(fn, "Phi_v must have shape (M, Nv), got " + n(Pv.ndim()) + " dimension(s)");
}

doppler_dims dictionary_dims(const carray& Pa, const carray& Pd, const carray& Pv)
{
    return {Pv.shape(0), Pa.shape(0), Pd.shape(0), Pa.shape(1), Pd.shape(1), Pv.shape(1)};
}

doppler_problem check_shapes(const char* fn, const carray& Y, const carray& Pa, const carray& Pd, const carray& Pv)
{
    if (Y.ndim() != 3 && Y.ndim() != 4)
        fail(fn, "Y must have shape (M, K, S) or (B, M, K, S), got " + n(Y.ndim()) + " dimension(s)");
    check_dictionaries(fn, Pa, Pd, Pv);
    doppler_problem p;
    p.batched = Y.ndim() == 4;
    p.batch = p.batched ? Y.shape(0) : 1;
    const int64_t r = Y.ndim();
    p.dims = {Y.shape(r - 3), Y.shape(r - 2), Y.shape(r - 1), Pa.shape(1), Pd.shape(1), Pv.shape(1)};
    if (Pa.shape(0) != p.dims.K)
        fail(fn, "Phi_a has " + n(Pa.shape(0)) + " rows but Y has " + n(p.dims.K) + " (K must match)");
    if (Pd.shape(0) != p.dims.S)
        fail(fn, "Phi_d has " + n(Pd.shape(0)) + " rows but Y has " + n(p.dims.S) + " columns (S must match)");
    if (Pv.shape(0) != p.dims.M)
        fail(fn, "Phi_v has " + n(Pv.shape(0)) + " rows but Y has " + n(p.dims.M) + " symbols (M must match)");
    return p;
}

int64_t workers(const char* fn, int threads, int64_t batch)
{
    if (threads < 1)
        fail(fn, "threads must be >= 1, got " + n(threads));
    return std::max<int64_t>(1, std::min<int64_t>(threads, batch));
}

// The maps of every frame without the GIL, one mapper per worker thread.
template <typename T>
py::array_t<T> run_maps(const char* fn, const carray& Y, const carray& Pa, const carray& Pd, const carray& Pv,
                        bool allow_chirp_z, bool allow_symmetric, int threads,
                        void (gr::isac::angle_delay_doppler_mapper::*kernel)(const cfloat*, T*))
{
    const doppler_problem p = check_shapes(fn, Y, Pa, Pd, Pv);
    const int64_t W = workers(fn, threads, p.batch);
    const doppler_dims& d = p.dims;
    std::vector<py::ssize_t> shape{d.Na, d.Nd, d.Nv};
    if (p.batched)
        shape.insert(shape.begin(), p.batch);
    py::array_t<T> out(shape);
    const cfloat* y = Y.data();
    const cfloat* pa = Pa.data();
    const cfloat* pd = Pd.data();
    const cfloat* pv = Pv.data();
    T* o = out.mutable_data();
    const int64_t y_step = d.M * d.K * d.S, o_step = d.Na * d.Nd * d.Nv;
    {
        py::gil_scoped_release release;
        std::vector<gr::isac::angle_delay_doppler_mapper> mappers;
        for (int64_t w = 0; w < W; ++w)
            mappers.emplace_back(pa, pd, pv, d, allow_chirp_z, allow_symmetric);
        run_frames(mappers, W, p.batch, [&](gr::isac::angle_delay_doppler_mapper& m, int64_t b) {
            (m.*kernel)(y + b * y_step, o + b * o_step);
        });
    }
    return out;
}

/*
 * OMP over angle, delay and speed with the dictionaries prepared once: one kernel per worker
 * thread, kept between calls (the first is built with the instance, so that its dictionaries
 * are checked there and workspace_bytes is known).
 */
struct omp_doppler_runner {
    carray Pa, Pd, Pv;
    doppler_dims dims;
    std::vector<gr::isac::omp_doppler_kernel> kernels;
    std::mutex mu;

    omp_doppler_runner(const carray& pa, const carray& pd, const carray& pv) : Pa(pa), Pd(pd), Pv(pv)
    {
        const char* fn = "omp_doppler";
        check_dictionaries(fn, Pa, Pd, Pv);
        dims = dictionary_dims(Pa, Pd, Pv);
        if (dims.Na == 0)
            fail(fn, "Phi_a has no columns (empty angle grid)");
        if (dims.Nd == 0)
            fail(fn, "Phi_d has no columns (empty delay grid)");
        if (dims.Nv == 0)
            fail(fn, "Phi_v has no columns (empty speed grid)");
        py::gil_scoped_release release;
        kernels.emplace_back(Pa.data(), Pd.data(), Pv.data(), dims);
    }

    size_t workspace_bytes() const { return kernels.front().workspace_bytes(); }

    py::tuple run(const carray& Y, int iterations, int threads)
    {
        const char* fn = "omp_doppler";
        const doppler_problem p = check_shapes(fn, Y, Pa, Pd, Pv);
        if (iterations < 1)
            fail(fn, "iterations must be >= 1, got " + n(iterations));
        if (iterations > 64)
            fail(fn, "iterations must be <= 64, got " + n(iterations));
        const int64_t W = workers(fn, threads, p.batch);
        const int64_t B = p.batch, T = iterations;
        py::array_t<int64_t> ai({B, T}), di({B, T}), vi({B, T});
        py::array_t<double> peaks({B, T});
        py::array_t<cdouble> gains({B, T, T});
        int64_t *pai = ai.mutable_data(), *pdi = di.mutable_data(), *pvi = vi.mutable_data();
        double* ppk = peaks.mutable_data();
        cdouble* pg = gains.mutable_data();
        const cfloat* y = Y.data();
        const int64_t step = dims.M * dims.K * dims.S;
        bool finite;
        {
            py::gil_scoped_release release;
            finite = isac_bindings::all_finite(y, Y.size());
            if (finite) {
                std::lock_guard<std::mutex> lock(mu); // one call at a time per instance
                while (int64_t(kernels.size()) < W)
                    kernels.emplace_back(Pa.data(), Pd.data(), Pv.data(), dims);
                run_frames(kernels, W, B, [&](gr::isac::omp_doppler_kernel& k, int64_t b) {
                    k.run(y + b * step, iterations,
                          {pai + b * T, pdi + b * T, pvi + b * T, ppk + b * T, pg + b * T * T});
                });
            }
        }
        if (!finite)
            fail(fn, "Y contains NaN or Inf");
        return py::make_tuple(ai, di, vi, peaks, gains);
    }
};

} // namespace

void bind_doppler(py::module& m)
{
    m.def(
        "angle_delay_doppler_map_complex",
        [](const carray& Y, const carray& Pa, const carray& Pd, const carray& Pv, bool chirp_z, bool symmetric,
           int threads) {
            return run_maps<cfloat>("angle_delay_doppler_map_complex", Y, Pa, Pd, Pv, chirp_z, symmetric, threads,
                                    &gr::isac::angle_delay_doppler_mapper::map_complex);
        },
        py::arg("Y"), py::arg("Phi_a"), py::arg("Phi_d"), py::arg("Phi_v"), py::arg("chirp_z") = true,
        py::arg("symmetric") = true, py::arg("threads") = 1,
        R"doc(Complex angle-delay-Doppler map of frames of M OFDM symbols, the C++ twin of
gnuradio.isac.model.angle_delay.angle_delay_doppler_map_complex:

    M[i, j, l] = sum_{m,k,s} conj(Phi_a[k, i]) Y[m, k, s] conj(Phi_d[s, j]) conj(Phi_v[m, l]).

Y: (M, K, S) or (B, M, K, S); Phi_a: (K, Na); Phi_d: (S, Nd); Phi_v: (M, Nv). Inputs are
converted to complex64. Returns complex64 of shape (Na, Nd, Nv), or (B, Na, Nd, Nv). Computed
mode by mode: Z_l = Phi_v[:, l]^H Y over the symbols, then the angle-delay map of each speed
slice (chirp_z, symmetric as for angle_delay_map_complex). `threads` worker threads split the
frames (default 1). The GIL is released. Raises ValueError when the shapes do not fit.)doc");

    m.def(
        "angle_delay_doppler_map",
        [](const carray& Y, const carray& Pa, const carray& Pd, const carray& Pv, bool chirp_z, bool symmetric,
           int threads) {
            return run_maps<float>("angle_delay_doppler_map", Y, Pa, Pd, Pv, chirp_z, symmetric, threads,
                                   &gr::isac::angle_delay_doppler_mapper::map_power);
        },
        py::arg("Y"), py::arg("Phi_a"), py::arg("Phi_d"), py::arg("Phi_v"), py::arg("chirp_z") = true,
        py::arg("symmetric") = true, py::arg("threads") = 1,
        R"doc(Power angle-delay-Doppler map |M|**2 as float32.

Same arguments and shapes as angle_delay_doppler_map_complex.)doc");

    py::class_<omp_doppler_runner>(m, "OmpDopplerKernel", R"doc(OMP (Algorithm 1) over angle, delay
and speed on frames of M OFDM symbols, the C++ twin of gnuradio.isac.model.omp.omp_doppler,
with the dictionaries prepared once.

OmpDopplerKernel(Phi_a, Phi_d, Phi_v): Phi_a (K, Na), Phi_d (S, Nd), Phi_v (M, Nv), converted
to complex64. Calling it on Y (M, K, S) or (B, M, K, S) with `iterations` (T_max, 1..64)
returns (angle_index, delay_index, doppler_index, peaks, gains): (B, T) int64 three times,
(B, T) float64 (residual map maximum at each iteration, before selection) and (B, T, T)
complex128 (gains[b, i, :i+1]: joint LS gains after iteration i); B = 1 for a 3-D Y.
`threads` worker threads split the frames (default 1; each keeps its own buffers,
workspace_bytes each). The GIL is released. Raises ValueError (naming the argument) on a
shape mismatch, an empty grid, iterations out of range or a non-finite Y. Calls on one
instance from several Python threads run one after the other.)doc")
        .def(py::init<const carray&, const carray&, const carray&>(), py::arg("Phi_a"), py::arg("Phi_d"),
             py::arg("Phi_v"))
        .def("__call__", &omp_doppler_runner::run, py::arg("Y"), py::arg("iterations"), py::arg("threads") = 1)
        .def_property_readonly("workspace_bytes", &omp_doppler_runner::workspace_bytes,
                               "Bytes of one worker's per-frame buffers: the map (8 bytes per angle x delay x "
                               "speed cell), the frame contracted over its symbols (Nv x K x S complex64), "
                               "the projections.");
}
