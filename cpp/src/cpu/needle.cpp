// CPU launchers for needle enhancement and the line accumulator (kernels/ridge.cuh,
// kernels/linefilter.cuh, kernels/hough.cuh).
//
// Floating-point exceptions are never unmasked here, so let gcc evaluate both arms of a select:
// without this it keeps branches (and scalar loops) wherever a product or quotient would only be
// needed on one side. Set before any include so that every function of this file agrees.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/hough.cuh"
#include "kernels/linefilter.cuh"
#include "kernels/ridge.cuh"
#include "src/cpu/parallel.hpp"
#include "src/needle_launch.hpp"

namespace usfast {
namespace cpu {

template <class T>
void box_decimate(Image<const T> img, Image<float> out, int factor, float scale) {
  const int R = (int)img.rows, C = (int)img.cols;
  const int64_t CO = out.cols;
  parallel_rows(out.frames, out.rows, [&](int64_t f, int64_t r) {
    const T* x = img.data + f * img.frame_stride;
    float* y = &out.at(f, r, 0);
    int64_t c0 = 0;
    if (factor == 2 && 2 * r + 1 < R) {  // full 2x2 blocks in row form
      c0 = C / 2;
      k::box_decimate2_row(x + 2 * r * img.row_stride, x + (2 * r + 1) * img.row_stride, (int)c0,
                           scale, y);
    }
    for (int64_t c = c0; c < CO; ++c)
      y[c] = k::box_decimate_px(x, img.row_stride, R, C, (int)r, (int)c, factor, scale);
  });
}
template void box_decimate<float>(Image<const float>, Image<float>, int, float);
template void box_decimate<uint8_t>(Image<const uint8_t>, Image<float>, int, float);

namespace {
// Cols pass + measure of one scale, the measure and "first scale" fixed at compile time so that
// the column loop has no branches and vectorises (a data-dependent combine lets gcc sink the
// orientation into a branch, which it cannot if-convert without -fno-trapping-math).
template <int M, int First>
void ridge_cols(Image<float> work, int64_t aps, Image<float> response, Image<float> orientation,
                const float* taps, int rad, float s2, float beta, float c) {
  const int R = (int)response.rows, C = (int)response.cols;
  parallel_rows(response.frames, R, [&](int64_t f, int64_t r) {
    static thread_local std::vector<float> hbuf;
    if (hbuf.size() < 3 * (size_t)C) hbuf.resize(3 * (size_t)C);
    float* hxx = hbuf.data();
    float* hxz = hxx + C;
    float* hzz = hxz + C;
    const float* a0 = work.data + f * work.frame_stride;
    k::ridge_cols_row(a0, a0 + aps, a0 + 2 * aps, work.row_stride, R, (int)r, C, taps, rad, hxx,
                      hxz, hzz);
    float* resp = &response.at(f, r, 0);
    float* ori = &orientation.at(f, r, 0);
#pragma omp simd
    for (int cc = 0; cc < C; ++cc) {
      k::ridge_combine(&resp[cc], &ori[cc],
                       k::ridge_measure_px<M>(hxx[cc], hxz[cc], hzz[cc], s2, beta, c), First);
    }
  });
}

}  // namespace

void ridge_scale(Image<const float> img, Image<float> work, Image<float> response,
                 Image<float> orientation, const float* taps, int rad, float sigma, int measure,
                 float beta, float c, bool first) {
  const int R = (int)img.rows, C = (int)img.cols;
  const int64_t F = img.frames;
  const int64_t aps = F * work.frame_stride;  // plane p of frame f = work frame p*F + f
  // rows pass: the reflected borders per pixel, the interior in row form (vector loops)
  const int cl = std::min(rad, C), cr = std::max(cl, C - rad);
  parallel_rows(F, R, [&](int64_t f, int64_t r) {
    const float* x = &img.at(f, r, 0);
    float* a0 = &work.at(f, r, 0);
    float* a1 = a0 + aps;
    float* a2 = a0 + 2 * aps;
    for (int cc = 0; cc < cl; ++cc) {
      const k::ridge3 v = k::ridge_rows_reflect_px(x, C, cc, taps, rad);
      a0[cc] = v.a0, a1[cc] = v.a1, a2[cc] = v.a2;
    }
    k::ridge_rows_direct_row(x, cl, cr, taps, rad, a0, a1, a2);
    for (int cc = cr; cc < C; ++cc) {
      const k::ridge3 v = k::ridge_rows_reflect_px(x, C, cc, taps, rad);
      a0[cc] = v.a0, a1[cc] = v.a1, a2[cc] = v.a2;
    }
  });
  const float s2 = sigma * sigma;
  const auto cols = measure == k::RIDGE_FRANGI
                        ? (first ? ridge_cols<k::RIDGE_FRANGI, 1> : ridge_cols<k::RIDGE_FRANGI, 0>)
                    : measure == k::RIDGE_STRENGTH
                        ? (first ? ridge_cols<k::RIDGE_STRENGTH, 1>
                                 : ridge_cols<k::RIDGE_STRENGTH, 0>)
                        : (first ? ridge_cols<k::RIDGE_NORM, 1> : ridge_cols<k::RIDGE_NORM, 0>);
  cols(work, aps, response, orientation, taps, rad, s2, beta, c);
}

void needle_gate(Image<float> response, Image<const float> orientation, Image<const float> img,
                 Image<const float> background, float lo0, float hi0, float lo1, float hi1,
                 float inv_soft, float gain, float inv_ref) {
  const int64_t C = response.cols;
  const bool temporal = background.data != nullptr;
  parallel_rows(response.frames, response.rows, [&](int64_t f, int64_t r) {
    float* y = &response.at(f, r, 0);
    const float* th = &orientation.at(f, r, 0);
    if (temporal) {
      const float* iv = &img.at(f, r, 0);
      const float* bv = &background.at(f, r, 0);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c)
        y[c] = k::needle_enhance_px(y[c], th[c], iv[c], bv[c], lo0, hi0, lo1, hi1, inv_soft, gain,
                                    inv_ref);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c)
        y[c] = k::needle_enhance_px(y[c], th[c], 0.f, 0.f, lo0, hi0, lo1, hi1, inv_soft, 0.f, 0.f);
    }
  });
}

template <class T>
void oriented_line_filter(Image<const T> img, Image<float> response, Image<float> angle,
                          const float* dirs, const float* angles, int n_angles, int n_samples,
                          float step, float side, float scale) {
  const int R = (int)img.rows, C = (int)img.cols;
  parallel_rows(img.frames, img.rows, [&](int64_t f, int64_t r) {
    const T* x = img.data + f * img.frame_stride;
    float* y = &response.at(f, r, 0);
    float* a = &angle.at(f, r, 0);
    for (int c = 0; c < C; ++c) {
      int best;
      const float v = k::line_filter_px(x, img.row_stride, R, C, (int)r, c, dirs, n_angles,
                                        n_samples, step, side, &best);
      y[c] = v * scale;
      a[c] = angles[best];
    }
  });
}
template void oriented_line_filter<float>(Image<const float>, Image<float>, Image<float>,
                                          const float*, const float*, int, int, float, float,
                                          float);
template void oriented_line_filter<uint8_t>(Image<const uint8_t>, Image<float>, Image<float>,
                                            const float*, const float*, int, int, float, float,
                                            float);

template <class T>
void band_sample(Image<const T> img, Image<float> band, const float* params, float dt, float dw,
                 float scale) {
  const int R = (int)img.rows, C = (int)img.cols, W = (int)band.cols;
  parallel_rows(band.frames, band.rows, [&](int64_t f, int64_t t) {
    const T* x = img.data + f * img.frame_stride;
    const float x0 = params[4 * f], z0 = params[4 * f + 1];
    const float ux = params[4 * f + 2], uz = params[4 * f + 3];
    const int64_t rs = img.row_stride;
    float* b = &band.at(f, t, 0);
#pragma omp simd
    for (int w = 0; w < W; ++w)
      b[w] = k::band_sample_px(x, rs, R, C, (int)t, w, W, x0, z0, ux, uz, dt, dw, scale);
  });
}
template void band_sample<float>(Image<const float>, Image<float>, const float*, float, float,
                                 float);
template void band_sample<uint8_t>(Image<const uint8_t>, Image<float>, const float*, float, float,
                                   float);

namespace {
// Voters of one frame, sorted by their nearest angle bin (counting sort), so that each bin's
// row of the accumulator is filled by one thread from the few buckets that reach it: no atomics,
// no per-thread accumulators. Buffers persist per thread: no allocation in steady state.
struct Voters {
  std::vector<float> x, z, w, phi;
  std::vector<int> bin, start, next;
  std::vector<float> sx, sz, sw, sphi;
};
}  // namespace

void hough_lines(Image<const float> response, Image<const float> orientation, Image<float> acc,
                 const float* cs, const float* prior, const HoughGrid& hg, float threshold,
                 int r0, int r1, int c0, int c1) {
  const int R = (int)response.rows, C = (int)response.cols;
  k::hough_grid g;
  g.A = hg.n_angles;
  g.NR = hg.n_offsets;
  g.theta0 = hg.theta0_deg;
  g.dtheta = hg.dtheta_deg;
  g.rho0 = hg.rho0;
  g.drho = hg.drho;
  g.cx = 0.5f * (float)(C - 1);
  g.cz = 0.5f * (float)(R - 1);
  g.inv_tol = 1.f / hg.tol_deg;
  g.K = (int)std::ceil(hg.tol_deg / hg.dtheta_deg);
  const int A = g.A, K = g.K;
  r0 = std::max(r0, 0), r1 = std::min(r1, R), c0 = std::max(c0, 0), c1 = std::min(c1, C);
  static thread_local Voters v;
  for (int64_t f = 0; f < response.frames; ++f) {
    v.x.clear(), v.z.clear(), v.w.clear(), v.phi.clear(), v.bin.clear();
    for (int r = r0; r < r1; ++r) {
      const float* rp = &response.at(f, r, 0);
      const float* op = &orientation.at(f, r, 0);
      for (int c = c0; c < c1; ++c) {
        if (!k::hough_voter(rp[c], threshold, r, c, r0, r1, c0, c1)) continue;
        v.x.push_back((float)c);
        v.z.push_back((float)r);
        v.w.push_back(rp[c]);
        v.phi.push_back(op[c]);
        v.bin.push_back(k::hough_nearest_bin(op[c], g));
      }
    }
    const size_t n = v.x.size();
    v.start.assign(A + 1, 0);
    for (size_t i = 0; i < n; ++i) ++v.start[v.bin[i] + 1];
    for (int a = 0; a < A; ++a) v.start[a + 1] += v.start[a];
    v.sx.resize(n), v.sz.resize(n), v.sw.resize(n), v.sphi.resize(n);
    v.next.assign(v.start.begin(), v.start.end() - 1);
    for (size_t i = 0; i < n; ++i) {
      const int s = v.next[v.bin[i]]++;
      v.sx[s] = v.x[i], v.sz[s] = v.z[i], v.sw[s] = v.w[i], v.sphi[s] = v.phi[i];
    }
    const Voters& sv = v;
    float* af = acc.data + f * acc.frame_stride;
    const int64_t ars = acc.row_stride;
    parallel_for(A, [&](int64_t a64) {
      const int a = (int)a64;
      float* row = af + a * ars;
      std::fill(row, row + g.NR, 0.f);
      auto add = [row](int, int i, float val) { row[i] += val; };
      for (int j = -K; j <= K; ++j) {
        int b = (a + j) % A;
        b = b < 0 ? b + A : b;
        for (int s = sv.start[b]; s < sv.start[b + 1]; ++s)
          k::hough_vote_bin(sv.sx[s], sv.sz[s], sv.sw[s], sv.sphi[s], a, cs, prior, g, add);
      }
    });
  }
}

}  // namespace cpu
}  // namespace usfast
