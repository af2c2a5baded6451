/*
 * PMT dicts of the blocks' messages, built and read in C++: the per-frame truth and
 * detections dicts cost ~20 us each through the pmt Python API (one pybind11 call per key and
 * value, lists for vectors), ~2 us here.
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 *   pmt_dict_from(d)   messages.to_pmt: bool -> bool, int -> long, float -> double,
 *                      str -> symbol, anything else as a numpy array: complex -> c32vector,
 *                      else f64vector; keys in the dict's order through pmt::dict_add
 *   pmt_dict_to(msg)   messages.from_pmt of a PMT dict: what pmt.to_python gives
 *                      (f64vector / c32vector as numpy arrays, symbols as str, ...); other
 *                      value types go through pmt.to_python
 * The pmt objects are the pmt module's own (pybind11 shares the registered pmt_base type).
 */

#include <pmt/pmt.h>

#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <complex>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

struct numpy_types {
    py::object bool_, integer, floating, asarray, to_python;
};

// Allocated once and never freed: a static py::object would be released by the C++ runtime
// after the interpreter has finalised, without the GIL, which aborts the process at exit
// ("PyThreadState_Get: the function must be called with the GIL held").
const numpy_types& types()
{
    static const numpy_types* t = [] {
        py::module_ np = py::module_::import("numpy");
        auto* r = new numpy_types;
        r->bool_ = np.attr("bool_");
        r->integer = np.attr("integer");
        r->floating = np.attr("floating");
        r->asarray = np.attr("asarray");
        r->to_python = py::module_::import("pmt").attr("to_python");
        return r;
    }();
    return *t;
}

pmt::pmt_t value_to_pmt(const py::handle& v)
{
    const numpy_types& t = types();
    PyObject* o = v.ptr();
    if (PyBool_Check(o) || py::isinstance(v, t.bool_))
        return pmt::from_bool(PyObject_IsTrue(o) == 1);
    if (PyLong_Check(o) || py::isinstance(v, t.integer))
        return pmt::from_long(v.cast<long>());
    if (PyFloat_Check(o) || py::isinstance(v, t.floating))
        return pmt::from_double(v.cast<double>());
    if (PyUnicode_Check(o))
        return pmt::intern(v.cast<std::string>());
    const py::object arr = py::isinstance<py::array>(v) ? py::reinterpret_borrow<py::object>(v) : t.asarray(v);
    const char kind = py::array(arr).dtype().kind();
    if (kind == 'c') {
        const auto a = py::array_t<std::complex<float>, py::array::c_style | py::array::forcecast>::ensure(arr);
        return pmt::init_c32vector(a.size(), a.data());
    }
    const auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
    if (!a)
        throw py::value_error("pmt_dict_from: a value is not a number, string or numeric array");
    return pmt::init_f64vector(a.size(), a.data());
}

pmt::pmt_t dict_from(const py::dict& d)
{
    py::module_::import("pmt"); // the pmt_base type must be registered before a pmt is returned
    pmt::pmt_t out = pmt::make_dict();
    for (auto item : d)
        out = pmt::dict_add(out, pmt::intern(py::str(item.first).cast<std::string>()), value_to_pmt(item.second));
    return out;
}

py::object pmt_to_object(const pmt::pmt_t& v)
{
    if (pmt::is_null(v))
        return py::none();
    if (pmt::is_bool(v))
        return py::bool_(pmt::to_bool(v));
    if (pmt::is_symbol(v))
        return py::str(pmt::symbol_to_string(v));
    if (pmt::is_integer(v))
        return py::int_(pmt::to_long(v));
    if (pmt::is_real(v))
        return py::float_(pmt::to_double(v));
    if (pmt::is_f64vector(v)) {
        size_t n = 0;
        const double* p = pmt::f64vector_elements(v, n);
        py::array_t<double> a(n);
        std::copy(p, p + n, a.mutable_data());
        return std::move(a);
    }
    if (pmt::is_c32vector(v)) {
        size_t n = 0;
        const std::complex<float>* p = pmt::c32vector_elements(v, n);
        py::array_t<std::complex<float>> a(n);
        std::copy(p, p + n, a.mutable_data());
        return std::move(a);
    }
    return types().to_python(v); // the rarer types: as pmt.to_python converts them
}

py::dict dict_to(const pmt::pmt_t& msg)
{
    if (!pmt::is_dict(msg))
        throw py::value_error("expected a PMT dict, got " + pmt::write_string(msg).substr(0, 80));
    py::dict out;
    for (pmt::pmt_t items = pmt::dict_items(msg); pmt::is_pair(items); items = pmt::cdr(items)) {
        const pmt::pmt_t pair = pmt::car(items);
        const pmt::pmt_t k = pmt::car(pair);
        out[pmt_to_object(k)] = pmt_to_object(pmt::cdr(pair));
    }
    return out;
}

/*
 * One dict per row b: fields (name, array) in order; a 1-D array (B,) gives a scalar per row
 * (bool -> bool, integer -> long, float -> double), a 2-D array (B, W) the f64vector of the
 * first counts[b] entries of row b.
 */
py::list dicts_from_rows(const py::list& fields,
                         const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& counts)
{
    py::module_::import("pmt");
    struct column {
        pmt::pmt_t key;
        char kind; // 'b', 'l', 'd', 'v'
        py::array arr;
        int64_t width;
    };
    std::vector<column> cols;
    const int64_t B = counts.ndim() == 1 ? counts.shape(0) : -1;
    if (B < 0)
        throw py::value_error("pmt_dicts: counts must be 1-D (B,)");
    for (auto f : fields) {
        const auto item = f.cast<py::tuple>();
        column c;
        c.key = pmt::intern(item[0].cast<std::string>());
        py::array a = py::array::ensure(item[1]);
        if (!a || a.shape(0) != B || a.ndim() > 2)
            throw py::value_error("pmt_dicts: field " + item[0].cast<std::string>() + " must be (B,) or (B, W)");
        if (a.ndim() == 2) {
            c.kind = 'v';
            c.arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
            c.width = a.shape(1);
        } else {
            const char k = a.dtype().kind();
            if (k == 'b') {
                c.kind = 'b';
                c.arr = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(a);
            } else if (k == 'i' || k == 'u') {
                c.kind = 'l';
                c.arr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
            } else {
                c.kind = 'd';
                c.arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
            }
            c.width = 1;
        }
        cols.push_back(std::move(c));
    }
    const int64_t* n = counts.data();
    py::list out;
    for (int64_t b = 0; b < B; ++b) {
        pmt::pmt_t d = pmt::make_dict();
        for (const column& c : cols) {
            pmt::pmt_t v;
            switch (c.kind) {
            case 'b':
                v = pmt::from_bool(static_cast<const bool*>(c.arr.data())[b]);
                break;
            case 'l':
                v = pmt::from_long(static_cast<const int64_t*>(c.arr.data())[b]);
                break;
            case 'd':
                v = pmt::from_double(static_cast<const double*>(c.arr.data())[b]);
                break;
            default: {
                const int64_t len = std::max<int64_t>(0, std::min<int64_t>(n[b], c.width));
                v = pmt::init_f64vector(len, static_cast<const double*>(c.arr.data()) + b * c.width);
            }
            }
            d = pmt::dict_add(d, c.key, v);
        }
        out.append(py::cast(d));
    }
    return out;
}

} // namespace

void bind_pmt(py::module& m)
{
    m.def("pmt_dicts", &dicts_from_rows, py::arg("fields"), py::arg("counts"),
          R"doc(One PMT dict per row, as gnuradio.isac.messages builds a batch's messages:
fields is a list of (key, array); a (B,) array gives each row's scalar (bool, long or
double), a (B, W) array the f64vector of the first counts[b] entries of row b.)doc");
    m.def("pmt_dict_from", &dict_from, py::arg("items"),
          "PMT dict of a python dict, as gnuradio.isac.messages.to_pmt builds it (pmt.to_pmt's dict).");
    m.def("pmt_dict_to", &dict_to, py::arg("msg"),
          "A PMT dict as a python dict, as pmt.to_python converts it (vectors as numpy arrays).");
}
