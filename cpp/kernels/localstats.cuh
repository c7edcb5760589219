// Adaptive local-statistics speckle filters: Lee, Kuan, Frost and the guided filter. The single
// source of this math for the CPU (OpenMP), CUDA and CuPy (NVRTC) backends.
//
// Local statistics are box means over a window of w = 2h + 1 pixels clipped to the image: the
// mean at (r, c) is the sum over [r-h, r+h] x [c-h, c+h] intersected with the image, divided by
// the number of pixels in that intersection (the guided filter's boxfilter/N convention, He et
// al. 2013). Sums run in two passes, each a running sum (O(1) per pixel whatever the window):
//   column pass  S(r, c) = sum_{r'} x(r', c)      over the clipped rows, double accumulators
//   row pass     B(r, c) = sum_{c'} S(r, c')      over the clipped columns, double accumulators
// The per-pixel filters below take the resulting mean and variance.
//
// Speckle model (Lee 1980, Kuan 1985, Lopes 1990): I = R * u with unit-mean multiplicative noise
// u of coefficient of variation Cu (Cu^2 = 1/ENL for the data as given: 0.5227^2 for single-look
// amplitude, 1 for single-look intensity). Ci^2 = var / mean^2 is the local coefficient of
// variation of the observed image.
#pragma once
#include "common.cuh"

namespace usfast {
namespace k {

// Guard: a variance or squared mean below this is treated as zero (no NaN from 0/0).
#define USFAST_SPK_TINY 1e-30f

// Number of indices of [i - h, i + h] inside [0, n).
USFAST_HD int clipped_count(int i, int h, int n) {
  const int lo = i - h < 0 ? 0 : i - h;
  const int hi = i + h > n - 1 ? n - 1 : i + h;
  return hi - lo + 1;
}

// Window mean, variance (>= 0) and covariance from double window sums over 1 / inv_n pixels.
// Rounding can make the variance slightly negative: max(v, 0), written as (v + |v|) / 2 (exact)
// because GCC does not vectorise the comparison form when a division by v follows.
USFAST_HD float box_mean(double s, double inv_n) { return (float)(s * inv_n); }
USFAST_HD float box_var(double sxx, double sx, double inv_n) {
  const float v = (float)(sxx * inv_n - (sx * inv_n) * (sx * inv_n));
  return 0.5f * (v + fabs_(v));
}
USFAST_HD float box_cov(double sxy, double sx, double sy, double inv_n) {
  return (float)(sxy * inv_n - (sx * inv_n) * (sy * inv_n));
}

// Lee (1980), multiplicative form (Lopes et al. 1990):
//   y = m + W (x - m),  W = 1 - Cu^2 / Ci^2  clamped to [0, 1].
// Written as (var - Cu^2 m^2) / (var + tiny) so that var = 0 (a flat window) gives W = 0, y = m;
// that is below 1 by construction, so only the lower clamp is needed. (Comparisons cost: the CPU
// loops vectorise them as compare-and-blend, so the per-pixel math keeps them few.)
USFAST_HD float lee_px(float x, float mean, float var, float cu2) {
  const float w = fmax_((var - cu2 * mean * mean) / (var + USFAST_SPK_TINY), 0.f);
  return mean + w * (x - mean);
}

// Kuan et al. (1985): W = (1 - Cu^2 / Ci^2) / (1 + Cu^2), clamped to [0, 1] (below 1 as is).
USFAST_HD float kuan_px(float x, float mean, float var, float cu2) {
  const float w = fmax_((var - cu2 * mean * mean) / (var * (1.f + cu2) + USFAST_SPK_TINY), 0.f);
  return mean + w * (x - mean);
}

// Frost et al. (1982): y = sum m(t) x(t) / sum m(t) over the window, m(t) = exp(-a |t|) with
// a = K Ci^2 at the centre pixel. Here K = damping / Cu^2, so that a = damping in a region whose
// Ci equals the noise Cu, whatever the speckle level, and |t| = |dr| + |dc| (city-block), which
// makes every weight a product beta^|dr| beta^|dc| of one exponential beta = exp(-a).
USFAST_HD float frost_beta(float mean, float var, float damping_over_cu2) {
  return fexp(-(damping_over_cu2 * var / (mean * mean + USFAST_SPK_TINY)));
}

// sum_j beta^|j| row[j] over j in [j0, j1] (j0 <= 0 <= j1), and the sum of those weights.
USFAST_HD float frost_row(const float* row, int j0, int j1, float beta, float* wsum) {
  float acc = 0.f, ws = 0.f, w = 1.f;
  for (int j = 0; j <= j1; ++j) { acc += w * row[j]; ws += w; w *= beta; }
  w = beta;
  for (int j = -1; j >= j0; --j) { acc += w * row[j]; ws += w; w *= beta; }
  *wsum = ws;
  return acc;
}

// Weighted window sum of Frost's filter at the pixel x points to. Rows dr in [i0, i1] and
// columns dc in [j0, j1] (offsets from the centre, all inside the image); weights
// beta^(|dr| + |dc|) = beta^|dr| beta^|dc|. Returns sum(w x) / sum(w).
USFAST_HD float frost_px(const float* x, usf_i64 rs, int i0, int i1, int j0, int j1, float beta) {
  float num = 0.f, wrsum = 0.f, wcsum = 1.f, wr = 1.f;
  // rows at and below the centre (weights 1, beta, beta^2, ...), then the rows above
  for (int i = 0; i <= i1; ++i) {
    num += wr * frost_row(x + (usf_i64)i * rs, j0, j1, beta, &wcsum);
    wrsum += wr;
    wr *= beta;
  }
  wr = beta;
  for (int i = -1; i >= i0; --i) {
    num += wr * frost_row(x + (usf_i64)i * rs, j0, j1, beta, &wcsum);
    wrsum += wr;
    wr *= beta;
  }
  return num / (wrsum * wcsum);  // wrsum, wcsum >= 1 (the centre weight)
}

// Guided filter (He, Sun, Tang 2013), box-filter form. From the window means of the guide I,
// the input p, I^2 and I p: a = cov(I, p) / (var(I) + eps), b = mean(p) - a mean(I);
// the output is mean(a) I + mean(b). With I = p: cov = var(I). eps > 0.
USFAST_HD float guided_a(float var_i, float cov_ip, float eps) { return cov_ip / (var_i + eps); }
USFAST_HD float guided_b(float mean_i, float mean_p, float a) { return mean_p - a * mean_i; }
USFAST_HD float guided_out_px(float guide, float mean_a, float mean_b) {
  return mean_a * guide + mean_b;
}

// ---- channel sources of the column pass ------------------------------------------------------
// Channel k (0 <= k < K) at pixel (f, r, c): (x, x^2), (u, v) or (I, p, I^2, I p).
struct src_sq {
  const float* x;
  usf_i64 fs, rs;
  USFAST_HD double ch(int f, int r, int c, int k) const {
    const double a = x[f * fs + r * rs + c];
    return k == 0 ? a : a * a;
  }
};
struct src_pair {
  const float* u;
  const float* v;
  usf_i64 ufs, urs, vfs, vrs;
  USFAST_HD double ch(int f, int r, int c, int k) const {
    return k == 0 ? (double)u[f * ufs + r * urs + c] : (double)v[f * vfs + r * vrs + c];
  }
};
struct src_guide {
  const float* g;
  const float* p;
  usf_i64 gfs, grs, pfs, prs;
  USFAST_HD double ch(int f, int r, int c, int k) const {
    const double a = g[f * gfs + r * grs + c];
    const double b = p[f * pfs + r * prs + c];
    return k == 0 ? a : (k == 1 ? b : (k == 2 ? a * a : a * b));
  }
};

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// ---- CUDA kernels ----------------------------------------------------------------------------
// Work arrays (column sums, a/b maps) are contiguous F x R x C float planes: plane k of frame f
// starts at ws + (k * F + f) * R * C.
//
// Column pass: one thread per (column, strip of USFAST_BOX_STRIP rows); x = column, y = strip,
// z = frame. Each thread seeds its running sums directly and then slides down its strip.
#define USFAST_BOX_STRIP 32
// Row pass: one thread per (row, segment of USFAST_BOX_STRIP columns); x = row, y = segment.

namespace usfast {
namespace k {
template <int K, class Src>
__device__ __forceinline__ void box_cols(const Src& src, float* ws, int F, int R, int C, int h) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r0 = (blockIdx.y * blockDim.y + threadIdx.y) * USFAST_BOX_STRIP;
  const int f = blockIdx.z;
  if (c >= C || r0 >= R) return;
  const int r1 = r0 + USFAST_BOX_STRIP < R ? r0 + USFAST_BOX_STRIP : R;
  double s[K];
  for (int k = 0; k < K; ++k) s[k] = 0.0;
  const int a = r0 - h < 0 ? 0 : r0 - h;
  const int b = r0 + h > R - 1 ? R - 1 : r0 + h;
  for (int r = a; r <= b; ++r)
    for (int k = 0; k < K; ++k) s[k] += src.ch(f, r, c, k);
  const usf_i64 plane = (usf_i64)R * C;
  for (int r = r0; r < r1; ++r) {
    for (int k = 0; k < K; ++k) ws[((usf_i64)k * F + f) * plane + (usf_i64)r * C + c] = (float)s[k];
    if (r + h + 1 < R)
      for (int k = 0; k < K; ++k) s[k] += src.ch(f, r + h + 1, c, k);
    if (r - h >= 0)
      for (int k = 0; k < K; ++k) s[k] -= src.ch(f, r - h, c, k);
  }
}

// Row pass: slides the horizontal window over the column sums of row r, columns
// [c0, c0 + USFAST_BOX_STRIP), and hands each pixel's K window sums and 1 / pixel count to
// `emit(f, r, c, sums, inv_n)`.
template <int K, class Emit>
__device__ __forceinline__ void box_rows_at(const float* ws, int F, int R, int C, int h, int f,
                                            int r, int c0, const Emit& emit) {
  const int c1 = c0 + USFAST_BOX_STRIP < C ? c0 + USFAST_BOX_STRIP : C;
  const usf_i64 plane = (usf_i64)R * C;
  const float* row[K];
  for (int k = 0; k < K; ++k) row[k] = ws + ((usf_i64)k * F + f) * plane + (usf_i64)r * C;
  double s[K];
  for (int k = 0; k < K; ++k) s[k] = 0.0;
  const int a = c0 - h < 0 ? 0 : c0 - h;
  const int b = c0 + h > C - 1 ? C - 1 : c0 + h;
  for (int c = a; c <= b; ++c)
    for (int k = 0; k < K; ++k) s[k] += row[k][c];
  const double nr = (double)clipped_count(r, h, R);
  for (int c = c0; c < c1; ++c) {
    emit(f, r, c, s, 1.0 / (nr * clipped_count(c, h, C)));
    if (c + h + 1 < C)
      for (int k = 0; k < K; ++k) s[k] += row[k][c + h + 1];
    if (c - h >= 0)
      for (int k = 0; k < K; ++k) s[k] -= row[k][c - h];
  }
}
template <int K, class Emit>
__device__ __forceinline__ void box_rows(const float* ws, int F, int R, int C, int h,
                                         const Emit& emit) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  const int c0 = (blockIdx.y * blockDim.y + threadIdx.y) * USFAST_BOX_STRIP;
  if (r < R && c0 < C) box_rows_at<K>(ws, F, R, C, h, (int)blockIdx.z, r, c0, emit);
}

struct emit_lee {
  const float* x;
  usf_i64 xfs, xrs;
  float* y;
  usf_i64 yfs, yrs;
  float cu2;
  bool kuan;
  __device__ void operator()(int f, int r, int c, const double* s, double inv_n) const {
    const float m = box_mean(s[0], inv_n), v = box_var(s[1], s[0], inv_n);
    const float p = x[f * xfs + r * xrs + c];
    y[f * yfs + r * yrs + c] = kuan ? kuan_px(p, m, v, cu2) : lee_px(p, m, v, cu2);
  }
};

struct emit_frost {
  const float* x;
  usf_i64 xfs, xrs;
  float* y;
  usf_i64 yfs, yrs;
  int R, C, h;
  float damping_over_cu2;
  __device__ void operator()(int f, int r, int c, const double* s, double inv_n) const {
    const float beta =
        frost_beta(box_mean(s[0], inv_n), box_var(s[1], s[0], inv_n), damping_over_cu2);
    const int i0 = r - h < 0 ? -r : -h, i1 = r + h > R - 1 ? R - 1 - r : h;
    const int j0 = c - h < 0 ? -c : -h, j1 = c + h > C - 1 ? C - 1 - c : h;
    y[f * yfs + r * yrs + c] = frost_px(x + f * xfs + r * xrs + c, xrs, i0, i1, j0, j1, beta);
  }
};

// Guided filter, first stage: a and b maps (planes 0 and 1 of `ab`).
template <int K>
struct emit_guided_ab {
  float* ab;
  int F, R, C;
  float eps;
  __device__ void operator()(int f, int r, int c, const double* s, double inv_n) const {
    // K = 2: sums of (I, I^2), self-guided; K = 4: sums of (I, p, I^2, I p).
    const float mi = box_mean(s[0], inv_n);
    const float mp = K == 2 ? mi : box_mean(s[1], inv_n);
    const float vi = box_var(s[K == 2 ? 1 : 2], s[0], inv_n);
    const float cv = K == 2 ? vi : box_cov(s[3], s[0], s[1], inv_n);
    const float a = guided_a(vi, cv, eps);
    const usf_i64 plane = (usf_i64)R * C, i = (usf_i64)r * C + c;
    ab[(usf_i64)f * plane + i] = a;
    ab[((usf_i64)F + f) * plane + i] = guided_b(mi, mp, a);
  }
};

struct emit_guided_out {
  const float* g;
  usf_i64 gfs, grs;
  float* y;
  usf_i64 yfs, yrs;
  __device__ void operator()(int f, int r, int c, const double* s, double inv_n) const {
    y[f * yfs + r * yrs + c] =
        guided_out_px(g[f * gfs + r * grs + c], box_mean(s[0], inv_n), box_mean(s[1], inv_n));
  }
};
}  // namespace k
}  // namespace usfast

// Column sums of (x, x^2) into planes 0, 1 of ws.
extern "C" __global__ void usfast_box_cols_sq(const float* x, usf_i64 xfs, usf_i64 xrs, float* ws,
                                              int F, int R, int C, int h) {
  usfast::k::src_sq s{x, xfs, xrs};
  usfast::k::box_cols<2>(s, ws, F, R, C, h);
}
// Column sums of (u, v) into planes 0, 1 of ws.
extern "C" __global__ void usfast_box_cols_pair(const float* u, usf_i64 ufs, usf_i64 urs,
                                                const float* v, usf_i64 vfs, usf_i64 vrs, float* ws,
                                                int F, int R, int C, int h) {
  usfast::k::src_pair s{u, v, ufs, urs, vfs, vrs};
  usfast::k::box_cols<2>(s, ws, F, R, C, h);
}
// Column sums of (I, p, I^2, I p) into planes 0..3 of ws.
extern "C" __global__ void usfast_box_cols_guide(const float* g, usf_i64 gfs, usf_i64 grs,
                                                 const float* p, usf_i64 pfs, usf_i64 prs,
                                                 float* ws, int F, int R, int C, int h) {
  usfast::k::src_guide s{g, p, gfs, grs, pfs, prs};
  usfast::k::box_cols<4>(s, ws, F, R, C, h);
}

extern "C" __global__ void usfast_lee_rows(const float* ws, const float* x, usf_i64 xfs,
                                           usf_i64 xrs, float* y, usf_i64 yfs, usf_i64 yrs, int F,
                                           int R, int C, int h, float cu2) {
  usfast::k::box_rows<2>(ws, F, R, C, h, usfast::k::emit_lee{x, xfs, xrs, y, yfs, yrs, cu2, false});
}
extern "C" __global__ void usfast_kuan_rows(const float* ws, const float* x, usf_i64 xfs,
                                            usf_i64 xrs, float* y, usf_i64 yfs, usf_i64 yrs, int F,
                                            int R, int C, int h, float cu2) {
  usfast::k::box_rows<2>(ws, F, R, C, h, usfast::k::emit_lee{x, xfs, xrs, y, yfs, yrs, cu2, true});
}
extern "C" __global__ void usfast_frost_rows(const float* ws, const float* x, usf_i64 xfs,
                                             usf_i64 xrs, float* y, usf_i64 yfs, usf_i64 yrs,
                                             int F, int R, int C, int h, float damping_over_cu2) {
  const usfast::k::emit_frost e{x, xfs, xrs, y, yfs, yrs, R, C, h, damping_over_cu2};
  usfast::k::box_rows<2>(ws, F, R, C, h, e);
}
// Guided filter stage 1: window sums in ws (2 planes self-guided, 4 with a guide) -> a, b planes.
extern "C" __global__ void usfast_guided_ab_self(const float* ws, float* ab, int F, int R, int C,
                                                 int h, float eps) {
  usfast::k::box_rows<2>(ws, F, R, C, h, usfast::k::emit_guided_ab<2>{ab, F, R, C, eps});
}
extern "C" __global__ void usfast_guided_ab_guide(const float* ws, float* ab, int F, int R, int C,
                                                  int h, float eps) {
  usfast::k::box_rows<4>(ws, F, R, C, h, usfast::k::emit_guided_ab<4>{ab, F, R, C, eps});
}
// Guided filter stage 2: window sums of (a, b) in ws -> mean(a) I + mean(b).
extern "C" __global__ void usfast_guided_out_rows(const float* ws, const float* g, usf_i64 gfs,
                                                  usf_i64 grs, float* y, usf_i64 yfs, usf_i64 yrs,
                                                  int F, int R, int C, int h) {
  usfast::k::box_rows<2>(ws, F, R, C, h, usfast::k::emit_guided_out{g, gfs, grs, y, yfs, yrs});
}
#endif  // __CUDACC__
