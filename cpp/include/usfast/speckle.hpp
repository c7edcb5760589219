// Speckle reduction: anisotropic diffusion (SRAD, DPAD) and adaptive local-statistics filters
// (Lee, Kuan, Frost, guided filter) on float32 images and batches (frames, rows, cols).
//
// Windows are w x w with w odd >= 3, clipped at the image border (a window mean divides by the
// number of pixels inside the image). The output must not overlap the input (or the guide).
//
// Scratch memory: calls on the GPU need device scratch of speckle_workspace_bytes(...) bytes;
// pass it as `workspace` (for example from a caching allocator) or leave it null and the call
// allocates and frees it stream-ordered (cudaMallocAsync / cudaFreeAsync). CPU calls allocate
// their own scratch. Calls on the GPU are asynchronous on the stream and never synchronise it:
// SRAD and DPAD estimate their speckle scale on the device, every iteration.
#pragma once
#include <cstddef>
#include <cstdint>

#include "usfast/core.hpp"

namespace usfast {

enum class SpeckleOp : int {
  Lee = 0, Kuan = 1, Frost = 2, Guided = 3, GuidedWithGuide = 4, Srad = 5, Dpad = 6
};

// Bytes of scratch a call of `op` on a (frames, rows, cols) batch needs where `ex` runs
// (0 when it needs none).
size_t speckle_workspace_bytes(SpeckleOp op, int64_t frames, int64_t rows, int64_t cols,
                               const Exec& ex);

// How SRAD obtains its speckle scale q0 at each iteration t (diffusion time t * dt).
enum class SradQ0 : int {
  Tiles = 0,  // median over 32 x 32 tiles (larger beyond 1024 tiles) of var/mean^2 of the
              // current image (see kernels/diffusion.cuh)
  Roi = 1,    // var/mean^2 of the current image inside the caller's homogeneous region
  Given = 2,  // q0(t) = q0 * exp(-q0_decay * t) (Yu & Acton's exponential decay; 0 = constant)
};

struct SradParams {
  int iterations = 100;  // >= 0 (0 copies the input)
  float dt = 0.05f;      // time step, 0 < dt <= 0.25 (stability limit)
  SradQ0 q0_mode = SradQ0::Tiles;
  int64_t roi_row0 = 0, roi_rows = 0, roi_col0 = 0, roi_cols = 0;  // for SradQ0::Roi
  float q0 = 0.f, q0_decay = 0.f;                                  // for SradQ0::Given
};

// Speckle reducing anisotropic diffusion (Yu & Acton, IEEE TIP 11(11), 2002).
void srad(Image<const float> x, Image<float> y, const SradParams& p, const Exec& ex,
          void* workspace = nullptr, size_t workspace_bytes = 0);

// Detail preserving anisotropic diffusion (Aja-Fernandez & Alberola-Lopez, IEEE TIP 15(9),
// 2006): local Ci^2 over a window x window neighbourhood, noise Cn^2 the median of Ci^2 over the
// frame at each iteration, Kuan's diffusion coefficient, the SRAD scheme. 0 < dt <= 0.25.
void dpad(Image<const float> x, Image<float> y, int iterations, float dt, int window,
          const Exec& ex, void* workspace = nullptr, size_t workspace_bytes = 0);

// Lee (1980) and Kuan (1985) filters. noise_cv: the speckle coefficient of variation Cu of the
// data as given (1/sqrt(ENL)), > 0.
void lee(Image<const float> x, Image<float> y, int window, float noise_cv, const Exec& ex,
         void* workspace = nullptr, size_t workspace_bytes = 0);
void kuan(Image<const float> x, Image<float> y, int window, float noise_cv, const Exec& ex,
          void* workspace = nullptr, size_t workspace_bytes = 0);

// Frost (1982) filter with weights exp(-damping Ci^2/Cu^2 (|dr| + |dc|)); window <= 31.
void frost(Image<const float> x, Image<float> y, int window, float noise_cv, float damping,
           const Exec& ex, void* workspace = nullptr, size_t workspace_bytes = 0);

// Guided filter (He, Sun & Tang, IEEE TPAMI 2013), box-filter form, O(1) per pixel. `guide`
// with a null data pointer means self-guided (guide = x). eps > 0 in squared image units.
void guided(Image<const float> x, Image<const float> guide, Image<float> y, int window, float eps,
            const Exec& ex, void* workspace = nullptr, size_t workspace_bytes = 0);

}  // namespace usfast
