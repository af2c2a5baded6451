/*
 * numpy bindings of the angle-delay map kernel (include/gnuradio/isac/angle_delay_map.h).
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "numpy_checks.h"

#include <gnuradio/isac/angle_delay_map.h>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

namespace py = pybind11;
using gr::isac::cfloat;
using gr::isac::map_dims;

namespace {

// Inputs of any numeric dtype or layout are converted to C-contiguous complex64 / float32.
using isac_bindings::carray;
using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;

using isac_bindings::check_shapes;
using isac_bindings::fail;
using isac_bindings::n;
using isac_bindings::problem;

std::vector<py::ssize_t> out_shape(const problem& p)
{
    if (p.batched)
        return {p.batch, p.dims.Na, p.dims.Nd};
    return {p.dims.Na, p.dims.Nd};
}

// Runs (mapper.*kernel)(Y_b, out_b) for every frame b without the GIL, with one
// mapper (dictionaries prepared once) per worker thread; thread w takes frames
// w, w + W, ...
template <typename T>
py::array_t<T> run_batched(const char* fn, const carray& Y, const carray& Pa, const carray& Pd, bool allow_chirp_z,
                           bool allow_symmetric, int threads,
                           void (gr::isac::angle_delay_mapper::*kernel)(const cfloat*, T*))
{
    const problem p = check_shapes(fn, Y, Pa, Pd);
    if (threads < 1)
        fail(fn, "threads must be >= 1, got " + n(threads));
    py::array_t<T> out(out_shape(p));
    const cfloat* y = Y.data();
    const cfloat* pa = Pa.data();
    const cfloat* pd = Pd.data();
    T* o = out.mutable_data();
    const int64_t y_step = p.dims.K * p.dims.S;
    const int64_t o_step = p.dims.Na * p.dims.Nd;
    const int64_t W = std::max<int64_t>(1, std::min<int64_t>(threads, p.batch));
    {
        py::gil_scoped_release release;
        std::vector<gr::isac::angle_delay_mapper> mappers;
        for (int64_t w = 0; w < W; ++w)
            mappers.emplace_back(pa, pd, p.dims, allow_chirp_z, allow_symmetric);
        isac_bindings::run_frames(mappers, W, p.batch, [&](gr::isac::angle_delay_mapper& m, int64_t b) {
            (m.*kernel)(y + b * y_step, o + b * o_step);
        });
    }
    return out;
}

py::tuple argmax(const farray& L)
{
    if (L.ndim() != 2)
        fail("map_argmax", "L must have shape (Na, Nd), got " + n(L.ndim()) + " dimension(s)");
    if (L.size() == 0)
        fail("map_argmax", "L is empty");
    const float* data = L.data();
    const int64_t size = L.size();
    gr::isac::map_peak peak;
    {
        py::gil_scoped_release release;
        peak = gr::isac::map_argmax(data, size);
    }
    const int64_t cols = L.shape(1);
    return py::make_tuple(peak.index / cols, peak.index % cols, peak.value);
}

} // namespace

void bind_angle_delay_map(py::module& m)
{
    m.def(
        "angle_delay_map_complex",
        [](const carray& Y, const carray& Pa, const carray& Pd, bool chirp_z, bool symmetric, int threads) {
            return run_batched<cfloat>("angle_delay_map_complex", Y, Pa, Pd, chirp_z, symmetric, threads,
                                       &gr::isac::angle_delay_mapper::map_complex);
        },
        py::arg("Y"), py::arg("Phi_a"), py::arg("Phi_d"), py::arg("chirp_z") = true, py::arg("symmetric") = true,
        py::arg("threads") = 1,
        R"doc(Complex angle-delay map M = Phi_a^H @ Y @ conj(Phi_d).

Y: (K, S) or (B, K, S); Phi_a: (K, Na); Phi_d: (S, Nd). Inputs are converted to
complex64. Returns complex64 of shape (Na, Nd), or (B, Na, Nd) for a batch.
When Phi_d is a partial DFT on a uniform delay grid (model.ofdm.delay_dictionary),
Y @ conj(Phi_d) is computed by a chirp-z transform (same map to float rounding);
chirp_z=False forces the general product. When Phi_a is symmetric about the array
centre (Phi_a[K-1-k] = conj(Phi_a[k]), e.g. the nominal array), Phi_a^H @ T is one real
product of half the work; symmetric=False forces the general one. `threads` worker threads split the frames
(default 1). Raises ValueError when the shapes do not fit.)doc");

    m.def(
        "angle_delay_map",
        [](const carray& Y, const carray& Pa, const carray& Pd, bool chirp_z, bool symmetric, int threads) {
            return run_batched<float>("angle_delay_map", Y, Pa, Pd, chirp_z, symmetric, threads,
                                      &gr::isac::angle_delay_mapper::map_power);
        },
        py::arg("Y"), py::arg("Phi_a"), py::arg("Phi_d"), py::arg("chirp_z") = true, py::arg("symmetric") = true,
        py::arg("threads") = 1,
        R"doc(Power angle-delay map |Phi_a^H @ Y @ conj(Phi_d)|**2 as float32.

Same arguments and shapes as angle_delay_map_complex.)doc");

    m.def(
        "delay_dictionary_is_uniform_dft",
        [](const carray& Pd) {
            if (Pd.ndim() != 2)
                fail("delay_dictionary_is_uniform_dft",
                     "Phi_d must have shape (S, Nd), got " + n(Pd.ndim()) + " dimension(s)");
            const map_dims d{1, Pd.shape(0), 1, Pd.shape(1)};
            const cfloat pa(1.0f);
            const cfloat* pd = Pd.data();
            py::gil_scoped_release release;
            return gr::isac::angle_delay_mapper(&pa, pd, d).uses_chirp_z();
        },
        py::arg("Phi_d"),
        R"doc(True when the angle-delay map kernels evaluate Y @ conj(Phi_d) by the chirp-z
transform: Phi_d[s, j] = exp(-j 2 pi s (f0 + j g)) to 2e-6 per entry.)doc");

    m.def(
        "angle_dictionary_is_symmetric",
        [](const carray& Pa) {
            if (Pa.ndim() != 2)
                fail("angle_dictionary_is_symmetric",
                     "Phi_a must have shape (K, Na), got " + n(Pa.ndim()) + " dimension(s)");
            const map_dims d{Pa.shape(0), 1, Pa.shape(1), 1};
            const cfloat pd(1.0f);
            const cfloat* pa = Pa.data();
            py::gil_scoped_release release;
            return gr::isac::angle_delay_mapper(pa, &pd, d).uses_symmetric_array();
        },
        py::arg("Phi_a"),
        R"doc(True when the angle-delay map kernels use the half-size real product for Phi_a:
Phi_a[K-1-k, i] = conj(Phi_a[k, i]) to 2e-6 per entry (an array symmetric about its centre).)doc");

    m.def("map_argmax", &argmax, py::arg("L"),
          R"doc(Largest entry of a 2-D map L: returns (i, j, value).

The first maximum in row-major order wins, and a NaN wins like numpy.argmax.
L is converted to float32. Raises ValueError for a non-2-D or empty L.)doc");
}
