// Speckle reduction: non-local means, median and bilateral filters on float32 images.
//
// All functions take batches (frames, rows, cols) as strided views and filter each frame on its
// own; `y` must have the shape of `x` and must not overlap it. On Exec::cuda(stream) the call is
// asynchronous on the stream and allocates nothing; on the CPU the scratch buffers are kept per
// thread and reused from call to call. User errors throw usfast::InputError; nothing aborts.
// Non-finite input gives unspecified (but memory-safe) output: check it first.
#pragma once
#include <cstdint>

#include "usfast/core.hpp"

namespace usfast {

// Non-local means on a log-compressed image (kernels/nlm.cuh), fast offset-outer algorithm:
//   w(p, d) = exp(-max(|patch(p) - patch(p + d)|^2 / patch_size^2 - 2 sigma^2, 0) / h^2)
//   y[p]    = sum_d w(p, d) x[p + d] / sum_d w(p, d),   d over the search window
// patch_size, search_size: odd, >= 3, with patch_size/2 + search_size/2 <= 40. h > 0 and
// sigma >= 0 in image units. Borders reflect-101.
void nlm(Image<const float> x, Image<float> y, int patch_size, int search_size, float h,
         float sigma, const Exec& ex);

// Median over a size x size window (odd, 3..255), borders replicated. Exact for every size:
// sorting networks for 3 and 5, a sliding histogram with exact selection from 7 up.
void median(Image<const float> x, Image<float> y, int size, const Exec& ex);

// Bilateral filter over the circular window of radius diameter/2 (diameter odd, 3..63):
//   w(p, q) = exp(-(x[q] - x[p])^2 / (2 sigma_color^2) - |q - p|^2 / (2 sigma_space^2)),
// borders reflect-101 (the conventions of cv2.bilateralFilter). sigma_color, sigma_space > 0.
void bilateral(Image<const float> x, Image<float> y, int diameter, float sigma_color,
               float sigma_space, const Exec& ex);

}  // namespace usfast
