// CUDA launchers for speckle reduction (kernels/localstats.cuh, kernels/diffusion.cuh). Every
// launch goes on the caller's stream; nothing here synchronises it, so the diffusions queue all
// their iterations (speckle-scale estimates included) without a host round-trip.
#include "kernels/diffusion.cuh"

#include "src/cuda/check.cuh"
#include "src/speckle_launch.hpp"

namespace usfast {
namespace cuda_launch {
namespace {

using cuda_detail::block2d;
using cuda_detail::grid2d;

// Scratch: the caller's, or allocated and freed stream-ordered.
struct DeviceScratch {
  void* own = nullptr;
  cudaStream_t s;
  detail::SpeckleScratch p;
  DeviceScratch(SpeckleOp op, int64_t F, int64_t R, int64_t C, void* ws, cudaStream_t st) : s(st) {
    char* base = static_cast<char*>(ws);
    if (!base) {
      const size_t n = detail::carve_scratch(op, F, R, C, true, nullptr, nullptr);
      USFAST_CUDA_CHECK(cudaMallocAsync(&own, n, s));
      base = static_cast<char*>(own);
    }
    detail::carve_scratch(op, F, R, C, true, base, &p);
  }
  ~DeviceScratch() {
    if (own) cudaFreeAsync(own, s);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

// Column passes: x = column, y = strip of USFAST_BOX_STRIP rows. Row passes: x = row,
// y = segment of USFAST_BOX_STRIP columns. 32 x 8 blocks for both.
dim3 cols_grid(int64_t F, int64_t R, int64_t C) {
  return grid2d((R + USFAST_BOX_STRIP - 1) / USFAST_BOX_STRIP, C, F);
}
dim3 rows_grid(int64_t F, int64_t R, int64_t C) {
  return grid2d((C + USFAST_BOX_STRIP - 1) / USFAST_BOX_STRIP, R, F);
}

void box_cols_sq(Image<const float> x, float* ws, int h, cudaStream_t s) {
  usfast_box_cols_sq<<<cols_grid(x.frames, x.rows, x.cols), block2d(), 0, s>>>(
      x.data, x.frame_stride, x.row_stride, ws, (int)x.frames, (int)x.rows, (int)x.cols, h);
  USFAST_CUDA_LAUNCHED();
}

void copy(Image<const float> x, Image<float> y, cudaStream_t s) {
  for (int64_t f = 0; f < x.frames; ++f)
    USFAST_CUDA_CHECK(cudaMemcpy2DAsync(y.data + f * y.frame_stride, y.row_stride * sizeof(float),
                                        x.data + f * x.frame_stride, x.row_stride * sizeof(float),
                                        x.cols * sizeof(float), x.rows, cudaMemcpyDeviceToDevice,
                                        s));
}

// The diffusions' iterations (see detail::ping_pong) on stream s; 0 iterations copy x.
template <class Step>
void iterate(Image<const float> x, Image<float> y, float* tmp, int iterations, cudaStream_t s,
             const Step& step) {
  detail::ping_pong(x, y, tmp, iterations,
                    [s](Image<const float> a, Image<float> b) { copy(a, b, s); }, step);
}

}  // namespace

void local_filter(LocalFilter op, Image<const float> x, Image<float> y, int h, float cu2,
                  float damping_over_cu2, void* ws, size_t, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const SpeckleOp sop = op == LocalFilter::Lee ? SpeckleOp::Lee
                        : op == LocalFilter::Kuan ? SpeckleOp::Kuan : SpeckleOp::Frost;
  DeviceScratch d(sop, x.frames, x.rows, x.cols, ws, s);
  const int F = (int)x.frames, R = (int)x.rows, C = (int)x.cols;
  box_cols_sq(x, d.p.sums, h, s);
  const dim3 g = rows_grid(F, R, C);
  switch (op) {
    case LocalFilter::Lee:
      usfast_lee_rows<<<g, block2d(), 0, s>>>(d.p.sums, x.data, x.frame_stride, x.row_stride,
                                             y.data, y.frame_stride, y.row_stride, F, R, C, h,
                                             cu2);
      break;
    case LocalFilter::Kuan:
      usfast_kuan_rows<<<g, block2d(), 0, s>>>(d.p.sums, x.data, x.frame_stride, x.row_stride,
                                              y.data, y.frame_stride, y.row_stride, F, R, C, h, cu2);
      break;
    case LocalFilter::Frost:
      usfast_frost_rows<<<g, block2d(), 0, s>>>(d.p.sums, x.data, x.frame_stride, x.row_stride,
                                               y.data, y.frame_stride, y.row_stride, F, R, C, h,
                                               damping_over_cu2);
      break;
  }
  USFAST_CUDA_LAUNCHED();
}

void guided(Image<const float> x, Image<const float> g, Image<float> y, int h, float eps, void* ws,
            size_t, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool self = g.data == nullptr;
  DeviceScratch d(self ? SpeckleOp::Guided : SpeckleOp::GuidedWithGuide, x.frames, x.rows, x.cols,
                  ws, s);
  const int F = (int)x.frames, R = (int)x.rows, C = (int)x.cols;
  const dim3 gc = cols_grid(F, R, C), gr = rows_grid(F, R, C);
  if (self) {
    box_cols_sq(x, d.p.sums, h, s);
    usfast_guided_ab_self<<<gr, block2d(), 0, s>>>(d.p.sums, d.p.ab, F, R, C, h, eps);
  } else {
    usfast_box_cols_guide<<<gc, block2d(), 0, s>>>(g.data, g.frame_stride, g.row_stride, x.data,
                                                  x.frame_stride, x.row_stride, d.p.sums, F, R, C,
                                                  h);
    USFAST_CUDA_LAUNCHED();
    usfast_guided_ab_guide<<<gr, block2d(), 0, s>>>(d.p.sums, d.p.ab, F, R, C, h, eps);
  }
  USFAST_CUDA_LAUNCHED();
  const usf_i64 plane = (usf_i64)R * C;
  usfast_box_cols_pair<<<gc, block2d(), 0, s>>>(d.p.ab, plane, C, d.p.ab + (usf_i64)F * plane,
                                               plane, C, d.p.sums, F, R, C, h);
  USFAST_CUDA_LAUNCHED();
  const Image<const float> gg = self ? x : g;
  usfast_guided_out_rows<<<gr, block2d(), 0, s>>>(d.p.sums, gg.data, gg.frame_stride,
                                                 gg.row_stride, y.data, y.frame_stride,
                                                 y.row_stride, F, R, C, h);
  USFAST_CUDA_LAUNCHED();
}

void srad(Image<const float> x, Image<float> y, const SradParams& p, void* ws, size_t,
          void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  DeviceScratch d(SpeckleOp::Srad, x.frames, x.rows, x.cols, ws, s);
  const int F = (int)x.frames, R = (int)x.rows, C = (int)x.cols;
  const bool given = p.q0_mode == SradQ0::Given, roi = p.q0_mode == SradQ0::Roi;
  const int r0 = roi ? (int)p.roi_row0 : 0, c0 = roi ? (int)p.roi_col0 : 0;
  const int RR = roi ? (int)p.roi_rows : R, CC = roi ? (int)p.roi_cols : C;
  const int T = k::q0_tile_size(R, C);
  const dim3 grid = grid2d(R, C, F);
  if (!given && p.iterations > 0) {  // the input's statistics; later ones come with each step
    usfast_srad_block_sums<<<grid, block2d(), 0, s>>>(x.data, x.frame_stride, x.row_stride, R, C,
                                                      r0, c0, RR, CC, d.p.tiles);
    USFAST_CUDA_LAUNCHED();
  }
  iterate(x, y, d.p.tmp, p.iterations, s, [&](int it, Image<const float> cur, Image<float> dst) {
    const float* q0sq = nullptr;
    float q0v = 0.f;
    if (given) {
      const float q = p.q0 * std::exp(-p.q0_decay * p.dt * float(it));
      q0v = q * q;
    } else {
      usfast_srad_q0<<<F, 1024, 0, s>>>(d.p.tiles, (int)grid.x, (int)grid.y, R, C, T, RR, CC,
                                        roi ? 1 : 0, d.p.scale);
      USFAST_CUDA_LAUNCHED();
      q0sq = d.p.scale;
    }
    double* gather = (!given && it + 1 < p.iterations) ? d.p.tiles : nullptr;
    usfast_srad_step<<<grid, block2d(), 0, s>>>(cur.data, cur.frame_stride, cur.row_stride,
                                                dst.data, dst.frame_stride, dst.row_stride, R, C,
                                                q0sq, q0v, p.dt, gather, r0, c0, RR, CC);
    USFAST_CUDA_LAUNCHED();
  });
}

void dpad(Image<const float> x, Image<float> y, int iterations, float dt, int h, void* ws, size_t,
          void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  DeviceScratch d(SpeckleOp::Dpad, x.frames, x.rows, x.cols, ws, s);
  const int F = (int)x.frames, R = (int)x.rows, C = (int)x.cols;
  if (iterations > 0)
    USFAST_CUDA_CHECK(cudaMemsetAsync(d.p.hist, 0, sizeof(unsigned) * F * detail::kCvBins, s));
  iterate(x, y, d.p.tmp, iterations, s, [&](int, Image<const float> cur, Image<float> dst) {
    box_cols_sq(cur, d.p.sums, h, s);
    usfast_dpad_ci2<<<rows_grid(F, R, C), block2d(), 0, s>>>(d.p.sums, d.p.ci2, d.p.hist, F, R, C,
                                                             h);
    USFAST_CUDA_LAUNCHED();
    usfast_cv_median<<<F, 32, 0, s>>>(d.p.hist, double(R) * double(C), d.p.scale);
    USFAST_CUDA_LAUNCHED();
    usfast_dpad_step<<<grid2d(R, C, F), block2d(), 0, s>>>(cur.data, cur.frame_stride,
                                                          cur.row_stride, d.p.ci2, dst.data,
                                                          dst.frame_stride, dst.row_stride, R, C,
                                                          d.p.scale, dt);
    USFAST_CUDA_LAUNCHED();
  });
}

}  // namespace cuda_launch
}  // namespace usfast
