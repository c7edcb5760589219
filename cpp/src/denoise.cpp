// Public denoising API: validation, conversion of the parameters to the kernels' form, then
// dispatch to the CPU or CUDA launchers.
#include "usfast/denoise.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/nlm.cuh"
#include "kernels/rank.cuh"
#include "src/denoise_launch.hpp"
#include "src/dispatch.hpp"

namespace usfast {
using detail::check_image;

namespace {

// y must have x's shape and must not share memory with it (every output pixel reads a
// neighbourhood of the input, so filtering in place would read values already overwritten).
void check_pair(const char* fn, const Image<const float>& x, const Image<float>& y) {
  check_image(fn, "img", x);
  check_image(fn, "out", y);
  require(y.same_shape(x), fn, "out", "the shape of img");
  auto end = [](const auto& im) {
    return im.data + (im.frames - 1) * im.frame_stride + (im.rows - 1) * im.row_stride + im.cols;
  };
  const float* xb = x.data;
  const float* xe = end(x);
  const float* yb = y.data;
  const float* ye = end(y);
  require(ye <= xb || xe <= yb, fn, "out", "a buffer that does not overlap img (no in-place filtering)");
}

bool odd_in(int v, int lo, int hi) { return v >= lo && v <= hi && v % 2 == 1; }

// -1 / (2 s^2) as a finite float: a tiny s must not turn 0 * coef into NaN.
float neg_half_inv_sq(double s) { return (float)std::max(-0.5 / (s * s), -1e30); }

}  // namespace

void nlm(Image<const float> x, Image<float> y, int patch_size, int search_size, float h,
         float sigma, const Exec& ex) {
  const char* fn = "nlm";
  check_pair(fn, x, y);
  require(odd_in(patch_size, 3, 2 * k::kNlmMaxReach + 1), fn, "patch_size", "an odd size >= 3");
  require(odd_in(search_size, 3, 2 * k::kNlmMaxReach + 1), fn, "search_size", "an odd size >= 3");
  require(patch_size / 2 + search_size / 2 <= k::kNlmMaxReach, fn, "search_size",
          "patch_size // 2 + search_size // 2 <= " + std::to_string(k::kNlmMaxReach));
  require(std::isfinite(h) && h > 0.f, fn, "h", "a finite h > 0");
  require(std::isfinite(sigma) && sigma >= 0.f && sigma < 1e18f, fn, "sigma",
          "a finite noise level >= 0");
  const float inv_p2 = (float)(1.0 / ((double)patch_size * patch_size));
  const float two_sigma2 = (float)(2.0 * (double)sigma * sigma);
  const float inv_h2 = (float)std::min(1.0 / ((double)h * h), 1e30);
  const int o = patch_size / 2, d = search_size / 2;
  USFAST_DISPATCH(fn, ex, cpu::nlm(x, y, o, d, inv_p2, two_sigma2, inv_h2),
                  cuda_launch::nlm(x, y, o, d, inv_p2, two_sigma2, inv_h2, ex.stream));
}

void median(Image<const float> x, Image<float> y, int size, const Exec& ex) {
  const char* fn = "median";
  check_pair(fn, x, y);
  require(odd_in(size, 3, k::kRankMaxSize), fn, "window",
          "an odd window size in [3, " + std::to_string(k::kRankMaxSize) + "]");
  USFAST_DISPATCH(fn, ex, cpu::median(x, y, size), cuda_launch::median(x, y, size, ex.stream));
}

void bilateral(Image<const float> x, Image<float> y, int diameter, float sigma_color,
               float sigma_space, const Exec& ex) {
  const char* fn = "bilateral";
  check_pair(fn, x, y);
  require(odd_in(diameter, 3, 63), fn, "diameter", "an odd diameter in [3, 63]");
  require(std::isfinite(sigma_color) && sigma_color > 0.f, fn, "sigma_color",
          "a finite sigma_color > 0");
  require(std::isfinite(sigma_space) && sigma_space > 0.f, fn, "sigma_space",
          "a finite sigma_space > 0");
  const int radius = diameter / 2;
  const float cc = neg_half_inv_sq(sigma_color), cs = neg_half_inv_sq(sigma_space);
  USFAST_DISPATCH(fn, ex, cpu::bilateral(x, y, radius, cc, cs),
                  cuda_launch::bilateral(x, y, radius, cc, cs, ex.stream));
}

}  // namespace usfast
