// Shared pieces of the private module usfast._core: how arrays cross (a NumPy array as itself,
// or for GPU arrays a 6-tuple of pointer, frames, rows, cols, frame stride, row stride, strides
// in elements, built by usfast._arrays.desc), how an Exec is formed, and per-area registration.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "usfast/core.hpp"

namespace py = pybind11;

namespace pybind11 {
namespace detail {
template <class T>
struct type_caster<usfast::Image<T>> {
  PYBIND11_TYPE_CASTER(usfast::Image<T>, const_name("ImageDesc"));
  bool load(handle src, bool) {
    if (isinstance<array>(src)) {  // host arrays pass as themselves (no Python-side descriptor)
      auto a = reinterpret_borrow<array>(src);
      const ssize_t nd = a.ndim(), it = a.itemsize();
      if ((nd != 2 && nd != 3) || it != (ssize_t)sizeof(T) || a.strides(nd - 1) != it) return false;
      value.data = static_cast<T*>(const_cast<void*>(a.data()));
      value.frames = nd == 3 ? a.shape(0) : 1;
      value.rows = a.shape(nd - 2);
      value.cols = a.shape(nd - 1);
      value.row_stride = a.strides(nd - 2) / it;
      value.frame_stride = nd == 3 ? a.strides(0) / it : value.rows * value.row_stride;
      return true;
    }
    if (!isinstance<tuple>(src)) return false;
    auto t = reinterpret_borrow<tuple>(src);
    if (t.size() != 6) return false;
    value.data = reinterpret_cast<T*>(t[0].cast<std::uintptr_t>());
    value.frames = t[1].cast<int64_t>();
    value.rows = t[2].cast<int64_t>();
    value.cols = t[3].cast<int64_t>();
    value.frame_stride = t[4].cast<int64_t>();
    value.row_stride = t[5].cast<int64_t>();
    return true;
  }
};
}  // namespace detail
}  // namespace pybind11

namespace usfast {
namespace bind {

inline Exec exec(int device, std::uintptr_t stream) {
  return device == 0 ? Exec::cpu() : Exec::cuda(reinterpret_cast<void*>(stream));
}
template <class T>
inline const T* cptr(std::uintptr_t p) { return reinterpret_cast<const T*>(p); }

using Registrar = void (*)(py::module_&);
int add_registrar(Registrar r);

}  // namespace bind
}  // namespace usfast

// Each bindings file registers itself; module.cpp runs them all in PYBIND11_MODULE.
#define USFAST_BINDINGS(name)                                                             \
  static void usfast_bind_##name(py::module_& m);                                         \
  static const int usfast_registered_##name = ::usfast::bind::add_registrar(&usfast_bind_##name); \
  static void usfast_bind_##name(py::module_& m)

// Every binding: positional args, GIL released around the core call.
#define USFAST_NOGIL py::call_guard<py::gil_scoped_release>()
