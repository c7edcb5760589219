// CUDA launchers for needle enhancement and the line accumulator (kernels/ridge.cuh,
// kernels/linefilter.cuh, kernels/hough.cuh).
#include <cmath>

#include "kernels/hough.cuh"
#include "kernels/linefilter.cuh"
#include "kernels/ridge.cuh"
#include "src/cuda/check.cuh"
#include "src/needle_launch.hpp"

namespace usfast {
namespace cuda_launch {
using cuda_detail::block2d;
using cuda_detail::grid2d;

namespace {
inline auto decimate_kernel(const float*) { return usfast_box_decimate_f32; }
inline auto decimate_kernel(const uint8_t*) { return usfast_box_decimate_u8; }
inline auto line_kernel(const float*) { return usfast_line_filter_f32; }
inline auto line_kernel(const uint8_t*) { return usfast_line_filter_u8; }
inline auto band_kernel(const float*) { return usfast_band_sample_f32; }
inline auto band_kernel(const uint8_t*) { return usfast_band_sample_u8; }
inline cudaStream_t st(void* s) { return static_cast<cudaStream_t>(s); }
}  // namespace

template <class T>
void box_decimate(Image<const T> img, Image<float> out, int factor, float scale, void* s) {
  decimate_kernel(img.data)<<<grid2d(out.rows, out.cols, out.frames), block2d(), 0, st(s)>>>(
      img.data, img.frame_stride, img.row_stride, (int)img.rows, (int)img.cols, out.data,
      out.frame_stride, out.row_stride, (int)out.rows, (int)out.cols, factor, scale);
  USFAST_CUDA_LAUNCHED();
}
template void box_decimate<float>(Image<const float>, Image<float>, int, float, void*);
template void box_decimate<uint8_t>(Image<const uint8_t>, Image<float>, int, float, void*);

void ridge_scale(Image<const float> img, Image<float> work, Image<float> response,
                 Image<float> orientation, const float* taps, int rad, float sigma, int measure,
                 float beta, float c, bool first, void* s) {
  const int64_t aps = img.frames * work.frame_stride;
  const dim3 grid = grid2d(img.rows, img.cols, img.frames);
  usfast_ridge_rows<<<grid, block2d(), 0, st(s)>>>(img.data, img.frame_stride, img.row_stride,
                                                   work.data, aps, work.frame_stride,
                                                   work.row_stride, (int)img.rows, (int)img.cols,
                                                   taps, rad);
  USFAST_CUDA_LAUNCHED();
  // response and orientation share strides (checked by the caller's shapes; the Python layer
  // allocates them together)
  usfast_ridge_cols<<<grid, block2d(), 0, st(s)>>>(
      work.data, aps, work.frame_stride, work.row_stride, response.data, orientation.data,
      response.frame_stride, response.row_stride, (int)img.rows, (int)img.cols, taps, rad,
      sigma * sigma, measure, beta, c, first ? 1 : 0);
  USFAST_CUDA_LAUNCHED();
}

void needle_gate(Image<float> response, Image<const float> orientation, Image<const float> img,
                 Image<const float> background, float lo0, float hi0, float lo1, float hi1,
                 float inv_soft, float gain, float inv_ref, void* s) {
  usfast_needle_enhance<<<grid2d(response.rows, response.cols, response.frames), block2d(), 0,
                          st(s)>>>(response.data, orientation.data, response.frame_stride,
                                   response.row_stride, img.data, img.frame_stride,
                                   img.row_stride, background.data, background.frame_stride,
                                   background.row_stride, (int)response.rows, (int)response.cols,
                                   lo0, hi0, lo1, hi1, inv_soft,
                                   background.data != nullptr ? 1 : 0, gain, inv_ref);
  USFAST_CUDA_LAUNCHED();
}

template <class T>
void oriented_line_filter(Image<const T> img, Image<float> response, Image<float> angle,
                          const float* dirs, const float* angles, int n_angles, int n_samples,
                          float step, float side, float scale, void* s) {
  line_kernel(img.data)<<<grid2d(img.rows, img.cols, img.frames), block2d(), 0, st(s)>>>(
      img.data, img.frame_stride, img.row_stride, response.data, angle.data,
      response.frame_stride, response.row_stride, (int)img.rows, (int)img.cols, dirs, angles,
      n_angles, n_samples, step, side, scale);
  USFAST_CUDA_LAUNCHED();
}
template void oriented_line_filter<float>(Image<const float>, Image<float>, Image<float>,
                                          const float*, const float*, int, int, float, float,
                                          float, void*);
template void oriented_line_filter<uint8_t>(Image<const uint8_t>, Image<float>, Image<float>,
                                            const float*, const float*, int, int, float, float,
                                            float, void*);

template <class T>
void band_sample(Image<const T> img, Image<float> band, const float* params, float dt, float dw,
                 float scale, void* s) {
  band_kernel(img.data)<<<grid2d(band.rows, band.cols, band.frames), block2d(), 0, st(s)>>>(
      img.data, img.frame_stride, img.row_stride, (int)img.rows, (int)img.cols, band.data,
      band.frame_stride, band.row_stride, (int)band.rows, (int)band.cols, params, dt, dw, scale);
  USFAST_CUDA_LAUNCHED();
}
template void band_sample<float>(Image<const float>, Image<float>, const float*, float, float,
                                 float, void*);
template void band_sample<uint8_t>(Image<const uint8_t>, Image<float>, const float*, float, float,
                                   float, void*);

void hough_lines(Image<const float> response, Image<const float> orientation, Image<float> acc,
                 const float* cs, const float* prior, const HoughGrid& g, float threshold, int r0,
                 int r1, int c0, int c1, void* s) {
  usfast_hough_clear<<<grid2d(g.n_angles, g.n_offsets, acc.frames), block2d(), 0, st(s)>>>(
      acc.data, acc.frame_stride, acc.row_stride, g.n_angles, g.n_offsets);
  USFAST_CUDA_LAUNCHED();
  const int K = (int)std::ceil(g.tol_deg / g.dtheta_deg);
  usfast_hough_vote<<<grid2d(response.rows, response.cols, response.frames), block2d(), 0,
                      st(s)>>>(response.data, orientation.data, response.frame_stride,
                               response.row_stride, (int)response.rows, (int)response.cols,
                               acc.data, acc.frame_stride, acc.row_stride, cs, prior, g.n_angles,
                               g.n_offsets, g.theta0_deg, g.dtheta_deg, g.rho0, g.drho,
                               1.f / g.tol_deg, K, threshold, r0, r1, c0, c1);
  USFAST_CUDA_LAUNCHED();
}

}  // namespace cuda_launch
}  // namespace usfast
