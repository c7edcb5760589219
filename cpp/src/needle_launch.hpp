// Launchers behind the public needle API (usfast/needle.hpp).
#pragma once
#include "usfast/needle.hpp"

namespace usfast {
namespace cpu {
template <class T>
void box_decimate(Image<const T> img, Image<float> out, int factor, float scale);
void ridge_scale(Image<const float> img, Image<float> work, Image<float> response,
                 Image<float> orientation, const float* taps, int radius, float sigma, int measure,
                 float beta, float c, bool first);
void needle_gate(Image<float> response, Image<const float> orientation, Image<const float> img,
                 Image<const float> background, float lo0, float hi0, float lo1, float hi1,
                 float inv_soft, float gain,
                 float inv_ref);
template <class T>
void oriented_line_filter(Image<const T> img, Image<float> response, Image<float> angle,
                          const float* dirs, const float* angles, int n_angles, int n_samples,
                          float step, float side, float scale);
template <class T>
void band_sample(Image<const T> img, Image<float> band, const float* params, float dt, float dw,
                 float scale);
void hough_lines(Image<const float> response, Image<const float> orientation, Image<float> acc,
                 const float* cs, const float* prior, const HoughGrid& grid, float threshold,
                 int r0, int r1, int c0, int c1);
}  // namespace cpu

namespace cuda_launch {
template <class T>
void box_decimate(Image<const T> img, Image<float> out, int factor, float scale, void* stream);
void ridge_scale(Image<const float> img, Image<float> work, Image<float> response,
                 Image<float> orientation, const float* taps, int radius, float sigma, int measure,
                 float beta, float c, bool first, void* stream);
void needle_gate(Image<float> response, Image<const float> orientation, Image<const float> img,
                 Image<const float> background, float lo0, float hi0, float lo1, float hi1,
                 float inv_soft, float gain,
                 float inv_ref, void* stream);
template <class T>
void oriented_line_filter(Image<const T> img, Image<float> response, Image<float> angle,
                          const float* dirs, const float* angles, int n_angles, int n_samples,
                          float step, float side, float scale, void* stream);
template <class T>
void band_sample(Image<const T> img, Image<float> band, const float* params, float dt, float dw,
                 float scale, void* stream);
void hough_lines(Image<const float> response, Image<const float> orientation, Image<float> acc,
                 const float* cs, const float* prior, const HoughGrid& grid, float threshold,
                 int r0, int r1, int c0, int c1, void* stream);
}  // namespace cuda_launch
}  // namespace usfast
