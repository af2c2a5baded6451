/*
 * The compiled module gnuradio.isac.isac_python: one bind_* call per source file.
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_angle_delay_map(py::module& m);
void bind_omp(py::module& m);
void bind_doppler(py::module& m);
void bind_channel(py::module& m);
void bind_pmt(py::module& m);

PYBIND11_MODULE(isac_python, m)
{
    m.doc() = "gr-isac C++ kernels";
    // Binding a GNU Radio block (a subclass of gr::block) needs its base classes
    // registered first: add py::module::import("gnuradio.gr") here with the first
    // block. Plain kernels do not need it, and it keeps the import light.
    bind_angle_delay_map(m);
    bind_omp(m);
    bind_doppler(m);
    bind_channel(m);
    bind_pmt(m);
}
