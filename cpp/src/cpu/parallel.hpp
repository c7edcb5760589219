// The CPU launcher shape: OpenMP over (frame, row), the column loop left to the caller so that
// it can be a contiguous, vectorised (omp simd) loop over the shared per-pixel functions.
#pragma once
#include <cstdint>

namespace usfast {
namespace cpu {

// Below this many elements a call runs on the calling thread: waking the team costs more than
// the work, and on a busy machine a sleeping worker can stall a tiny call for milliseconds.
constexpr int64_t kMinParallelElements = int64_t(1) << 15;

template <class Body>
void parallel_rows(int64_t frames, int64_t rows, const Body& body) {
  const int64_t n = frames * rows;
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) body(i / rows, i % rows);
}

// The same, parallel only when frames * rows * cols is worth a thread team.
template <class Body>
void parallel_rows(int64_t frames, int64_t rows, int64_t cols, const Body& body) {
  const int64_t n = frames * rows;
#pragma omp parallel for schedule(static) if (n > 1 && n * cols >= kMinParallelElements)
  for (int64_t i = 0; i < n; ++i) body(i / rows, i % rows);
}

template <class Body>
void parallel_for(int64_t n, const Body& body) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace cpu
}  // namespace usfast
