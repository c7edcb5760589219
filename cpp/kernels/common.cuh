// Shared definitions for every kernel file. Compiles unchanged under g++, nvcc and NVRTC:
// no STL, no OpenMP, no host-only headers.
#pragma once

#if defined(__CUDACC__)
#define USFAST_HD __host__ __device__ __forceinline__
#else
#define USFAST_HD inline
#endif

#if !defined(__CUDACC_RTC__)  // NVRTC has the math built in and no standard headers
#include <cmath>
#include <cstdint>
#endif

typedef long long usf_i64;  // strides and offsets; the same spelling works for NVRTC

// Grid conventions of every extern "C" kernel over images: x = column, y = row, z = frame.
#if defined(__CUDACC__)
#define USFAST_PIXEL_INDEX(f, r, c, R, C)                 \
  const int c = blockIdx.x * blockDim.x + threadIdx.x;    \
  const int r = blockIdx.y * blockDim.y + threadIdx.y;    \
  const int f = blockIdx.z;                               \
  if (r >= (R) || c >= (C)) return
#endif

namespace usfast {
namespace k {

// log10 for x >= 0 (0 gives about -38, not -inf). On the GPU the hardware log; on the host a branch-free form that the
// compiler vectorises (libm's log10f is a scalar call): x = m 2^e with m in [1, 2),
// ln m = 2 atanh(s), s = (m-1)/(m+1) in [0, 1/3), odd series to s^15 (error < 1e-8).
USFAST_HD float log10_series(float x) {
  union { float f; int i; } u;
  u.f = x;
  const int e = ((u.i >> 23) & 255) - 127;
  u.i = (u.i & 0x007FFFFF) | 0x3F800000;
  const float m = u.f;
  const float s = (m - 1.f) / (m + 1.f);
  const float s2 = s * s;
  const float p = 1.f / 13.f + s2 * (1.f / 15.f);
  const float ln_m = 2.f * s * (1.f + s2 * (1.f / 3.f + s2 * (0.2f + s2 * (1.f / 7.f + s2 * (
      1.f / 9.f + s2 * (1.f / 11.f + s2 * p))))));
  return ((float)e * 0.69314718056f + ln_m) * 0.4342944819f;
}

#if defined(__CUDACC__)
USFAST_HD float fsqrt(float x) { return sqrtf(x); }
USFAST_HD float flog10(float x) {
#if defined(__CUDA_ARCH__)
  return log10f(x);
#else
  return log10_series(x);
#endif
}
USFAST_HD float fexp(float x) { return expf(x); }
USFAST_HD float fabs_(float x) { return fabsf(x); }
USFAST_HD float ffloor(float x) { return floorf(x); }
#else
USFAST_HD float fsqrt(float x) { return std::sqrt(x); }
USFAST_HD float flog10(float x) { return log10_series(x); }
USFAST_HD float fexp(float x) { return std::exp(x); }
USFAST_HD float fabs_(float x) { return std::fabs(x); }
USFAST_HD float ffloor(float x) { return std::floor(x); }
#endif

USFAST_HD float fmin_(float a, float b) { return a < b ? a : b; }
USFAST_HD float fmax_(float a, float b) { return a > b ? a : b; }
USFAST_HD float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }
USFAST_HD int clampi(int x, int lo, int hi) { return x < lo ? lo : (x > hi ? hi : x); }

// Input sample types: hardware delivers int16 RF, processing runs in float32.
USFAST_HD float to_float(float v) { return v; }
USFAST_HD float to_float(short v) { return static_cast<float>(v); }

// Interleaved complex float (numpy complex64, CUDA float2 layout).
struct cf32 { float re, im; };

}  // namespace k
}  // namespace usfast
