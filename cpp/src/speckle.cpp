// Public speckle-reduction API: validation, then dispatch to the CPU or CUDA launchers.
#include "usfast/speckle.hpp"

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "src/dispatch.hpp"
#include "src/speckle_launch.hpp"

namespace usfast {
using detail::check_image;

namespace {

// One past the last element of a view, for overlap checks.
template <class T>
const char* view_end(const Image<T>& im) {
  const int64_t last = (im.frames - 1) * im.frame_stride + (im.rows - 1) * im.row_stride + im.cols;
  return reinterpret_cast<const char*>(im.data + last);
}
template <class A, class B>
bool overlaps(const Image<A>& a, const Image<B>& b) {
  const char* a0 = reinterpret_cast<const char*>(a.data);
  const char* b0 = reinterpret_cast<const char*>(b.data);
  return a0 < view_end(b) && b0 < view_end(a);
}

void check_pair(const char* fn, Image<const float> x, Image<float> y, const Exec& ex) {
  check_image(fn, "img", x);
  check_image(fn, "out", y);
  require(y.same_shape(x), fn, "out", "the shape of img");
  require(!overlaps(x, y), fn, "out", "an array that does not share memory with img");
  require(x.rows < INT_MAX / 2 && x.cols < INT_MAX / 2, fn, "img",
          "fewer than 2^30 rows and columns");
  require(ex.device == Device::CPU || x.frames <= 65535, fn, "img",
          "at most 65535 frames on the GPU");
}

void check_window(const char* fn, int window, int max_window) {
  require(window >= 3 && window % 2 == 1 && window <= max_window, fn, "window",
          "an odd window size >= 3 and <= " + std::to_string(max_window));
}

void check_workspace(const char* fn, SpeckleOp op, Image<const float> x, const Exec& ex,
                     const void* ws, size_t bytes) {
  if (ws == nullptr) return;
  const size_t need = speckle_workspace_bytes(op, x.frames, x.rows, x.cols, ex);
  require(bytes >= need, fn, "workspace",
          std::to_string(need) + " bytes (speckle_workspace_bytes)");
}

bool finite_pos(float v) { return std::isfinite(v) && v > 0.f; }

}  // namespace

size_t speckle_workspace_bytes(SpeckleOp op, int64_t frames, int64_t rows, int64_t cols,
                               const Exec& ex) {
  return detail::carve_scratch(op, frames, rows, cols, ex.device == Device::CUDA, nullptr, nullptr);
}

void srad(Image<const float> x, Image<float> y, const SradParams& p, const Exec& ex,
          void* workspace, size_t workspace_bytes) {
  const char* fn = "srad";
  check_pair(fn, x, y, ex);
  require(p.iterations >= 0, fn, "iterations", "an iteration count >= 0");
  require(std::isfinite(p.dt) && p.dt > 0.f && p.dt <= 0.25f, fn, "dt",
          "a time step 0 < dt <= 0.25 (the stability limit of the explicit scheme)");
  switch (p.q0_mode) {
    case SradQ0::Tiles:
      break;
    case SradQ0::Roi:
      require(p.roi_rows >= 1 && p.roi_cols >= 1 && p.roi_row0 >= 0 && p.roi_col0 >= 0 &&
                  p.roi_row0 + p.roi_rows <= x.rows && p.roi_col0 + p.roi_cols <= x.cols,
              fn, "q0_roi", "a non-empty region inside the image");
      break;
    case SradQ0::Given:
      require(std::isfinite(p.q0) && p.q0 >= 0.f, fn, "q0", "a finite speckle scale >= 0");
      require(std::isfinite(p.q0_decay) && p.q0_decay >= 0.f, fn, "q0_decay", "a finite rate >= 0");
      break;
    default:
      require(false, fn, "q0_mode", "Tiles, Roi or Given");
  }
  check_workspace(fn, SpeckleOp::Srad, x, ex, workspace, workspace_bytes);
  USFAST_DISPATCH(fn, ex, cpu::srad(x, y, p, workspace, workspace_bytes),
                  cuda_launch::srad(x, y, p, workspace, workspace_bytes, ex.stream));
}

void dpad(Image<const float> x, Image<float> y, int iterations, float dt, int window,
          const Exec& ex, void* workspace, size_t workspace_bytes) {
  const char* fn = "dpad";
  check_pair(fn, x, y, ex);
  require(iterations >= 0, fn, "iterations", "an iteration count >= 0");
  require(std::isfinite(dt) && dt > 0.f && dt <= 0.25f, fn, "dt",
          "a time step 0 < dt <= 0.25 (the stability limit of the explicit scheme)");
  check_window(fn, window, 255);
  check_workspace(fn, SpeckleOp::Dpad, x, ex, workspace, workspace_bytes);
  const int h = window / 2;
  USFAST_DISPATCH(fn, ex, cpu::dpad(x, y, iterations, dt, h, workspace, workspace_bytes),
                  cuda_launch::dpad(x, y, iterations, dt, h, workspace, workspace_bytes,
                                    ex.stream));
}

static void local_filter(const char* fn, LocalFilter op, SpeckleOp sop, Image<const float> x,
                         Image<float> y, int window, float noise_cv, float damping, const Exec& ex,
                         void* ws, size_t bytes) {
  check_pair(fn, x, y, ex);
  check_window(fn, window, op == LocalFilter::Frost ? 31 : 255);
  require(finite_pos(noise_cv) && noise_cv < 1e3f, fn, "noise_cv",
          "a speckle coefficient of variation > 0 (1/sqrt(ENL))");
  require(std::isfinite(damping) && damping >= 0.f, fn, "damping", "a finite damping factor >= 0");
  check_workspace(fn, sop, x, ex, ws, bytes);
  const float cu2 = noise_cv * noise_cv;
  const float k = damping / cu2;
  const int h = window / 2;
  USFAST_DISPATCH(fn, ex, cpu::local_filter(op, x, y, h, cu2, k, ws, bytes),
                  cuda_launch::local_filter(op, x, y, h, cu2, k, ws, bytes, ex.stream));
}

void lee(Image<const float> x, Image<float> y, int window, float noise_cv, const Exec& ex,
         void* workspace, size_t workspace_bytes) {
  local_filter("lee", LocalFilter::Lee, SpeckleOp::Lee, x, y, window, noise_cv, 0.f, ex,
               workspace, workspace_bytes);
}

void kuan(Image<const float> x, Image<float> y, int window, float noise_cv, const Exec& ex,
          void* workspace, size_t workspace_bytes) {
  local_filter("kuan", LocalFilter::Kuan, SpeckleOp::Kuan, x, y, window, noise_cv, 0.f, ex,
               workspace, workspace_bytes);
}

void frost(Image<const float> x, Image<float> y, int window, float noise_cv, float damping,
           const Exec& ex, void* workspace, size_t workspace_bytes) {
  local_filter("frost", LocalFilter::Frost, SpeckleOp::Frost, x, y, window, noise_cv, damping, ex,
               workspace, workspace_bytes);
}

void guided(Image<const float> x, Image<const float> guide, Image<float> y, int window, float eps,
            const Exec& ex, void* workspace, size_t workspace_bytes) {
  const char* fn = "guided";
  check_pair(fn, x, y, ex);
  const bool self = guide.data == nullptr;
  if (!self) {
    check_image(fn, "guide", guide);
    require(guide.same_shape(x), fn, "guide", "the shape of img");
    require(!overlaps(guide, y), fn, "out", "an array that does not share memory with guide");
  }
  check_window(fn, window, 255);
  require(finite_pos(eps), fn, "eps", "a finite regularisation eps > 0");
  const SpeckleOp op = self ? SpeckleOp::Guided : SpeckleOp::GuidedWithGuide;
  check_workspace(fn, op, x, ex, workspace, workspace_bytes);
  const int h = window / 2;
  USFAST_DISPATCH(fn, ex, cpu::guided(x, guide, y, h, eps, workspace, workspace_bytes),
                  cuda_launch::guided(x, guide, y, h, eps, workspace, workspace_bytes, ex.stream));
}

}  // namespace usfast
