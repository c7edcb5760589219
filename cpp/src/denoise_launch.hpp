// Launchers behind the public denoising API: usfast::cpu (OpenMP) and usfast::cuda_launch (CUDA),
// both over the per-pixel functions of kernels/nlm.cuh, rank.cuh and bilateral.cuh. Parameters
// arrive validated and converted to the kernels' form (half widths, exponent coefficients).
#pragma once
#include "usfast/denoise.hpp"

namespace usfast {
#define USFAST_DENOISE_LAUNCHERS(...)                                                          \
  void nlm(Image<const float> x, Image<float> y, int half_patch, int half_search, float inv_p2, \
           float two_sigma2, float inv_h2 __VA_ARGS__);                                          \
  void median(Image<const float> x, Image<float> y, int size __VA_ARGS__);                      \
  void bilateral(Image<const float> x, Image<float> y, int radius, float color_coef,            \
                 float space_coef __VA_ARGS__);

namespace cpu {
USFAST_DENOISE_LAUNCHERS()
}
namespace cuda_launch {
USFAST_DENOISE_LAUNCHERS(, void* stream)
}
#undef USFAST_DENOISE_LAUNCHERS
}  // namespace usfast
