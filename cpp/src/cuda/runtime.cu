// CUDA runtime glue shared by every launcher: device discovery and error checks.
#include <cuda_runtime.h>

#include "src/cuda/check.cuh"
#include "usfast/core.hpp"

namespace usfast {

int cuda_runtime_version_compiled() { return CUDART_VERSION; }

int cuda_device_count(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device present";
  return n;
}

namespace cuda_detail {
void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  throw CudaError(std::string(what) + ": " + cudaGetErrorString(e) + " (" + file + ":" +
                  std::to_string(line) + ")");
}
}  // namespace cuda_detail
}  // namespace usfast
