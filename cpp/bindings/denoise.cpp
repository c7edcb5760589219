// Bindings for the denoising filters (usfast/denoise.hpp). One line per function.
#include "usfast/denoise.hpp"

#include "bindings/common.hpp"

using namespace usfast;
using u = std::uintptr_t;

USFAST_BINDINGS(denoise) {
  m.def("nlm_f32", [](Image<const float> x, Image<float> y, int patch, int search, float h, float sigma, int d, u st) {
    nlm(x, y, patch, search, h, sigma, bind::exec(d, st)); }, USFAST_NOGIL);
  m.def("median_f32", [](Image<const float> x, Image<float> y, int size, int d, u st) {
    median(x, y, size, bind::exec(d, st)); }, USFAST_NOGIL);
  m.def("bilateral_f32", [](Image<const float> x, Image<float> y, int diameter, float sc, float ss, int d, u st) {
    bilateral(x, y, diameter, sc, ss, bind::exec(d, st)); }, USFAST_NOGIL);
}
