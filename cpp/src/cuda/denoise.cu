// CUDA launchers for the denoising filters: the extern "C" kernels of kernels/nlm.cuh, rank.cuh
// and bilateral.cuh on the caller's stream. No allocation: tiles live in shared memory.
#include "kernels/nlm.cuh"
#include "kernels/rank.cuh"
#include "src/cuda/check.cuh"
#include "src/denoise_launch.hpp"

namespace usfast {
namespace cuda_launch {
using cuda_detail::block2d;
using cuda_detail::grid2d;

namespace {
inline cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s); }
}  // namespace

void nlm(Image<const float> x, Image<float> y, int o, int d, float inv_p2, float two_sigma2,
         float inv_h2, void* s) {
  const int reach = o + d;
  const size_t smem = sizeof(float) * ((size_t)(8 + 2 * reach) * (32 + 2 * reach) + 8 * (32 + 2 * o));
  usfast_nlm_f32<<<grid2d(y.rows, y.cols, y.frames), block2d(), smem, S(s)>>>(
      x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.rows,
      (int)x.cols, o, d, inv_p2, two_sigma2, inv_h2);
  USFAST_CUDA_LAUNCHED();
}

void median(Image<const float> x, Image<float> y, int size, void* s) {
  if (size == 3 || size == 5) {
    (size == 3 ? usfast_median3_f32 : usfast_median5_f32)<<<grid2d(y.rows, y.cols, y.frames),
                                                            block2d(), 0, S(s)>>>(
        x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.rows,
        (int)x.cols);
  } else {
    const dim3 grid((unsigned)((y.cols + USFAST_MEDIAN_HIST_THREADS - 1) / USFAST_MEDIAN_HIST_THREADS),
                    (unsigned)((y.rows + USFAST_MEDIAN_HIST_ROWS - 1) / USFAST_MEDIAN_HIST_ROWS),
                    (unsigned)y.frames);
    usfast_median_hist_f32<<<grid, dim3(USFAST_MEDIAN_HIST_THREADS, 1, 1), 0, S(s)>>>(
        x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.rows,
        (int)x.cols, size);
  }
  USFAST_CUDA_LAUNCHED();
}

void bilateral(Image<const float> x, Image<float> y, int radius, float color_coef,
               float space_coef, void* s) {
  const size_t smem = sizeof(float) * (size_t)(32 + 2 * radius) * (8 + 2 * radius);
  usfast_bilateral_f32<<<grid2d(y.rows, y.cols, y.frames), block2d(), smem, S(s)>>>(
      x.data, x.frame_stride, x.row_stride, y.data, y.frame_stride, y.row_stride, (int)x.rows,
      (int)x.cols, radius, color_coef, space_coef);
  USFAST_CUDA_LAUNCHED();
}

}  // namespace cuda_launch
}  // namespace usfast
