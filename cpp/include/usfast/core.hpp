// usfast public C++ API: image views, execution context and errors. No Python here.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace usfast {

// A strided view of a batch of 2-D images: element (f, r, c) lives at
// data[f * frame_stride + r * row_stride + c]. Strides are in elements; columns are contiguous.
// A single image is a batch of one frame.
template <class T>
struct Image {
  T* data = nullptr;
  int64_t frames = 1, rows = 0, cols = 0;
  int64_t frame_stride = 0, row_stride = 0;

  T& at(int64_t f, int64_t r, int64_t c) const { return data[f * frame_stride + r * row_stride + c]; }
  int64_t size() const { return frames * rows * cols; }
  bool same_shape(int64_t f, int64_t r, int64_t c) const { return frames == f && rows == r && cols == c; }
  template <class U>
  bool same_shape(const Image<U>& o) const { return same_shape(o.frames, o.rows, o.cols); }
};

// Interleaved complex float, layout-compatible with std::complex<float>, numpy complex64 and
// CUDA float2.
struct cfloat { float re, im; };

enum class Device : int { CPU = 0, CUDA = 1 };

// Where a call runs. For Device::CUDA, `stream` is a cudaStream_t (nullptr = legacy default
// stream) and every pointer must be device memory; the call is asynchronous on that stream.
struct Exec {
  Device device = Device::CPU;
  void* stream = nullptr;
  static Exec cpu() { return {}; }
  static Exec cuda(void* stream = nullptr) { return {Device::CUDA, stream}; }
};

// A caller's mistake: bad shape, size or parameter. The message names the function and argument.
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};
// The backend asked for is not compiled in or not usable here; the message says why.
class BackendUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A CUDA runtime call failed; the message carries cudaGetErrorString, file and line.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws InputError("func(arg): expected <what>") when `ok` is false.
void require(bool ok, const char* func, const char* arg, const std::string& what);

struct BuildInfo {
  std::string version;
  bool cuda_compiled = false;
  std::string cuda_architectures;  // as compiled, e.g. "75-real,...,90-virtual"
  int cuda_runtime_version = 0;    // CUDART_VERSION compiled against (0 without CUDA)
  bool openmp = false;
  int omp_max_threads = 1;
};
BuildInfo build_info();

// Number of CUDA devices usable now (0 without CUDA, a driver or a device). `why` receives the
// reason when it is 0.
int cuda_device_count(std::string* why = nullptr);

}  // namespace usfast
