// Bright-ridge enhancement: box decimation, separable Gaussian-derivative Hessian, analytic 2x2
// eigen-decomposition, Frangi vesselness or ridge strength, local orientation. The single source
// of this math for the CPU (OpenMP), CUDA and CuPy (NVRTC) backends.
//
// Layout: batches (frames F, rows R = depth, cols C = lateral); element (f, r, c) at
// p[f*fs + r*rs + c]. Points are (x = column, z = row).
//
// The Hessian at scale sigma (pixels) is computed in two separable passes with sampled Gaussian
// derivative taps g0, g1, g2 (order 0, 1, 2; radius rad; tap k+rad holds g(k)) as convolutions
//   y[i] = sum_{k=-rad..rad} g(k) x[reflect(i - k)]
// ("reflect" = half-sample symmetric, scipy.ndimage mode="reflect"):
//   rows pass (along x):  A0 = g0(x)*I,  A1 = g1(x)*I,  A2 = g2(x)*I
//   cols pass (along z):  Hxx = g0(z)*A2, Hxz = g1(z)*A1, Hzz = g2(z)*A0
// then scale-normalised by sigma^2 (Frangi et al. 1998, gamma = 2 normalisation).
#pragma once
#include "common.cuh"

namespace usfast {
namespace k {

// Half-sample symmetric index (scipy.ndimage "reflect"): -1 -> 0, n -> n-1; any i, any n >= 1.
USFAST_HD int ridge_reflect(int i, int n) {
  if (i >= 0 && i < n) return i;
  const int p = 2 * n;
  i %= p;
  if (i < 0) i += p;
  return i < n ? i : p - 1 - i;
}

USFAST_HD float ridge_load(const float* p) { return *p; }
USFAST_HD float ridge_load(const unsigned char* p) { return static_cast<float>(*p); }

// atan2 in radians, branch-free, |error| < 2e-6 rad: the same value on every
// backend and vectorisable on the CPU. Returns 0 for (0, 0).
USFAST_HD float ridge_atan2(float y, float x) {
  const float ax = fabs_(x), ay = fabs_(y);
  // max/min and the quadrant fix-ups below are arithmetic, not selects: gcc turns selects that
  // share a comparison into branches (jump threading), and the CPU loop would not vectorise
  const float d = fabs_(ax - ay);
  const float mx = 0.5f * (ax + ay + d), mn = 0.5f * (ax + ay - d);
  const float a = mn / (mx + 1e-30f);  // |error| ~ 1e-7 absolute, i.e. 1e-7 rad
  const float s = a * a;
  // minimax odd polynomial for atan on [0, 1]
  float r = -0.01172136f;
  r = r * s + 0.05265292f;
  r = r * s - 0.11643147f;
  r = r * s + 0.19354230f;
  r = r * s - 0.33262312f;
  r = r * s + 0.99997723f;
  r *= a;
  const float steep = (float)(ay > ax), left = (float)(x < 0.f), below = (float)(y < 0.f);
  r += steep * (1.57079633f - 2.f * r);
  r += left * (3.14159265f - 2.f * r);
  return r * (1.f - 2.f * below);
}

// ---- box decimation --------------------------------------------------------------------------
// Mean of the factor x factor block of input pixels starting at (r*factor, c*factor), clipped at
// the image edge (ceil(R/factor) x ceil(C/factor) outputs), times `scale` (1/255 brings uint8
// display images to [0, 1]). factor 1 is a type conversion.
template <class T>
USFAST_HD float box_decimate_px(const T* x, usf_i64 rs, int R, int C, int r, int c, int factor,
                                float scale) {
  const int r0 = r * factor, c0 = c * factor;
  const int r1 = r0 + factor < R ? r0 + factor : R;
  const int c1 = c0 + factor < C ? c0 + factor : C;
  float acc = 0.f;
  for (int i = r0; i < r1; ++i)
    for (int j = c0; j < c1; ++j) acc += ridge_load(x + (usf_i64)i * rs + j);
  return acc * scale / (float)((r1 - r0) * (c1 - c0));
}

// Row form of box_decimate_px for factor 2 and full blocks (output columns [0, n) whose block
// lies inside the row pair x0, x1): the same sum in the same order, as a vector loop on the CPU.
template <class T>
USFAST_HD void box_decimate2_row(const T* x0, const T* x1, int n, float scale, float* y) {
#if !defined(__CUDACC__)
#pragma omp simd
#endif
  for (int c = 0; c < n; ++c) {
    float acc = 0.f;
    acc += ridge_load(x0 + 2 * c);
    acc += ridge_load(x0 + 2 * c + 1);
    acc += ridge_load(x1 + 2 * c);
    acc += ridge_load(x1 + 2 * c + 1);
    y[c] = acc * scale / (float)4;
  }
}

// ---- separable Gaussian derivatives ----------------------------------------------------------
// Rows pass at column c of one row x: the three convolutions along x with g0, g1, g2 (taps: 3
// consecutive arrays of 2*rad+1 values). The _direct form needs rad <= c < C - rad.
struct ridge3 { float a0, a1, a2; };

USFAST_HD ridge3 ridge_rows_direct_px(const float* x, int c, const float* taps, int rad) {
  const int n = 2 * rad + 1;
  const float* xc = x + c + rad;
  ridge3 o;
  o.a0 = o.a1 = o.a2 = 0.f;
  for (int j = 0; j < n; ++j) {
    const float v = xc[-j];
    o.a0 += taps[j] * v;
    o.a1 += taps[n + j] * v;
    o.a2 += taps[2 * n + j] * v;
  }
  return o;
}

USFAST_HD ridge3 ridge_rows_reflect_px(const float* x, int C, int c, const float* taps, int rad) {
  const int n = 2 * rad + 1;
  ridge3 o;
  o.a0 = o.a1 = o.a2 = 0.f;
  for (int j = 0; j < n; ++j) {
    const float v = x[ridge_reflect(c + rad - j, C)];
    o.a0 += taps[j] * v;
    o.a1 += taps[n + j] * v;
    o.a2 += taps[2 * n + j] * v;
  }
  return o;
}

USFAST_HD ridge3 ridge_rows_px(const float* x, int C, int c, const float* taps, int rad) {
  return (c - rad >= 0 && c + rad < C) ? ridge_rows_direct_px(x, c, taps, rad)
                                       : ridge_rows_reflect_px(x, C, c, taps, rad);
}

// Cols pass at (r, c): Hessian (xx, xz, zz) from the three rows-pass planes a0, a1, a2 (same
// row stride rs), rows reflected at the edges.
struct hess2 { float xx, xz, zz; };

USFAST_HD hess2 ridge_cols_px(const float* a0, const float* a1, const float* a2, usf_i64 rs, int R,
                              int r, int c, const float* taps, int rad) {
  const int n = 2 * rad + 1;
  hess2 h;
  h.xx = h.xz = h.zz = 0.f;
  for (int j = 0; j < n; ++j) {
    const usf_i64 o = (usf_i64)ridge_reflect(r + rad - j, R) * rs + c;
    h.xx += taps[j] * a2[o];
    h.xz += taps[n + j] * a1[o];
    h.zz += taps[2 * n + j] * a0[o];
  }
  return h;
}

// Row forms of the two passes for the CPU: the same sums, in the same order (tap j = 0..n-1
// added to a zeroed accumulator), with the tap loop outside so that the column loop is a plain
// vector loop. Columns [c0, c1) of one row; the rows form needs rad <= c0, c1 <= C - rad.
USFAST_HD void ridge_rows_direct_row(const float* x, int c0, int c1, const float* taps, int rad,
                                     float* a0, float* a1, float* a2) {
  const int n = 2 * rad + 1;
  for (int c = c0; c < c1; ++c) a0[c] = a1[c] = a2[c] = 0.f;
  for (int j = 0; j < n; ++j) {
    const float g0 = taps[j], g1 = taps[n + j], g2 = taps[2 * n + j];
    const float* xj = x + rad - j;
#if !defined(__CUDACC__)
#pragma omp simd
#endif
    for (int c = c0; c < c1; ++c) {
      const float v = xj[c];
      a0[c] += g0 * v;
      a1[c] += g1 * v;
      a2[c] += g2 * v;
    }
  }
}

USFAST_HD void ridge_cols_row(const float* a0, const float* a1, const float* a2, usf_i64 rs, int R,
                              int r, int C, const float* taps, int rad, float* hxx, float* hxz,
                              float* hzz) {
  const int n = 2 * rad + 1;
  for (int c = 0; c < C; ++c) hxx[c] = hxz[c] = hzz[c] = 0.f;
  for (int j = 0; j < n; ++j) {
    const usf_i64 o = (usf_i64)ridge_reflect(r + rad - j, R) * rs;
    const float g0 = taps[j], g1 = taps[n + j], g2 = taps[2 * n + j];
    const float* p0 = a0 + o;
    const float* p1 = a1 + o;
    const float* p2 = a2 + o;
#if !defined(__CUDACC__)
#pragma omp simd
#endif
    for (int c = 0; c < C; ++c) {
      hxx[c] += g0 * p2[c];
      hxz[c] += g1 * p1[c];
      hzz[c] += g2 * p0[c];
    }
  }
}

// ---- ridge measures --------------------------------------------------------------------------
// measure: 0 = Frangi vesselness for bright ridges (Frangi 1998 eq. 15 in 2-D, as
// skimage.filters.frangi(black_ridges=False)):
//     V = exp(-Rb^2 / (2 beta^2)) (1 - exp(-S^2 / (2 c^2))),  Rb = |l1|/|l2|,  S^2 = l1^2 + l2^2,
//     V = 0 where l2 >= 0 (|l1| <= |l2|: eigenvalues sorted by magnitude);
// measure: 1 = ridge strength max(0, -l2 - |l1|) (contrast-preserving; 0 for dark ridges and
//     blobs), the weight used for needle localisation;
// measure: 2 = Hessian norm S = sqrt(l1^2 + l2^2) (sets Frangi's c from the data).
// Eigenvalues of the scale-normalised Hessian s2 * H (s2 = sigma^2).
enum { RIDGE_FRANGI = 0, RIDGE_STRENGTH = 1, RIDGE_NORM = 2 };

struct ridge_out { float response, orientation_deg; };

// (Hessian components as scalars, not a struct: gcc's omp simd keeps a struct argument in
// memory per lane, and the CPU loop would not vectorise.)
template <int M>
USFAST_HD ridge_out ridge_measure_px(float hxx, float hxz, float hzz, float s2, float beta,
                                     float c) {
  const float a = hxx * s2, b = hxz * s2, d = hzz * s2;
  const float m = 0.5f * (a + d);
  const float hd = 0.5f * (a - d);
  const float q = fsqrt(hd * hd + b * b);
  // eigenvalues m +- q sorted by magnitude: l2 = m + sgn(m) q (m - q on a tie, m = 0), written
  // as arithmetic so that the CPU loop vectorises
  const float sg = 2.f * (float)(m > 0.f) - 1.f;
  const float l1 = m - sg * q;  // smaller magnitude
  const float l2 = m + sg * q;  // larger magnitude
  ridge_out o;
  if (M == RIDGE_FRANGI) {
    const float rb = fabs_(l1) / fmax_(-l2, 1e-30f);  // unused where l2 >= 0
    const float s = l1 * l1 + l2 * l2;
    const float v = fexp(-rb * rb / (2.f * beta * beta)) * (1.f - fexp(-s / (2.f * c * c)));
    o.response = l2 < 0.f ? v : 0.f;
  } else if (M == RIDGE_STRENGTH) {
    o.response = fmax_(0.f, -l2 - fabs_(l1));
  } else {
    o.response = fsqrt(l1 * l1 + l2 * l2);
  }
  // the eigenvector of the algebraically larger eigenvalue runs along a bright ridge
  o.orientation_deg = 0.5f * ridge_atan2(2.f * b, a - d) * 57.29577951f;
  return o;
}

// The measure chosen at run time (the GPU kernels; CPU loops pick the template outside).
USFAST_HD ridge_out ridge_measure_px(hess2 h, float s2, int measure, float beta, float c) {
  return measure == RIDGE_FRANGI ? ridge_measure_px<RIDGE_FRANGI>(h.xx, h.xz, h.zz, s2, beta, c)
         : measure == RIDGE_STRENGTH
             ? ridge_measure_px<RIDGE_STRENGTH>(h.xx, h.xz, h.zz, s2, beta, c)
             : ridge_measure_px<RIDGE_NORM>(h.xx, h.xz, h.zz, s2, beta, c);
}

// Combine a scale's result into the running multiscale output: the larger response wins and
// brings its orientation. first != 0 overwrites.
USFAST_HD void ridge_combine(float* resp, float* orient, ridge_out v, int first) {
  const bool take = (first != 0) | (v.response > *resp);
  *resp = take ? v.response : *resp;
  *orient = take ? v.orientation_deg : *orient;
}

// ---- needle gating ---------------------------------------------------------------------------
// Weight of a local orientation theta (degrees, pixel space, (-90, 90]) under an angle prior
// given as up to two orientation intervals [lo, hi] (pixel-space degrees): 1 inside, falling
// linearly to 0 over `soft_deg` outside. An interval with lo > hi is unused.
USFAST_HD float needle_angle_weight(float th, float lo0, float hi0, float lo1, float hi1,
                                    float inv_soft) {
  // branch-free (max of differences, 0/1 factors) so that the CPU loop vectorises
  const float d0 = fmax_(fmax_(lo0 - th, th - hi0), 0.f);
  const float d1 = fmax_(fmax_(lo1 - th, th - hi1), 0.f);
  const float w0 = (float)(lo0 <= hi0) * fmax_(1.f - d0 * inv_soft, 0.f);
  const float w1 = (float)(lo1 <= hi1) * fmax_(1.f - d1 * inv_soft, 0.f);
  return fmax_(w0, w1);
}

// Needle enhancement at one pixel: ridge strength r times the angle-prior weight, boosted where
// the image is brighter than its running background (a moving needle over static tissue):
//     E = r * w_angle(theta) * (1 + gain * clamp((img - bg) / ref, 0, 1)).
// gain 0 leaves the temporal factor at 1.
USFAST_HD float needle_enhance_px(float r, float th, float img, float bg, float lo0, float hi0,
                                  float lo1, float hi1, float inv_soft, float gain, float inv_ref) {
  const float t = fmin_(fmax_((img - bg) * inv_ref, 0.f), 1.f);
  return r * needle_angle_weight(th, lo0, hi0, lo1, hi1, inv_soft) * (1.f + gain * t);
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// ---- CUDA kernels ------------------------------------------------------------------------------
#define USFAST_RIDGE_DECIMATE(NAME, T)                                                           \
  extern "C" __global__ void NAME(const T* x, usf_i64 xfs, usf_i64 xrs, int R, int C, float* y,  \
                                  usf_i64 yfs, usf_i64 yrs, int RO, int CO, int factor,          \
                                  float scale) {                                                 \
    USFAST_PIXEL_INDEX(f, r, c, RO, CO);                                                         \
    y[f * yfs + r * yrs + c] =                                                                   \
        usfast::k::box_decimate_px(x + f * xfs, xrs, R, C, r, c, factor, scale);                \
  }
USFAST_RIDGE_DECIMATE(usfast_box_decimate_f32, float)
USFAST_RIDGE_DECIMATE(usfast_box_decimate_u8, unsigned char)

// Rows pass: a = (a0, a1, a2) planes, each a batch with strides (afs, ars), plane p at a + p*aps.
extern "C" __global__ void usfast_ridge_rows(const float* x, usf_i64 xfs, usf_i64 xrs, float* a,
                                             usf_i64 aps, usf_i64 afs, usf_i64 ars, int R, int C,
                                             const float* taps, int rad) {
  USFAST_PIXEL_INDEX(f, r, c, R, C);
  const usfast::k::ridge3 v = usfast::k::ridge_rows_px(x + f * xfs + r * xrs, C, c, taps, rad);
  const usf_i64 o = f * afs + r * ars + c;
  a[o] = v.a0;
  a[aps + o] = v.a1;
  a[2 * aps + o] = v.a2;
}

// Cols pass + eigen-analysis + multiscale combination.
extern "C" __global__ void usfast_ridge_cols(const float* a, usf_i64 aps, usf_i64 afs, usf_i64 ars,
                                             float* resp, float* orient, usf_i64 ofs, usf_i64 ors,
                                             int R, int C, const float* taps, int rad, float s2,
                                             int measure, float beta, float cc, int first) {
  USFAST_PIXEL_INDEX(f, r, c, R, C);
  const float* a0 = a + f * afs;
  const usfast::k::hess2 h =
      usfast::k::ridge_cols_px(a0, a0 + aps, a0 + 2 * aps, ars, R, r, c, taps, rad);
  const usf_i64 o = f * ofs + r * ors + c;
  usfast::k::ridge_combine(&resp[o], &orient[o],
                           usfast::k::ridge_measure_px(h, s2, measure, beta, cc), first);
}

// Needle enhancement (in place on resp). img/bg: the image and its running background on the
// same grid, read only when temporal != 0.
extern "C" __global__ void usfast_needle_enhance(float* resp, const float* orient, usf_i64 ofs,
                                                 usf_i64 ors, const float* img, usf_i64 ifs,
                                                 usf_i64 irs, const float* bg, usf_i64 bfs,
                                                 usf_i64 brs, int R, int C, float lo0, float hi0,
                                                 float lo1, float hi1, float inv_soft, int temporal,
                                                 float gain, float inv_ref) {
  USFAST_PIXEL_INDEX(f, r, c, R, C);
  const usf_i64 o = f * ofs + r * ors + c;
  const float iv = temporal ? img[f * ifs + r * irs + c] : 0.f;
  const float bv = temporal ? bg[f * bfs + r * brs + c] : 0.f;
  resp[o] = usfast::k::needle_enhance_px(resp[o], orient[o], iv, bv, lo0, hi0, lo1, hi1, inv_soft,
                                         temporal ? gain : 0.f, inv_ref);
}
#endif  // __CUDACC__
