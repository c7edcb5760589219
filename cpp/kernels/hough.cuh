// Line accumulator (Hough transform) weighted by ridge response and orientation agreement.
// The single source of this math for the CPU (OpenMP), CUDA and CuPy (NVRTC) backends.
//
// A line through the voting grid is (theta, rho): direction (cos theta, sin theta) in pixel
// (x, z) coordinates, theta in degrees on the bins theta_a = theta0 + a * dtheta (a = 0..A-1,
// A * dtheta = 180), and signed offset rho = n . (p - centre), n = (-sin theta, cos theta),
// centre = ((C-1)/2, (R-1)/2), on the bins rho_i = rho0 + i * drho (i = 0..NR-1).
//
// Pixel (x = c, z = r) with response w > threshold and local orientation phi (degrees) votes in
// every bin a whose angle agrees with phi within tol:
//   v(a) = w * prior[a] * max(0, 1 - (d(phi, theta_a) / tol)^2),  d wrapped to [-90, 90),
// split linearly between the two rho bins around its rho. prior[a] = 0 removes a bin (angle
// priors); only pixels inside the box [r0, r1) x [c0, c1) vote (region of interest).
// Accumulator layout: (frames, A, NR), element (f, a, i) at acc[f*afs + a*ars + i].
#pragma once
#include "common.cuh"

namespace usfast {
namespace k {

struct hough_grid {
  int A, NR;              // angle and offset bins
  float theta0, dtheta;   // degrees
  float rho0, drho;       // pixels
  float cx, cz;           // centre of the voting grid ((C-1)/2, (R-1)/2)
  float inv_tol;          // 1 / tol_deg
  int K;                  // bins either side of the nearest: ceil(tol / dtheta)
};

// Nearest angle bin of orientation phi (degrees), wrapped into [0, A).
USFAST_HD int hough_nearest_bin(float phi, const hough_grid& g) {
  int a = (int)ffloor((phi - g.theta0) / g.dtheta + 0.5f);
  a %= g.A;
  return a < 0 ? a + g.A : a;
}

// Orientation agreement of phi with bin a's angle.
USFAST_HD float hough_agreement(float phi, int a, const hough_grid& g) {
  float d = phi - (g.theta0 + (float)a * g.dtheta);
  d -= 180.f * ffloor((d + 90.f) / 180.f);
  const float u = d * g.inv_tol;
  return fmax_(0.f, 1.f - u * u);
}

// One pixel's vote in bin a (cs = cos/sin table: cs[2a], cs[2a+1]): calls add(i, value) for
// the (up to) two offset bins it reaches.
template <class Add>
USFAST_HD void hough_vote_bin(float x, float z, float w, float phi, int a, const float* cs,
                              const float* prior, const hough_grid& g, Add& add) {
  const float pa = prior[a];
  if (!(pa > 0.f)) return;
  const float ag = hough_agreement(phi, a, g);
  if (!(ag > 0.f)) return;
  const float v = w * pa * ag;
  const float rho = -(x - g.cx) * cs[2 * a + 1] + (z - g.cz) * cs[2 * a];
  const float u = (rho - g.rho0) / g.drho;
  const float fl = ffloor(u);
  const int i0 = (int)fl;
  const float fr = u - fl;
  if (i0 >= 0 && i0 < g.NR) add(a, i0, v * (1.f - fr));
  if (i0 + 1 >= 0 && i0 + 1 < g.NR) add(a, i0 + 1, v * fr);
}

// Whether pixel (r, c) votes.
USFAST_HD bool hough_voter(float w, float threshold, int r, int c, int r0, int r1, int c0, int c1) {
  return w > threshold && r >= r0 && r < r1 && c >= c0 && c < c1;
}

}  // namespace k
}  // namespace usfast

#if defined(__CUDACC__)
// ---- CUDA kernels ------------------------------------------------------------------------------
struct usfast_hough_atomic_add {
  float* acc;
  usf_i64 ars;
  __device__ void operator()(int a, int i, float v) { atomicAdd(acc + a * ars + i, v); }
};

// Zero the accumulator: grid over (NR, A, frames).
extern "C" __global__ void usfast_hough_clear(float* acc, usf_i64 afs, usf_i64 ars, int A, int NR) {
  USFAST_PIXEL_INDEX(f, a, i, A, NR);
  acc[f * afs + a * ars + i] = 0.f;
}

// Votes: grid over the voting image (C, R, frames), atomics into the frame's accumulator. The
// grid is passed as scalars (every launcher, NVRTC's included, can pass those).
extern "C" __global__ void usfast_hough_vote(const float* resp, const float* orient, usf_i64 ifs,
                                             usf_i64 irs, int R, int C, float* acc, usf_i64 afs,
                                             usf_i64 ars, const float* cs, const float* prior,
                                             int A, int NR, float theta0, float dtheta, float rho0,
                                             float drho, float inv_tol, int K, float threshold,
                                             int r0, int r1, int c0, int c1) {
  USFAST_PIXEL_INDEX(f, r, c, R, C);
  const usfast::k::hough_grid g{A,    NR,   theta0, dtheta, rho0, drho, 0.5f * (float)(C - 1),
                                0.5f * (float)(R - 1), inv_tol, K};
  const usf_i64 o = f * ifs + r * irs + c;
  const float w = resp[o];
  if (!usfast::k::hough_voter(w, threshold, r, c, r0, r1, c0, c1)) return;
  const float phi = orient[o];
  usfast_hough_atomic_add add{acc + f * afs, ars};
  const int a0 = usfast::k::hough_nearest_bin(phi, g);
  for (int j = -g.K; j <= g.K; ++j) {
    int a = (a0 + j) % g.A;
    a = a < 0 ? a + g.A : a;
    usfast::k::hough_vote_bin((float)c, (float)r, w, phi, a, cs, prior, g, add);
  }
}
#endif  // __CUDACC__
