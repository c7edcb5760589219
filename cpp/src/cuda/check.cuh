// Launch helpers for the CUDA launchers: error checks that throw (never abort) and grid sizing.
#pragma once
#include <cuda_runtime.h>

#include "usfast/core.hpp"

namespace usfast {
namespace cuda_detail {
[[noreturn]] void throw_cuda(cudaError_t e, const char* what, const char* file, int line);

inline cudaStream_t stream_of(const Exec& ex) { return static_cast<cudaStream_t>(ex.stream); }

// 32x8 threads per block over (cols, rows), one grid z-slice per frame.
inline dim3 block2d() { return dim3(32, 8, 1); }
inline dim3 grid2d(int64_t rows, int64_t cols, int64_t frames) {
  return dim3(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>((rows + 7) / 8),
              static_cast<unsigned>(frames));
}
}  // namespace cuda_detail
}  // namespace usfast

#define USFAST_CUDA_CHECK(expr)                                                          \
  do {                                                                                   \
    cudaError_t usfast_e_ = (expr);                                                      \
    if (usfast_e_ != cudaSuccess) ::usfast::cuda_detail::throw_cuda(usfast_e_, #expr, __FILE__, __LINE__); \
  } while (0)

// Checks the launch just made (configuration errors); execution errors surface on the stream.
#define USFAST_CUDA_LAUNCHED() USFAST_CUDA_CHECK(cudaGetLastError())
