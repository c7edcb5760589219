// The CPU launcher shape: OpenMP over (frame, row), the column loop left to the caller so that
// it can be a contiguous, vectorised (omp simd) loop over the shared per-pixel functions.
#pragma once
#include <cstdint>

namespace usfast {
namespace cpu {

template <class Body>
void parallel_rows(int64_t frames, int64_t rows, const Body& body) {
  const int64_t n = frames * rows;
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) body(i / rows, i % rows);
}

template <class Body>
void parallel_for(int64_t n, const Body& body) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace cpu
}  // namespace usfast
