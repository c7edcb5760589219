// Public needle-enhancement API: validation, then dispatch.
#include "usfast/needle.hpp"

#include <cmath>
#include <cstdint>

#include "src/dispatch.hpp"
#include "src/needle_launch.hpp"

namespace usfast {
namespace {
bool finite_pos(float v) { return std::isfinite(v) && v > 0.f; }
// Paired outputs (response + orientation/angle) share one set of strides: the GPU kernels
// index both with one offset.
template <class A, class B>
void same_strides(const char* fn, const char* arg, const Image<A>& a, const Image<B>& b) {
  require(a.row_stride == b.row_stride && (a.frames == 1 || a.frame_stride == b.frame_stride),
          fn, arg, "the same strides as the response");
}
}  // namespace

template <class T>
void box_decimate(Image<const T> img, Image<float> out, int factor, float scale, const Exec& ex) {
  const char* fn = "box_decimate";
  detail::check_image(fn, "img", img);
  detail::check_image(fn, "out", out);
  require(factor >= 1, fn, "factor", "an integer >= 1");
  require(std::isfinite(scale), fn, "scale", "a finite number");
  require(out.same_shape(img.frames, (img.rows + factor - 1) / factor,
                         (img.cols + factor - 1) / factor),
          fn, "out", "shape (frames, ceil(rows/factor), ceil(cols/factor))");
  USFAST_DISPATCH(fn, ex, cpu::box_decimate(img, out, factor, scale),
                  cuda_launch::box_decimate(img, out, factor, scale, ex.stream));
}
template void box_decimate<float>(Image<const float>, Image<float>, int, float, const Exec&);
template void box_decimate<uint8_t>(Image<const uint8_t>, Image<float>, int, float, const Exec&);

void ridge_scale(Image<const float> img, Image<float> work, Image<float> response,
                 Image<float> orientation, const float* taps, int radius, float sigma,
                 RidgeMeasure measure, float beta, float c, bool first, const Exec& ex) {
  const char* fn = "ridge";
  detail::check_image(fn, "img", img);
  detail::check_image(fn, "work", work);
  detail::check_image(fn, "response", response);
  detail::check_image(fn, "orientation", orientation);
  require(work.same_shape(3 * img.frames, img.rows, img.cols), fn, "work",
          "3 * frames scratch images of the input's shape");
  require(response.same_shape(img), fn, "response", "the input's shape");
  require(orientation.same_shape(img), fn, "orientation", "the input's shape");
  same_strides(fn, "orientation", response, orientation);
  detail::check_ptr(fn, "taps", taps);
  require(radius >= 0 && radius < (1 << 20), fn, "radius", "a radius in [0, 2^20)");
  require(finite_pos(sigma), fn, "sigma", "a positive scale in pixels");
  require(measure == RidgeMeasure::Frangi || measure == RidgeMeasure::Strength ||
              measure == RidgeMeasure::Norm,
          fn, "measure", "Frangi, Strength or Norm");
  if (measure == RidgeMeasure::Frangi) {
    require(finite_pos(beta), fn, "beta", "a positive number");
    require(finite_pos(c), fn, "c", "a positive number");
  }
  USFAST_DISPATCH(fn, ex,
                  cpu::ridge_scale(img, work, response, orientation, taps, radius, sigma,
                                   (int)measure, beta, c, first),
                  cuda_launch::ridge_scale(img, work, response, orientation, taps, radius, sigma,
                                           (int)measure, beta, c, first, ex.stream));
}

void needle_gate(Image<float> response, Image<const float> orientation, Image<const float> img,
                 Image<const float> background, float lo0, float hi0, float lo1, float hi1,
                 float soft_deg, float gain, float ref, const Exec& ex) {
  const char* fn = "needle_enhance";
  detail::check_image(fn, "response", response);
  detail::check_image(fn, "orientation", orientation);
  require(orientation.same_shape(response), fn, "orientation", "the response's shape");
  same_strides(fn, "orientation", response, orientation);
  const bool temporal = background.data != nullptr;
  if (temporal) {
    detail::check_image(fn, "img", img);
    detail::check_image(fn, "background", background);
    require(img.same_shape(response), fn, "img", "the response's shape");
    require(background.same_shape(response), fn, "background", "the response's shape");
    require(std::isfinite(gain) && gain >= 0.f, fn, "gain", "a finite gain >= 0");
    require(finite_pos(ref), fn, "ref", "a positive reference contrast");
  }
  require(std::isfinite(lo0) && std::isfinite(hi0) && std::isfinite(lo1) && std::isfinite(hi1),
          fn, "angle_range_deg", "finite interval ends");
  require(finite_pos(soft_deg), fn, "soft_deg", "a positive number of degrees");
  const float g = temporal ? gain : 0.f, inv_ref = temporal ? 1.f / ref : 0.f;
  USFAST_DISPATCH(fn, ex,
                  cpu::needle_gate(response, orientation, img, background, lo0, hi0, lo1, hi1,
                                   1.f / soft_deg, g, inv_ref),
                  cuda_launch::needle_gate(response, orientation, img, background, lo0, hi0, lo1,
                                           hi1, 1.f / soft_deg, g, inv_ref, ex.stream));
}

template <class T>
void oriented_line_filter(Image<const T> img, Image<float> response, Image<float> angle,
                          const float* dirs, const float* angles, int n_angles, int n_samples,
                          float step, float side, float scale, const Exec& ex) {
  const char* fn = "oriented_line_filter";
  detail::check_image(fn, "img", img);
  detail::check_image(fn, "response", response);
  detail::check_image(fn, "angle", angle);
  require(response.same_shape(img), fn, "response", "the input's shape");
  require(angle.same_shape(img), fn, "angle", "the input's shape");
  same_strides(fn, "angle", response, angle);
  detail::check_ptr(fn, "dirs", dirs);
  detail::check_ptr(fn, "angles", angles);
  require(n_angles >= 1, fn, "angles_deg", "at least one angle");
  require(n_samples >= 1, fn, "n_samples", "at least one sample along the line");
  require(std::isfinite(step) && step >= 0.f, fn, "step", "a finite step >= 0");
  require(std::isfinite(side) && side >= 0.f, fn, "side", "a finite side offset >= 0");
  require(std::isfinite(scale), fn, "scale", "a finite number");
  USFAST_DISPATCH(fn, ex,
                  cpu::oriented_line_filter(img, response, angle, dirs, angles, n_angles,
                                            n_samples, step, side, scale),
                  cuda_launch::oriented_line_filter(img, response, angle, dirs, angles, n_angles,
                                                    n_samples, step, side, scale, ex.stream));
}
template void oriented_line_filter<float>(Image<const float>, Image<float>, Image<float>,
                                          const float*, const float*, int, int, float, float,
                                          float, const Exec&);
template void oriented_line_filter<uint8_t>(Image<const uint8_t>, Image<float>, Image<float>,
                                            const float*, const float*, int, int, float, float,
                                            float, const Exec&);

template <class T>
void band_sample(Image<const T> img, Image<float> band, const float* params, float dt, float dw,
                 float scale, const Exec& ex) {
  const char* fn = "band_sample";
  detail::check_image(fn, "img", img);
  detail::check_image(fn, "band", band);
  require(band.frames == img.frames, fn, "band", "as many frames as the image");
  detail::check_ptr(fn, "params", params);
  require(std::isfinite(dt) && std::isfinite(dw) && std::isfinite(scale), fn, "dt",
          "finite steps and scale");
  USFAST_DISPATCH(fn, ex, cpu::band_sample(img, band, params, dt, dw, scale),
                  cuda_launch::band_sample(img, band, params, dt, dw, scale, ex.stream));
}
template void band_sample<float>(Image<const float>, Image<float>, const float*, float, float,
                                 float, const Exec&);
template void band_sample<uint8_t>(Image<const uint8_t>, Image<float>, const float*, float, float,
                                   float, const Exec&);

void hough_lines(Image<const float> response, Image<const float> orientation, Image<float> acc,
                 const float* cs, const float* prior, const HoughGrid& g, float threshold, int r0,
                 int r1, int c0, int c1, const Exec& ex) {
  const char* fn = "hough_lines";
  detail::check_image(fn, "response", response);
  detail::check_image(fn, "orientation", orientation);
  detail::check_image(fn, "acc", acc);
  require(orientation.same_shape(response), fn, "orientation", "the response's shape");
  same_strides(fn, "orientation", response, orientation);
  require(g.n_angles >= 1 && g.n_offsets >= 1, fn, "grid", "at least one angle and offset bin");
  require(acc.same_shape(response.frames, g.n_angles, g.n_offsets), fn, "acc",
          "shape (frames, n_angles, n_offsets)");
  require(finite_pos(g.dtheta_deg) && std::fabs(g.dtheta_deg * g.n_angles - 180.f) < 1e-3f, fn,
          "grid", "dtheta_deg * n_angles == 180");
  require(std::isfinite(g.theta0_deg) && std::isfinite(g.rho0) && finite_pos(g.drho), fn, "grid",
          "finite theta0_deg, rho0 and a positive drho");
  require(finite_pos(g.tol_deg) && 2 * (int)std::ceil(g.tol_deg / g.dtheta_deg) + 1 <= g.n_angles,
          fn, "tol_deg", "a positive tolerance spanning fewer bins than the accumulator");
  require(!std::isnan(threshold), fn, "threshold", "a number");
  detail::check_ptr(fn, "cs", cs);
  detail::check_ptr(fn, "prior", prior);
  USFAST_DISPATCH(fn, ex,
                  cpu::hough_lines(response, orientation, acc, cs, prior, g, threshold, r0, r1, c0,
                                   c1),
                  cuda_launch::hough_lines(response, orientation, acc, cs, prior, g, threshold, r0,
                                           r1, c0, c1, ex.stream));
}

}  // namespace usfast
