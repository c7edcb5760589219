// Oriented line filtering and line-aligned resampling for needle enhancement and localisation.
// The single source of this math for the CPU (OpenMP), CUDA and CuPy (NVRTC) backends.
//
// Layout: batches (frames F, rows R = depth, cols C = lateral); element (f, r, c) at
// p[f*fs + r*rs + c]. Points are (x = column, z = row) in pixels; pixel centres at integers.
#pragma once
#include "common.cuh"

namespace usfast {
namespace k {

USFAST_HD float line_load(const float* p) { return *p; }
USFAST_HD float line_load(const unsigned char* p) { return static_cast<float>(*p); }

// Bilinear sample at (x, z) with coordinates clamped to the image (edge pixels extend outward).
template <class T>
USFAST_HD float line_bilinear(const T* src, usf_i64 rs, int R, int C, float x, float z) {
  x = clampf(x, 0.f, (float)(C - 1));
  z = clampf(z, 0.f, (float)(R - 1));
  int c0 = (int)x, r0 = (int)z;
  c0 = c0 < C - 1 ? c0 : (C > 1 ? C - 2 : 0);
  r0 = r0 < R - 1 ? r0 : (R > 1 ? R - 2 : 0);
  const int c1 = C > 1 ? c0 + 1 : c0, r1 = R > 1 ? r0 + 1 : r0;
  const float fx = x - c0, fz = z - r0;
  const T* p0 = src + (usf_i64)r0 * rs;
  const T* p1 = src + (usf_i64)r1 * rs;
  const float top = line_load(p0 + c0) + fx * (line_load(p0 + c1) - line_load(p0 + c0));
  const float bot = line_load(p1 + c0) + fx * (line_load(p1 + c1) - line_load(p1 + c0));
  return top + fz * (bot - top);
}

// Oriented line detector at pixel (r, c). Bank entry a: dirs[4a..4a+3] = (ux, uz, nx, nz), the
// pixel displacement per unit length along the line and along its normal (the unit is the
// caller's, e.g. mm: anisotropic pixels then stay exact). The mean of n samples along the segment
// through the pixel,
//   centre(a) = (1/n) sum_k I(p + t_k u),  t_k = (k - (n-1)/2) * step,
// minus the mean of the two parallel segments at +-side along the normal:
//   L(a) = centre(a) - (left(a) + right(a)) / 2.
// Returns the largest L over the bank and writes its index to *best (the first on ties).
// A bright line of the bank's orientation and narrower than `side` gives its contrast; speckle
// averages out along the segment, and a uniform brightness change cancels.
template <class T>
USFAST_HD float line_filter_px(const T* src, usf_i64 rs, int R, int C, int r, int c,
                               const float* dirs, int nang, int n, float step, float side,
                               int* best) {
  float vbest = -3.0e38f;
  int abest = 0;
  const float inv_n = 1.f / (float)n;
  for (int a = 0; a < nang; ++a) {
    const float ux = dirs[4 * a], uz = dirs[4 * a + 1];
    const float nx = dirs[4 * a + 2] * side, nz = dirs[4 * a + 3] * side;
    float sc = 0.f, ss = 0.f;
    for (int k = 0; k < n; ++k) {
      const float t = ((float)k - 0.5f * (float)(n - 1)) * step;
      const float x = (float)c + t * ux, z = (float)r + t * uz;
      sc += line_bilinear(src, rs, R, C, x, z);
      ss += line_bilinear(src, rs, R, C, x + nx, z + nz) +
            line_bilinear(src, rs, R, C, x - nx, z - nz);
    }
    const float v = (sc - 0.5f * ss) * inv_n;
    if (v > vbest) {
      vbest = v;
      abest = a;
    }
  }
  *best = abest;
  return vbest;
}

// Line-aligned resampling ("band"): sample (t, w) of a T x W band lies at
//   p0 + t * dt * u + (w - (W-1)/2) * dw * n,   n = (-uz, ux),
// bilinear with clamped coordinates, times `scale`. Used to measure a needle candidate across
// and along its axis at full resolution.
template <class T>
USFAST_HD float band_sample_px(const T* src, usf_i64 rs, int R, int C, int t, int w, int W,
                               float x0, float z0, float ux, float uz, float dt, float dw,
                               float scale) {
  const float tt = (float)t * dt, ww = ((float)w - 0.5f * (float)(W - 1)) * dw;
  return scale * line_bilinear(src, rs, R, C, x0 + tt * ux - ww * uz, z0 + tt * uz + ww * ux);
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// ---- CUDA kernels ------------------------------------------------------------------------------
#define USFAST_LINE_FILTER(NAME, T)                                                              \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, float* resp, float* ang,  \
                                  usf_i64 ofs, usf_i64 ors, int R, int C, const float* dirs,     \
                                  const float* angles, int nang, int n, float step, float side,  \
                                  float scale) {                                                 \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    int best;                                                                                    \
    const float v =                                                                              \
        usfast::k::line_filter_px(x + f * xfs, xrs, R, C, r, c, dirs, nang, n, step, side, &best); \
    resp[f * ofs + r * ors + c] = v * scale;                                                     \
    ang[f * ofs + r * ors + c] = angles[best];                                                   \
  }
USFAST_LINE_FILTER(usfast_line_filter_f32, float)
USFAST_LINE_FILTER(usfast_line_filter_u8, unsigned char)

// Band of one line per frame: params[f] = (x0, z0, ux, uz); grid over (W, T, frames).
#define USFAST_BAND_SAMPLE(NAME, T)                                                              \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, int R, int C, float* b,   \
                                  usf_i64 bfs, usf_i64 brs, int TT, int W, const float* params,  \
                                  float dt, float dw, float scale) {                             \
    USFAST_PIXEL_INDEX(f, t, w, TT, W);                                                          \
    const float* p = params + 4 * f;                                                             \
    b[f * bfs + t * brs + w] = usfast::k::band_sample_px(x + f * xfs, xrs, R, C, t, w, W, p[0],  \
                                                         p[1], p[2], p[3], dt, dw, scale);       \
  }
USFAST_BAND_SAMPLE(usfast_band_sample_f32, float)
USFAST_BAND_SAMPLE(usfast_band_sample_u8, unsigned char)
#endif  // __CUDACC__
