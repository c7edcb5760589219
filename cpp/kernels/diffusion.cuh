// Speckle-reducing diffusion: SRAD (Yu & Acton, IEEE TIP 2002) and DPAD (Aja-Fernandez &
// Alberola-Lopez, IEEE TIP 2006). The single source of this math for the CPU (OpenMP), CUDA and
// CuPy (NVRTC) backends.
//
// Both update the image with the same conservative 4-neighbour scheme (Yu & Acton's
// discretisation of div(c grad I), grid step h = 1, Neumann borders: a neighbour outside the
// image is the pixel itself, so no flux crosses the border and the image mean is conserved):
//   I' = I + dt [ c(r,c)(I_N - I) + c(r+1,c)(I_S - I) + c(r,c)(I_W - I) + c(r,c+1)(I_E - I) ]
// with c in [0, 1]. I' is a convex combination of I and its neighbours for dt <= 1/4 (the
// stability limit enforced by the API): no overshoot, no overflow, for any number of iterations.
// (Yu & Acton write the step as (dt'/4) * d; our dt is their dt'/4.)
//
// SRAD: c from the instantaneous coefficient of variation q and the speckle scale q0,
//   c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2))) = q0^2 (1 + q0^2) / (q^2 + q0^4).
// DPAD: c from the local coefficient of variation Ci^2 = var / mean^2 over a window and the noise
//   coefficient Cn^2 (Kuan's form): c = (1 + 1/Ci^2) / (1 + 1/Cn^2).
#pragma once
#include "localstats.cuh"

#if !defined(__CUDACC_RTC__)
#include <cstring>
#endif

namespace usfast {
namespace k {

// SRAD's diffusion coefficient at a pixel x with neighbours n, s, w, e (Neumann: a neighbour
// outside the image is x itself), clamped to [0, 1]. The instantaneous coefficient of variation
//   q^2 = (1/2 |grad I|^2 / I^2 - 1/16 (lap I)^2 / I^2) / (1 + 1/4 lap I / I)^2,
// |grad I|^2 the sum of the four squared differences and lap I their sum, is, multiplied through
// by I^2, num / m4^2 with num = 1/2 sum d^2 - 1/16 (sum d)^2 and m4 = x + lap/4 the mean of the
// four neighbours. With a = q0^2 (1 + q0^2) and b = q0^4 (see top),
//   c = a / (q^2 + b) = a m4^2 / (num + b m4^2)
// in one division. num >= sum d^2 / 4 >= 0 (Cauchy-Schwarz: (sum d)^2 <= 4 sum d^2, a margin no
// rounding can eat), so with tiny added to m4^2 and to the denominator c >= 0 as is and only the
// upper clamp remains. q0 = 0 (no speckle: a constant or all-zero image) gives c = 0; where the
// neighbours are all zero q is infinite and c = 0 too.
USFAST_HD float srad_coef_a(float q0sq) { return q0sq * (1.f + q0sq); }
USFAST_HD float srad_coef_b(float q0sq) { return q0sq * q0sq; }
USFAST_HD float srad_coef_px(float x, float n, float s, float w, float e, float a, float b) {
  const float dn = n - x, ds = s - x, dw = w - x, de = e - x;
  const float sum = (dn + ds) + (dw + de);
  const float sq = (dn * dn + ds * ds) + (dw * dw + de * de);
  const float m4 = x + 0.25f * sum;
  const float m2 = m4 * m4 + USFAST_SPK_TINY;
  const float num = 0.5f * sq - 0.0625f * sum * sum;
  return fmin_(a * m2 / (num + b * m2 + USFAST_SPK_TINY), 1.f);
}

// DPAD diffusion coefficient clamped to [0, 1]: Cn^2 (1 + Ci^2) / (Ci^2 (1 + Cn^2)), >= 0 as
// is. Cn = 0 gives c = 0 (nothing to remove); Ci = 0 (a flat window) gives c = 1.
USFAST_HD float dpad_coef(float ci2, float cn2) {
  return fmin_(cn2 * (1.f + ci2) / (ci2 * (1.f + cn2) + USFAST_SPK_TINY), 1.f);
}

// Local coefficient of variation squared from window statistics.
USFAST_HD float local_cv2(float mean, float var) {
  return var / (mean * mean + USFAST_SPK_TINY);
}

// One explicit step of the conservative scheme at a pixel (see top): c at the pixel, cs at
// the pixel below, ce at the pixel to the right.
USFAST_HD float diffusion_step(float x, float n, float s, float w, float e, float c, float cs,
                               float ce, float dt) {
  return x + dt * ((c * (n - x) + cs * (s - x)) + (c * (w - x) + ce * (e - x)));
}

// ---- SRAD's speckle scale q0 estimated from the image ----------------------------------------
// The frame is cut into T x T tiles (the last row/column of tiles clipped to the image); each
// tile gives var / mean^2 and q0^2 is the median over tiles (the lower middle value for an even
// count). T = 32, doubled until there are at most USFAST_Q0_MAX_TILES tiles (1024 x 1024 images
// keep 32 x 32 tiles, 2048 x 2048 get 64 x 64): the GPU sorts them in one block, every iteration.
#define USFAST_Q0_MAX_TILES 1024
USFAST_HD int q0_tile_size(int rows, int cols) {
  int t = 32;
  while ((usf_i64)((rows + t - 1) / t) * ((cols + t - 1) / t) > USFAST_Q0_MAX_TILES) t *= 2;
  return t;
}

// var / mean^2 from double sums over n pixels (0 when the mean is 0: no scale to speak of).
USFAST_HD float sums_cv2(double s1, double s2, double n) {
  const double m = s1 / n;
  const float v = (float)(s2 / n - m * m);
  const float m2 = (float)(m * m);
  return (v > 0.f ? v : 0.f) / fmax_(m2, USFAST_SPK_TINY);
}

// ---- DPAD's noise coefficient: the median of the local Ci^2 over the frame -------------------
// Read from a histogram with 16 bins per octave over [2^-32, 2^8) (the first bin also takes
// everything below, the last everything above), interpolating linearly inside the bin that holds
// the middle: within one bin (4.4 %) of the exact median, and computable in the same pass that
// produces Ci^2. Bin of v >= 0: 16 (e + 32) + m, with v = 2^e (1 + m/16 + ...), i.e. the exponent
// and the top four mantissa bits of the float.
#define USFAST_CV_BINS 640
USFAST_HD int cv2_bin(float v) {
  const int bits = float_bits(v);
  const int b = (((bits >> 23) & 255) - 127 + 32) * 16 + ((bits >> 19) & 15);
  return v > 0.f ? (b < 0 ? 0 : (b > USFAST_CV_BINS - 1 ? USFAST_CV_BINS - 1 : b)) : 0;
}
// Lower edge of bin b (bin 0 starts at 0).
USFAST_HD double cv2_bin_edge(int b) {
  if (b <= 0) return 0.0;
  const int e = b / 16 - 32, m = b % 16;
  double p = 1.0;  // 2^e without ldexp (NVRTC-safe, exact for |e| < 1024)
  for (int i = 0; i < (e < 0 ? -e : e); ++i) p *= 2.0;
  if (e < 0) p = 1.0 / p;
  return p * (1.0 + m / 16.0);
}
// Interpolated median inside bin b, which holds `count` values, `below` values lie in lower bins
// and `half` = n/2.
USFAST_HD float cv2_bin_median(int b, double below, double count, double half) {
  const double lo = cv2_bin_edge(b), hi = cv2_bin_edge(b + 1);
  return (float)(lo + (hi - lo) * ((half - below) / count));
}
// Median of a frame's histogram (n values), scanning the bins in order (host path).
USFAST_HD float cv2_hist_median(const unsigned* hist, double n) {
  const double half = 0.5 * n;
  double below = 0.0;
  for (int b = 0; b < USFAST_CV_BINS; ++b) {
    const double cnt = hist[b];
    if (cnt > 0.0 && below + cnt >= half) return cv2_bin_median(b, below, cnt, half);
    below += cnt;
  }
  return 0.f;
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// ---- CUDA kernels ----------------------------------------------------------------------------
namespace usfast {
namespace k {
// SRAD's diffusion coefficient at (r, c) of a frame, clamped (Neumann) neighbours.
__device__ __forceinline__ float srad_coef_at(const float* x, usf_i64 rs, int R, int C, int r,
                                              int c, float a, float b) {
  const float v = x[r * rs + c];
  const float n = x[(r > 0 ? r - 1 : r) * rs + c];
  const float s = x[(r < R - 1 ? r + 1 : r) * rs + c];
  const float w = x[r * rs + (c > 0 ? c - 1 : c)];
  const float e = x[r * rs + (c < C - 1 ? c + 1 : c)];
  return srad_coef_px(v, n, s, w, e, a, b);
}

// Block-wide sum of two doubles: the result is valid in thread 0 (any block shape with a
// multiple of 32 threads, at most 1024).
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sa[32], sb[32];
  const int tid = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5, nw = (blockDim.x * blockDim.y * blockDim.z) >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  if (lane == 0) { sa[warp] = a; sb[warp] = b; }
  __syncthreads();
  if (warp == 0) {
    a = lane < nw ? sa[lane] : 0.0;
    b = lane < nw ? sb[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, o);
      b += __shfl_down_sync(0xffffffffu, b, o);
    }
  }
}

// SRAD's scale statistics on the GPU: sums of x and x^2 per 32 x 8 block of the launch grid
// (blocks of every launcher are 32 x 8; a tile of T = 32 k pixels is whole blocks), over the
// pixels inside the region [r0, r0 + RR) x [c0, c0 + CC) (the frame, or the caller's region):
// part[2 * ((f * gridDim.y + by) * gridDim.x + bx) + {0, 1}]. v is the pixel's value, or
// anything for a thread outside the image (active = false).
__device__ __forceinline__ void srad_block_sums(double* part, bool active, int r, int c, float v,
                                                int r0, int c0, int RR, int CC) {
  const bool in = active && r >= r0 && r < r0 + RR && c >= c0 && c < c0 + CC;
  double s1 = in ? (double)v : 0.0;
  double s2 = s1 * s1;
  block_sum2(s1, s2);
  if (threadIdx.x == 0 && threadIdx.y == 0) {
    const usf_i64 i = ((usf_i64)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    part[2 * i] = s1;
    part[2 * i + 1] = s2;
  }
}
}  // namespace k
}  // namespace usfast

// SRAD scale statistics of an image (the input, before the first iteration); later iterations
// get them from usfast_srad_step as it writes each result. Grid and blocks as usfast_srad_step.
extern "C" __global__ void usfast_srad_block_sums(const float* x, usf_i64 xfs, usf_i64 xrs, int R,
                                                  int C, int r0, int c0, int RR, int CC,
                                                  double* part) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  const bool active = r < R && c < C;
  const float v = active ? x[blockIdx.z * xfs + r * xrs + c] : 0.f;
  usfast::k::srad_block_sums(part, active, r, c, v, r0, c0, RR, CC);
}

// q0^2 per frame from the block sums (gx x gy blocks per frame): var / mean^2 of all of them
// pooled (pooled = 1: the caller's region of RR x CC pixels), or the median over T x T tiles of
// the R x C frame of each tile's var / mean^2 (pooled = 0; the lower middle value for an even
// count). One block of 1024 threads per frame; the median sorts the tile values in shared
// memory (bitonic, at most USFAST_Q0_MAX_TILES).
extern "C" __global__ void usfast_srad_q0(const double* part, int gx, int gy, int R, int C, int T,
                                          int RR, int CC, int pooled, float* q0sq) {
  __shared__ float v[USFAST_Q0_MAX_TILES];
  const int f = blockIdx.x;
  const double* s = part + (usf_i64)2 * f * gx * gy;
  if (pooled) {
    double a = 0.0, b = 0.0;
    for (int i = threadIdx.x; i < gx * gy; i += blockDim.x) { a += s[2 * i]; b += s[2 * i + 1]; }
    usfast::k::block_sum2(a, b);
    if (threadIdx.x == 0) q0sq[f] = usfast::k::sums_cv2(a, b, (double)RR * CC);
    return;
  }
  const int ntr = (R + T - 1) / T, ntc = (C + T - 1) / T, nt = ntr * ntc;
  const int bh = T / 8, bw = T / 32;  // blocks per tile
  int np = 1;
  while (np < nt) np <<= 1;
  for (int t = threadIdx.x; t < np; t += blockDim.x) {
    float q = 3.0e38f;  // padding sorts last
    if (t < nt) {
      const int tr = t / ntc, tc = t % ntc;
      double a = 0.0, b = 0.0;
      for (int by = tr * bh; by < (tr + 1) * bh && by < gy; ++by)
        for (int bx = tc * bw; bx < (tc + 1) * bw && bx < gx; ++bx) {
          a += s[2 * (by * gx + bx)];
          b += s[2 * (by * gx + bx) + 1];
        }
      const int th = ((tr + 1) * T < R ? T : R - tr * T), tw = ((tc + 1) * T < C ? T : C - tc * T);
      q = usfast::k::sums_cv2(a, b, (double)th * tw);
    }
    v[t] = q;
  }
  __syncthreads();
  for (int k = 2; k <= np; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < np; i += blockDim.x) {
        const int p = i ^ j;
        if (p > i) {
          const bool up = (i & k) == 0;
          const float a = v[i], b = v[p];
          if ((a > b) == up) { v[i] = b; v[p] = a; }
        }
      }
      __syncthreads();
    }
  if (threadIdx.x == 0) q0sq[f] = v[(nt - 1) / 2];
}

// One fused SRAD iteration: the coefficients at the pixel, below and to the right, and the
// update. q0^2 from q0sq[f] (device, estimated this iteration) or, when q0sq is null,
// q0sq_value. With part non-null the block sums of the result over the region (r0, c0, RR, CC)
// are gathered for the next iteration's scale (see usfast_srad_block_sums).
extern "C" __global__ void usfast_srad_step(const float* x, usf_i64 xfs, usf_i64 xrs, float* y,
                                            usf_i64 yfs, usf_i64 yrs, int R, int C,
                                            const float* q0sq, float q0sq_value, float dt,
                                            double* part, int r0, int c0, int RR, int CC) {
  using namespace usfast::k;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  const int f = blockIdx.z;
  const bool active = r < R && c < C;
  float out = 0.f;
  if (active) {
    const float q = q0sq ? q0sq[f] : q0sq_value;
    const float a = srad_coef_a(q), b = srad_coef_b(q);
    const float* xf = x + f * xfs;
    const int rs_ = r < R - 1 ? r + 1 : r, ce_ = c < C - 1 ? c + 1 : c;
    const float cc = srad_coef_at(xf, xrs, R, C, r, c, a, b);
    const float cs = srad_coef_at(xf, xrs, R, C, rs_, c, a, b);
    const float ce = srad_coef_at(xf, xrs, R, C, r, ce_, a, b);
    out = diffusion_step(xf[r * xrs + c], xf[(r > 0 ? r - 1 : r) * xrs + c], xf[rs_ * xrs + c],
                         xf[r * xrs + (c > 0 ? c - 1 : c)], xf[r * xrs + ce_], cc, cs, ce, dt);
    y[f * yfs + r * yrs + c] = out;
  }
  if (part) srad_block_sums(part, active, r, c, out, r0, c0, RR, CC);
}

// DPAD, statistics: the row pass over the column sums of (x, x^2) in ws (localstats.cuh layout)
// writes Ci^2 to the contiguous plane ci2 and counts it into hist (USFAST_CV_BINS per frame).
extern "C" __global__ void usfast_dpad_ci2(const float* ws, float* ci2, unsigned* hist, int F,
                                           int R, int C, int h) {
  __shared__ unsigned sh[USFAST_CV_BINS];
  const int nthreads = blockDim.x * blockDim.y, tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (int b = tid; b < USFAST_CV_BINS; b += nthreads) sh[b] = 0;
  __syncthreads();
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  const int c0 = (blockIdx.y * blockDim.y + threadIdx.y) * USFAST_BOX_STRIP;
  const int f = blockIdx.z;
  if (r < R && c0 < C) {
    float* out = ci2 + (usf_i64)f * R * C;
    usfast::k::box_rows_at<2>(ws, F, R, C, h, f, r, c0,
                              [&](int, int rr, int cc, const double* s, double inv_n) {
                                const float v = usfast::k::local_cv2(
                                    usfast::k::box_mean(s[0], inv_n),
                                    usfast::k::box_var(s[1], s[0], inv_n));
                                out[(usf_i64)rr * C + cc] = v;
                                atomicAdd(&sh[usfast::k::cv2_bin(v)], 1u);
                              });
  }
  __syncthreads();
  for (int b = tid; b < USFAST_CV_BINS; b += nthreads)
    if (sh[b]) atomicAdd(&hist[(usf_i64)f * USFAST_CV_BINS + b], sh[b]);
}

// DPAD noise coefficient per frame: the histogram median (one warp per frame), then the
// histogram is cleared for the next iteration.
extern "C" __global__ void usfast_cv_median(unsigned* hist, double n, float* cn2) {
  const int f = blockIdx.x, lane = threadIdx.x;
  unsigned* h = hist + (usf_i64)f * USFAST_CV_BINS;
  const int per = USFAST_CV_BINS / 32;  // 20 consecutive bins per lane
  double mine = 0.0;
  for (int i = 0; i < per; ++i) mine += h[lane * per + i];
  double incl = mine;  // inclusive scan over lanes
  for (int o = 1; o < 32; o <<= 1) {
    const double t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  const double half = 0.5 * n, below_lane = incl - mine;
  // the first lane whose inclusive count reaches n/2 finds the bin
  const unsigned hit = __ballot_sync(0xffffffffu, incl >= half && mine > 0.0);
  const int first = hit ? __ffs(hit) - 1 : 31;
  if (lane == first) {
    double below = below_lane;
    float m = 0.f;
    for (int i = 0; i < per; ++i) {
      const int b = lane * per + i;
      const double cnt = h[b];
      if (cnt > 0.0 && below + cnt >= half) {
        m = usfast::k::cv2_bin_median(b, below, cnt, half);
        break;
      }
      below += cnt;
    }
    cn2[f] = m;
  }
  __syncwarp();
  for (int i = 0; i < per; ++i) h[lane * per + i] = 0u;
}

// One DPAD iteration: coefficients from Ci^2 (contiguous plane) and Cn^2 of the frame.
extern "C" __global__ void usfast_dpad_step(const float* x, usf_i64 xfs, usf_i64 xrs,
                                            const float* ci2, float* y, usf_i64 yfs, usf_i64 yrs,
                                            int R, int C, const float* cn2, float dt) {
  USFAST_PIXEL_INDEX(f, r, c, R, C);
  using namespace usfast::k;
  const float n2 = cn2[f];
  const float* xf = x + f * xfs;
  const float* g = ci2 + (usf_i64)f * R * C;
  const int rs_ = r < R - 1 ? r + 1 : r, ce_ = c < C - 1 ? c + 1 : c;
  const float cc = dpad_coef(g[(usf_i64)r * C + c], n2);
  const float cs = dpad_coef(g[(usf_i64)rs_ * C + c], n2);
  const float ce = dpad_coef(g[(usf_i64)r * C + ce_], n2);
  y[f * yfs + r * yrs + c] =
      diffusion_step(xf[r * xrs + c], xf[(r > 0 ? r - 1 : r) * xrs + c], xf[rs_ * xrs + c],
                     xf[r * xrs + (c > 0 ? c - 1 : c)], xf[r * xrs + ce_], cc, cs, ce, dt);
}
#endif  // __CUDACC__
