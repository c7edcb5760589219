// Bilateral filter (Tomasi & Manduchi 1998): each pixel becomes the average of its circular
// neighbourhood weighted by a Gaussian of distance (space) times a Gaussian of grey-level
// difference (range). Single source for the CPU, CUDA and CuPy backends.
//
// This file also holds the small helpers the other denoising kernels (nlm.cuh, rank.cuh) build
// on: float bit casts, a vectorisable exp for the Gaussian weights, and border index rules.
//
// Conventions (those of cv2.bilateralFilter): window = the pixels within `radius` of the centre
// (dy^2 + dx^2 <= radius^2), borders mirrored without repeating the edge (reflect-101:
// ... 2 1 | 0 1 2 ... | R-2 R-3 ...), weights
//   w = exp(color_coef * (x[q] - x[p])^2 + space_coef * |q - p|^2),
//   color_coef = -1 / (2 sigma_color^2), space_coef = -1 / (2 sigma_space^2),
// with the range Gaussian evaluated exactly (OpenCV interpolates a 4096-entry table).
#pragma once
#include "common.cuh"

// Host builds must inline the per-pixel functions into the vectorised column loops, however long
// they are (a call inside `omp simd` stops vectorisation).
#if defined(__CUDACC__)
#define USFAST_HD_FLAT USFAST_HD
#elif defined(__GNUC__)
#define USFAST_HD_FLAT inline __attribute__((always_inline))
#else
#define USFAST_HD_FLAT inline
#endif

namespace usfast {
namespace k {

// ---- helpers shared by the denoising kernels ---------------------------------------------------

// max(v, 0) on the bits (a negative float is a negative int): a float select followed by more
// arithmetic keeps GCC from vectorising a loop unless math traps are off, an int max does not.
USFAST_HD_FLAT float fpos(float v) {
  const int i = (int)float_to_bits(v);
  return bits_to_float((unsigned)(i > 0 ? i : 0));
}

// exp(x) for x <= 0, to ~1e-7 relative, branch-free so that it vectorises on the CPU and gives
// the same value on every backend. x is clamped to [-87.3, 0] on its bits (for negative floats
// the bits grow with the magnitude): exp(-87.3) ~ 1e-38 is the smallest weight, never 0.
// Range reduction x = -m ln2 + r, |r| <= ln2/2, with m rounded by adding 1.5 * 2^23 (its low
// mantissa bits then hold m, so 2^-m is built from bits without a float-to-int conversion) and
// ln2 split in two so that m * LN2_HI is exact; then a degree-6 polynomial for e^r (Chebyshev
// interpolation, our fit).
USFAST_HD_FLAT float exp_neg(float x) {
  unsigned u = float_to_bits(x);
  u = u < 0xc2ae999au ? u : 0xc2ae999au;  // below -87.3 (and -inf, -NaN) -> -87.3
  u = u > 0x80000000u ? u : 0x80000000u;  // +0 and above (and +NaN) -> -0
  x = bits_to_float(u);
  const float t = x * -1.44269504f + 12582912.f;
  const unsigned m = float_to_bits(t) - 0x4b400000u;  // round(-x / ln2), 0..126
  const float mf = t - 12582912.f;
  const float r = (x + mf * 0.693145752f) + mf * 1.42860677e-6f;
  float p = 0.00139411085f;
  p = p * r + 0.00837512594f;
  p = p * r + 0.0416663513f;
  p = p * r + 0.166664153f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  return p * bits_to_float(0x3f800000u - (m << 23));
}

// Border index rules. reflect-101 mirrors about the edge pixel (numpy 'reflect', OpenCV
// BORDER_REFLECT_101) and repeats with period 2(n-1), so any distance from the image works.
USFAST_HD int reflect101(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}
// Replicate: the edge pixel repeated (OpenCV BORDER_REPLICATE, numpy 'edge').
USFAST_HD int replicate(int i, int n) { return clampi(i, 0, n - 1); }

// ---- bilateral -----------------------------------------------------------------------------------
// Half-width of the circular window at row offset dy: the largest dx with dx^2 + dy^2 <= r^2.
USFAST_HD int circle_half_width(int dy, int radius) {
  int hw = radius;
  while (hw > 0 && hw * hw + dy * dy > radius * radius) --hw;
  return hw;
}

// Weight of one neighbour: exp(color_coef * (v - v0)^2 + space_coef * dist2).
USFAST_HD_FLAT float bilateral_weight(float v, float v0, float color_coef, float space_coef_dist2) {
  const float t = v - v0;
  return exp_neg(t * t * color_coef + space_coef_dist2);
}

// One output pixel. p points at the centre in an array whose rows (stride rs) hold the
// neighbourhood already extended across the border; taps run row by row, left to right.
USFAST_HD float bilateral_px(const float* p, usf_i64 rs, int radius, float color_coef,
                             float space_coef) {
  const float v0 = p[0];
  float num = 0.f, den = 0.f;
  for (int dy = -radius; dy <= radius; ++dy) {
    const int hw = circle_half_width(dy, radius);
    const float* row = p + dy * rs;
    for (int dx = -hw; dx <= hw; ++dx) {
      const float v = row[dx];
      const float w = bilateral_weight(v, v0, color_coef, space_coef * (float)(dy * dy + dx * dx));
      num += w * v;
      den += w;
    }
  }
  return num / den;  // den >= 1: the centre weighs exp(0) = 1
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// One block = a 32 x 8 output tile; the tile plus a `radius` halo is staged in shared memory
// (dynamic, (32 + 2 radius) * (8 + 2 radius) floats) with reflect-101 borders.
extern "C" __global__ void usfast_bilateral_f32(const float* x, usf_i64 xfs, usf_i64 xrs, float* y,
                                                usf_i64 yfs, usf_i64 yrs, int R, int C, int radius,
                                                float color_coef, float space_coef) {
  extern __shared__ float usfast_bil_tile[];
  const int f = blockIdx.z;
  const int r0 = blockIdx.y * 8, c0 = blockIdx.x * 32;
  const int tw = 32 + 2 * radius, th = 8 + 2 * radius;
  const float* xf = x + f * xfs;
  for (int i = threadIdx.y; i < th; i += 8) {
    const usf_i64 sr = (usf_i64)usfast::k::reflect101(r0 - radius + i, R) * xrs;
    for (int j = threadIdx.x; j < tw; j += 32)
      usfast_bil_tile[i * tw + j] = xf[sr + usfast::k::reflect101(c0 - radius + j, C)];
  }
  __syncthreads();
  const int r = r0 + threadIdx.y, c = c0 + threadIdx.x;
  if (r >= R || c >= C) return;
  const float* p = usfast_bil_tile + (threadIdx.y + radius) * tw + threadIdx.x + radius;
  y[f * yfs + r * yrs + c] = usfast::k::bilateral_px(p, tw, radius, color_coef, space_coef);
}
#endif
