// C++ API tests (ctest): the vendor-facing entry points, on the CPU, with no Python.
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <string>
#include <vector>

#include "usfast/usfast.hpp"

static int failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
      ++failures;                                                          \
    }                                                                      \
  } while (0)

template <class T>
static usfast::Image<T> view(T* p, int64_t rows, int64_t cols) {
  usfast::Image<T> im;
  im.data = p;
  im.rows = rows;
  im.cols = cols;
  im.row_stride = cols;
  im.frame_stride = rows * cols;
  return im;
}

int main() {
  using namespace usfast;
  // log compression: 1 -> 0 dB -> 1.0, 0.1 -> -20 dB -> 2/3 at 60 dB range, 0 -> 0
  std::vector<float> env = {1.f, 0.1f, 0.f, 10.f};
  std::vector<float> out(4, -1.f);
  float inv_ref = 1.f;
  log_compress<float, float>(view<const float>(env.data(), 1, 4), view(out.data(), 1, 4), &inv_ref,
                             0.f, 60.f, Exec::cpu());
  CHECK(std::fabs(out[0] - 1.f) < 1e-6f);
  CHECK(std::fabs(out[1] - 2.f / 3.f) < 1e-5f);
  CHECK(out[2] == 0.f);
  CHECK(out[3] == 1.f);

  // FIR identity: a single centre tap copies the input
  std::vector<int16_t> rf = {1, -2, 3, -4, 5, -6};
  std::vector<float> y(6, 0.f);
  float tap = 1.f;
  fir_axial<int16_t>(view<const int16_t>(rf.data(), 3, 2), view(y.data(), 3, 2), &tap, 1, Exec::cpu());
  for (int i = 0; i < 6; ++i) CHECK(y[i] == (float)rf[i]);

  // user errors throw InputError naming the argument; nothing aborts
  bool threw = false;
  try {
    fir_axial<int16_t>(view<const int16_t>(rf.data(), 3, 2), view(y.data(), 3, 2), &tap, 2, Exec::cpu());
  } catch (const InputError& e) {
    threw = std::string(e.what()).find("ntaps") != std::string::npos;
  }
  CHECK(threw);
  threw = false;
  try {
    log_compress<float, float>(view<const float>(env.data(), 1, 4), view(out.data(), 1, 4), &inv_ref,
                               0.f, -1.f, Exec::cpu());
  } catch (const InputError& e) {
    threw = std::string(e.what()).find("dynamic_range_db") != std::string::npos;
  }
  CHECK(threw);

  // asking for CUDA where there is none: BackendUnavailable or CudaError, never a crash
  if (cuda_device_count() == 0) {
    threw = false;
    try {
      log_compress<float, float>(view<const float>(env.data(), 1, 4), view(out.data(), 1, 4),
                                 &inv_ref, 0.f, 60.f, Exec::cuda());
    } catch (const BackendUnavailable&) {
      threw = true;
    } catch (const CudaError&) {
      threw = true;
    }
    CHECK(threw);
  }

  // scan conversion: a map pointing at the source grid reproduces it; -1 gives 0
  std::vector<float> src = {0.f, 1.f, 2.f, 3.f};
  std::vector<float> map = {0.f, 0.f, 0.5f, 0.5f, 1.f, 1.f, -1.f, -1.f};
  std::vector<float> dst(4, 9.f);
  remap_bilinear<float>(view<const float>(src.data(), 2, 2), view(dst.data(), 2, 2), map.data(), Exec::cpu());
  CHECK(dst[0] == 0.f);
  CHECK(std::fabs(dst[1] - 1.5f) < 1e-6f);
  CHECK(dst[2] == 3.f);
  CHECK(dst[3] == 0.f);

  BuildInfo b = build_info();
  CHECK(!b.version.empty());
  std::printf("%s\n", failures ? "C++ API tests FAILED" : "C++ API tests passed");
  return failures ? 1 : 0;
}
