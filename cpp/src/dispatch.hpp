// Validation and CPU/CUDA dispatch shared by every public entry point.
#pragma once
#include <string>

#include "usfast/core.hpp"

namespace usfast {
namespace detail {

// A view is usable: positive sizes, a pointer, and row/frame strides that do not overlap.
template <class T>
void check_image(const char* func, const char* arg, const Image<T>& im) {
  require(im.frames >= 1 && im.rows >= 1 && im.cols >= 1, func, arg,
          "a non-empty image (frames, rows, cols >= 1)");
  require(im.data != nullptr, func, arg, "a data pointer");
  require(im.row_stride >= im.cols || im.rows == 1, func, arg,
          "a row stride >= cols (columns contiguous, rows not overlapping)");
  require(im.frame_stride >= im.rows * im.row_stride || im.frames == 1 ||
              (im.rows == 1 && im.frame_stride >= im.cols),
          func, arg, "a frame stride >= rows * row_stride");
}

inline void check_ptr(const char* func, const char* arg, const void* p) {
  require(p != nullptr, func, arg, "a non-null table pointer");
}

[[noreturn]] inline void no_cuda(const char* func) {
  throw BackendUnavailable(std::string(func) +
                           ": usfast was built without CUDA (USFAST_CUDA=OFF or no nvcc at build time)");
}

}  // namespace detail
}  // namespace usfast

// Run `cpu_call` on the host or `cuda_call` on the caller's stream.
#ifdef USFAST_WITH_CUDA
#define USFAST_DISPATCH(func, ex, cpu_call, cuda_call) \
  do {                                                 \
    if ((ex).device == ::usfast::Device::CPU) {        \
      cpu_call;                                        \
    } else {                                           \
      cuda_call;                                       \
    }                                                  \
  } while (0)
#else
#define USFAST_DISPATCH(func, ex, cpu_call, cuda_call) \
  do {                                                 \
    if ((ex).device == ::usfast::Device::CPU) {        \
      cpu_call;                                        \
    } else {                                           \
      ::usfast::detail::no_cuda(func);                 \
    }                                                  \
  } while (0)
#endif
