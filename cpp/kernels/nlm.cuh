// Non-local means (Buades, Coll & Morel 2005) with the offset-outer fast algorithm of Darbon et
// al. 2008 / Condat 2010: for each offset delta of the search window, the squared difference image
// (x[p] - x[p + delta])^2 is box-summed over the patch, which gives the patch distance of every
// pixel to its delta-neighbour in O(1) per pixel, whatever the patch size. Single source of the
// per-pixel math for the CPU, CUDA and CuPy backends.
//
// Intended input: the log-compressed (display) image, where speckle is close to additive, so
// that the Euclidean patch distance fits it. Definitions (P = patch_size, o = P/2, d = search/2):
//   ssd(p, delta) = sum_{|i|,|j| <= o} (x[p + (i,j)] - x[p + delta + (i,j)])^2      (centred P x P)
//   w(p, delta)   = exp(-max(ssd / P^2 - 2 sigma^2, 0) / h^2)
//   y[p]          = sum_delta w x[p + delta] / sum_delta w,   delta in [-d, d]^2 (delta = 0: w = 1)
// Borders: reflect-101 (as skimage.restoration.denoise_nl_means, which pads with numpy 'reflect').
#pragma once
#include "bilateral.cuh"

namespace usfast {
namespace k {

USFAST_HD_FLAT float sqdiff(float a, float b) {
  const float t = a - b;
  return t * t;
}

// Weight of a patch pair from its sum of squared differences.
USFAST_HD_FLAT float nlm_weight(float ssd, float inv_p2, float two_sigma2, float inv_h2) {
  return exp_neg(-fpos(ssd * inv_p2 - two_sigma2) * inv_h2);
}

// Largest half_patch + half_search the GPU kernel stages in shared memory (48 KiB per block).
constexpr int kNlmMaxReach = 40;

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// One block = a 32 x 8 output tile. The tile plus a reach = o + d halo is staged in shared memory
// with reflect-101 borders, then every offset is one pass: the column sums of the squared
// differences over the patch height (V), a barrier, each thread's patch distance as the sum of
// P consecutive V values, its weight and the running sums. Dynamic shared memory:
// ((8 + 2 reach) * (32 + 2 reach) + 8 * (32 + 2 o)) floats.
extern "C" __global__ void usfast_nlm_f32(const float* x, usf_i64 xfs, usf_i64 xrs, float* y,
                                          usf_i64 yfs, usf_i64 yrs, int R, int C, int half_patch,
                                          int half_search, float inv_p2, float two_sigma2,
                                          float inv_h2) {
  extern __shared__ float usfast_nlm_smem[];
  const int o = half_patch, d = half_search, reach = o + d;
  const int tw = 32 + 2 * reach, th = 8 + 2 * reach, vw = 32 + 2 * o;
  float* U = usfast_nlm_smem;
  float* V = usfast_nlm_smem + th * tw;
  const int f = blockIdx.z, tx = threadIdx.x, ty = threadIdx.y;
  const int r0 = blockIdx.y * 8, c0 = blockIdx.x * 32;
  const float* xf = x + f * xfs;
  for (int i = ty; i < th; i += 8) {
    const usf_i64 sr = (usf_i64)usfast::k::reflect101(r0 - reach + i, R) * xrs;
    for (int j = tx; j < tw; j += 32) U[i * tw + j] = xf[sr + usfast::k::reflect101(c0 - reach + j, C)];
  }
  __syncthreads();
  float num = 0.f, den = 0.f;
  for (int dy = -d; dy <= d; ++dy) {
    for (int dx = -d; dx <= d; ++dx) {
      const int shift = dy * tw + dx;
      for (int j = tx; j < vw; j += 32) {
        const float* a = U + (ty + d) * tw + j + d;
        float s = 0.f;
        for (int k = 0; k <= 2 * o; ++k, a += tw) s += usfast::k::sqdiff(a[0], a[shift]);
        V[ty * vw + j] = s;
      }
      __syncthreads();
      float ssd = 0.f;
      for (int m = 0; m <= 2 * o; ++m) ssd += V[ty * vw + tx + m];
      const float w = usfast::k::nlm_weight(ssd, inv_p2, two_sigma2, inv_h2);
      num += w * U[(ty + reach + dy) * tw + tx + reach + dx];
      den += w;
      __syncthreads();
    }
  }
  const int r = r0 + ty, c = c0 + tx;
  if (r < R && c < C) y[f * yfs + r * yrs + c] = num / den;
}
#endif
