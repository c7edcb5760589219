// Needle enhancement and the line accumulator for needle localisation.
//
// Images are batches (frames, rows = depth, cols = lateral) as strided views; one frame is a
// batch of one. Points are (x = column, z = row) in pixels. Tables (`taps`, `dirs`, `cs`, ...)
// live where the call runs: host memory for Exec::cpu(), device memory for Exec::cuda(stream),
// where calls are asynchronous on the stream. User errors throw usfast::InputError; nothing
// aborts. The per-pixel math is in cpp/kernels/{ridge,linefilter,hough}.cuh.
#pragma once
#include <cstdint>

#include "usfast/core.hpp"

namespace usfast {

// Mean over factor x factor blocks (clipped at the edges) times `scale`:
// out.rows = ceil(img.rows / factor), out.cols = ceil(img.cols / factor). T = float or uint8_t
// (scale 1/255 maps a uint8 display image to [0, 1]).
template <class T>
void box_decimate(Image<const T> img, Image<float> out, int factor, float scale, const Exec& ex);

enum class RidgeMeasure : int { Frangi = 0, Strength = 1, Norm = 2 };

// One scale of the multiscale Hessian ridge filter (bright ridges). `taps` holds the sampled
// Gaussian derivative taps of order 0, 1 and 2 at this scale (3 consecutive arrays of
// 2*radius+1 values, tap k+radius = g(k)); `sigma` is that scale in pixels. The Hessian is
// computed by separable convolution with reflected borders, normalised by sigma^2, and its
// analytic eigenvalues (sorted by magnitude, |l1| <= |l2|) give
//   Frangi:   exp(-(l1/l2)^2 / (2 beta^2)) (1 - exp(-(l1^2 + l2^2) / (2 c^2))) where l2 < 0,
//   Strength: max(0, -l2 - |l1|),
//   Norm:     sqrt(l1^2 + l2^2) (the data-driven choice of c),
// and the orientation of the ridge (degrees in (-90, 90], direction (cos, sin) in (x, z)).
// first = true writes response/orientation; false keeps, per pixel, the larger response of
// this scale and what is there (multiscale maximum). `work` is scratch of 3 * img.frames
// frames of img's shape.
void ridge_scale(Image<const float> img, Image<float> work, Image<float> response,
                 Image<float> orientation, const float* taps, int radius, float sigma,
                 RidgeMeasure measure, float beta, float c, bool first, const Exec& ex);

// Needle enhancement in place on a ridge-strength `response` with its `orientation` (degrees,
// pixel space): times the angle-prior weight (1 inside the orientation intervals [lo0, hi0] and
// [lo1, hi1], an interval with lo > hi unused, falling to 0 over soft_deg outside), times
// 1 + gain * clamp((img - background) / ref, 0, 1) when `background` has data (the temporal
// term: a moving needle over static tissue).
void needle_gate(Image<float> response, Image<const float> orientation, Image<const float> img,
                 Image<const float> background, float lo0, float hi0, float lo1, float hi1,
                 float soft_deg, float gain, float ref, const Exec& ex);

// Oriented line filter bank (kernels/linefilter.cuh): for each of n_angles entries of
// dirs (ux, uz, nx, nz: pixels per unit length along the line and its normal) the mean of
// n_samples samples spaced `step` along the line through each pixel minus the mean of the two
// parallel lines at +-side; writes the best response (times `scale`) and angles[best].
template <class T>
void oriented_line_filter(Image<const T> img, Image<float> response, Image<float> angle,
                          const float* dirs, const float* angles, int n_angles, int n_samples,
                          float step, float side, float scale, const Exec& ex);

// A band of samples along one line per frame: band(f, t, w) = scale * bilinear(img[f],
// p0 + t*dt*u + (w - (W-1)/2)*dw*(-uz, ux)) with params[4f..4f+3] = (x0, z0, ux, uz) and
// coordinates clamped to the image. band is (frames, T, W).
template <class T>
void band_sample(Image<const T> img, Image<float> band, const float* params, float dt, float dw,
                 float scale, const Exec& ex);

// Line accumulator geometry (see kernels/hough.cuh).
struct HoughGrid {
  int n_angles = 180;     // A; A * dtheta_deg = 180
  int n_offsets = 0;      // NR
  float theta0_deg = -90.f, dtheta_deg = 1.f;
  float rho0 = 0.f, drho = 1.f;
  float tol_deg = 5.f;    // orientation agreement half-width
};

// Weighted line accumulator: acc (frames, A, NR) is cleared, then every pixel of `response`
// above `threshold` inside the box rows [r0, r1) x cols [c0, c1) votes with its response times
// prior[a] times the orientation agreement. cs = (cos, sin) of each bin's angle (2A floats),
// prior = A weights (0 removes a bin).
void hough_lines(Image<const float> response, Image<const float> orientation, Image<float> acc,
                 const float* cs, const float* prior, const HoughGrid& grid, float threshold,
                 int r0, int r1, int c0, int c1, const Exec& ex);

}  // namespace usfast
