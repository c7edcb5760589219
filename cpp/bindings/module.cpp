// usfast._core: the private compiled module. Bindings only pass pointers, shapes, strides and
// streams; checks, allocation and array handling live in Python (usfast/_arrays.py).
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/common.hpp"

namespace usfast {
namespace bind {
static std::vector<Registrar>& registry() {
  static std::vector<Registrar> r;
  return r;
}
int add_registrar(Registrar r) {
  registry().push_back(r);
  return 0;
}
}  // namespace bind
}  // namespace usfast

PYBIND11_MODULE(_core, m) {
  m.doc() = "usfast compiled core (private; use the usfast package)";

  // C++ errors become the package's Python exception types.
  py::module_ errors = py::module_::import("usfast._errors");
  static py::object input_error = errors.attr("InputError");
  static py::object backend_unavailable = errors.attr("BackendUnavailable");
  static py::object cuda_error = errors.attr("CudaError");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const usfast::InputError& e) {
      PyErr_SetString(input_error.ptr(), e.what());
    } catch (const usfast::BackendUnavailable& e) {
      PyErr_SetString(backend_unavailable.ptr(), e.what());
    } catch (const usfast::CudaError& e) {
      PyErr_SetString(cuda_error.ptr(), e.what());
    }
  });

  m.def("build_info", [] {
    auto b = usfast::build_info();
    py::dict d;
    d["version"] = b.version;
    d["cuda_compiled"] = b.cuda_compiled;
    d["cuda_architectures"] = b.cuda_architectures;
    d["cuda_runtime_version"] = b.cuda_runtime_version;
    d["openmp"] = b.openmp;
    d["omp_max_threads"] = b.omp_max_threads;
    return d;
  });
  m.def("cuda_device_count", [] {
    std::string why;
    int n = usfast::cuda_device_count(&why);
    return py::make_tuple(n, why);
  });
  m.def("noop", [](usfast::Image<const float>) {}, USFAST_NOGIL,
        "Does nothing: measures the binding's per-call overhead.");

  for (auto r : usfast::bind::registry()) r(m);
}
