// Scan conversion: bilinear resampling of beam-space data (samples x lines) onto a Cartesian
// pixel grid through a precomputed map. Single source for CPU, CUDA and CuPy.
//
// map[p] = (row, col) fractional source coordinates of output pixel p, or row < 0 when the
// pixel lies outside the field of view (it is written as 0). Interpolate envelope or dB
// (display) data, never RF.
#pragma once
#include "common.cuh"

namespace usfast {
namespace k {

struct map2 { float r, c; };

USFAST_HD float load_sample(const float* p) { return *p; }
USFAST_HD float load_sample(const unsigned char* p) { return static_cast<float>(*p); }
USFAST_HD void store_sample(float* o, float v) { *o = v; }
USFAST_HD void store_sample(unsigned char* o, float v) {
  *o = static_cast<unsigned char>(clampf(v + 0.5f, 0.f, 255.f));
}

// Bilinear sample of src (R x C, row stride rs) at fractional (r, c); points outside
// [0, R-1] x [0, C-1], and NaN, give 0 (scipy.ndimage.map_coordinates(order=1, cval=0)).
template <class T>
USFAST_HD float bilinear_px(const T* src, usf_i64 rs, int R, int C, map2 m) {
  if (!(m.r >= 0.f && m.c >= 0.f && m.r <= (float)(R - 1) && m.c <= (float)(C - 1))) return 0.f;
  const float rr = m.r, cc = m.c;
  int r0 = (int)rr;
  int c0 = (int)cc;
  if (r0 > R - 2) r0 = R > 1 ? R - 2 : 0;
  if (c0 > C - 2) c0 = C > 1 ? C - 2 : 0;
  const float fr = rr - r0, fc = cc - c0;
  const int r1 = R > 1 ? r0 + 1 : r0, c1 = C > 1 ? c0 + 1 : c0;
  const float v00 = load_sample(src + (usf_i64)r0 * rs + c0);
  const float v01 = load_sample(src + (usf_i64)r0 * rs + c1);
  const float v10 = load_sample(src + (usf_i64)r1 * rs + c0);
  const float v11 = load_sample(src + (usf_i64)r1 * rs + c1);
  const float top = v00 + fc * (v01 - v00);
  const float bot = v10 + fc * (v11 - v10);
  return top + fr * (bot - top);
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
#define USFAST_SCAN_REMAP(NAME, T)                                                               \
  extern "C" __global__ void NAME(const T* src, usf_i64 sfs, usf_i64 srs, int SR, int SC, T* dst, \
                                  usf_i64 dfs, usf_i64 drs, int R, int C,                        \
                                  const usfast::k::map2* map) {                                  \
    USFAST_PIXEL_INDEX(f, r, c, R, C);                                                           \
    usfast::k::store_sample(&dst[f * dfs + r * drs + c],                                        \
                            usfast::k::bilinear_px(src + f * sfs, srs, SR, SC,                   \
                                                   map[(usf_i64)r * C + c]));                    \
  }
USFAST_SCAN_REMAP(usfast_remap_f32, float)
USFAST_SCAN_REMAP(usfast_remap_u8, unsigned char)
#endif
