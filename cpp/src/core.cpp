#include "usfast/core.hpp"

#ifdef USFAST_WITH_OPENMP
#include <omp.h>
#endif

namespace usfast {

void require(bool ok, const char* func, const char* arg, const std::string& what) {
  if (!ok) throw InputError(std::string(func) + "(" + arg + "): expected " + what);
}

#ifndef USFAST_WITH_CUDA
int cuda_device_count(std::string* why) {
  if (why) *why = "usfast was built without CUDA (USFAST_CUDA=OFF or no nvcc at build time)";
  return 0;
}
#endif

int cuda_runtime_version_compiled();

BuildInfo build_info() {
  BuildInfo b;
#ifdef USFAST_VERSION
  b.version = USFAST_VERSION;
#else
  b.version = "0.1.0";
#endif
#ifdef USFAST_WITH_CUDA
  b.cuda_compiled = true;
#ifdef USFAST_CUDA_ARCHS
  b.cuda_architectures = USFAST_CUDA_ARCHS;
#endif
  b.cuda_runtime_version = cuda_runtime_version_compiled();
#endif
#ifdef USFAST_WITH_OPENMP
  b.openmp = true;
  b.omp_max_threads = omp_get_max_threads();
#endif
  return b;
}

#ifndef USFAST_WITH_CUDA
int cuda_runtime_version_compiled() { return 0; }
#endif

}  // namespace usfast
