// Launchers behind the public speckle API (usfast/speckle.hpp): usfast::cpu (OpenMP) and
// usfast::cuda_launch (CUDA), both over kernels/localstats.cuh and kernels/diffusion.cuh, and
// the one layout of their scratch memory.
#pragma once
#include <cstddef>
#include <cstdint>

#include "usfast/speckle.hpp"

namespace usfast {
namespace detail {

// Scratch of one call, carved from one buffer. Planes are contiguous F x R x C float arrays.
struct SpeckleScratch {
  float* sums = nullptr;   // window column sums: 2 or 4 planes (GPU)
  float* ab = nullptr;     // guided filter a, b: 2 planes
  float* tmp = nullptr;    // ping-pong image for the diffusions: 1 plane
  float* ci2 = nullptr;    // DPAD local Ci^2: 1 plane
  double* tiles = nullptr; // SRAD sums per 32 x 8 block: F x ceil(R/8) x ceil(C/32) x 2 (GPU)
  float* scale = nullptr;  // q0^2 (SRAD) or Cn^2 (DPAD) per frame (GPU)
  unsigned* hist = nullptr;  // DPAD Ci^2 histogram: F x USFAST_CV_BINS (GPU)
};

constexpr int kCvBins = 640;     // USFAST_CV_BINS

// Lays the scratch of `op` out from `base` (nullptr: only measure) and returns its size.
inline size_t carve_scratch(SpeckleOp op, int64_t F, int64_t R, int64_t C, bool gpu, char* base,
                            SpeckleScratch* s) {
  size_t off = 0;
  auto take = [&](size_t bytes) -> char* {
    off = (off + 255) & ~size_t(255);
    char* p = base ? base + off : nullptr;
    off += bytes;
    return p;
  };
  const size_t plane = size_t(F) * size_t(R) * size_t(C) * sizeof(float);
  SpeckleScratch t;
  switch (op) {
    case SpeckleOp::Lee:
    case SpeckleOp::Kuan:
    case SpeckleOp::Frost:
      if (gpu) t.sums = reinterpret_cast<float*>(take(2 * plane));
      break;
    case SpeckleOp::Guided:
    case SpeckleOp::GuidedWithGuide:
      if (gpu) t.sums = reinterpret_cast<float*>(take((op == SpeckleOp::Guided ? 2 : 4) * plane));
      t.ab = reinterpret_cast<float*>(take(2 * plane));
      break;
    case SpeckleOp::Srad:
      t.tmp = reinterpret_cast<float*>(take(plane));
      if (gpu) {
        const size_t blocks = size_t((R + 7) / 8) * size_t((C + 31) / 32);
        t.tiles = reinterpret_cast<double*>(take(size_t(F) * blocks * 2 * sizeof(double)));
        t.scale = reinterpret_cast<float*>(take(size_t(F) * sizeof(float)));
      }
      break;
    case SpeckleOp::Dpad:
      t.tmp = reinterpret_cast<float*>(take(plane));
      t.ci2 = reinterpret_cast<float*>(take(plane));
      if (gpu) {
        t.sums = reinterpret_cast<float*>(take(2 * plane));
        t.hist = reinterpret_cast<unsigned*>(take(size_t(F) * kCvBins * sizeof(unsigned)));
        t.scale = reinterpret_cast<float*>(take(size_t(F) * sizeof(float)));
      }
      break;
  }
  if (s) *s = t;
  return off;
}

// The ping-pong of the diffusions: iteration t reads x (t = 0) or the previous result and
// writes y or tmp (a contiguous batch) so that the last one lands in y; 0 iterations copy.
template <class Copy, class Step>
void ping_pong(Image<const float> x, Image<float> y, float* tmp, int iterations, const Copy& copy,
               const Step& step) {
  if (iterations == 0) {
    copy(x, y);
    return;
  }
  const Image<float> t{tmp, x.frames, x.rows, x.cols, x.rows * x.cols, x.cols};
  Image<const float> cur = x;
  for (int i = 0; i < iterations; ++i) {
    const Image<float> dst = ((iterations - 1 - i) % 2 == 0) ? y : t;
    step(i, cur, dst);
    cur = Image<const float>{dst.data, dst.frames, dst.rows, dst.cols, dst.frame_stride,
                             dst.row_stride};
  }
}

}  // namespace detail

enum class LocalFilter : int { Lee = 0, Kuan = 1, Frost = 2 };

#define USFAST_SPECKLE_LAUNCHERS(...)                                                         \
  /* p1 = Cu^2; p2 = damping / Cu^2 (Frost) */                                               \
  void local_filter(LocalFilter op, Image<const float> x, Image<float> y, int h, float cu2,   \
                    float damping_over_cu2, void* ws, size_t ws_bytes __VA_ARGS__);           \
  void guided(Image<const float> x, Image<const float> g, Image<float> y, int h, float eps,   \
              void* ws, size_t ws_bytes __VA_ARGS__);                                          \
  void srad(Image<const float> x, Image<float> y, const SradParams& p, void* ws,             \
            size_t ws_bytes __VA_ARGS__);                                                      \
  void dpad(Image<const float> x, Image<float> y, int iterations, float dt, int h, void* ws,  \
            size_t ws_bytes __VA_ARGS__);

namespace cpu {
USFAST_SPECKLE_LAUNCHERS()
}
namespace cuda_launch {
USFAST_SPECKLE_LAUNCHERS(, void* stream)
}
#undef USFAST_SPECKLE_LAUNCHERS
}  // namespace usfast
