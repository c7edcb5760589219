// Bindings for needle enhancement and the line accumulator (usfast/needle.hpp). One line per
// function and type.
#include "usfast/needle.hpp"

#include "bindings/common.hpp"

using namespace usfast;
using bind::cptr;
using bind::exec;
using u = std::uintptr_t;

template <class T>
static void def_typed(py::module_& m, const std::string& s) {
  m.def(("box_decimate_" + s).c_str(), [](Image<const T> x, Image<float> y, int fac, float sc, int d, u st) {
    box_decimate<T>(x, y, fac, sc, exec(d, st)); }, USFAST_NOGIL);
  m.def(("line_filter_" + s).c_str(), [](Image<const T> x, Image<float> y, Image<float> a, u dirs, u ang, int na, int ns, float step, float side, float sc, int d, u st) {
    oriented_line_filter<T>(x, y, a, cptr<float>(dirs), cptr<float>(ang), na, ns, step, side, sc, exec(d, st)); }, USFAST_NOGIL);
  m.def(("band_sample_" + s).c_str(), [](Image<const T> x, Image<float> b, u p, float dt, float dw, float sc, int d, u st) {
    band_sample<T>(x, b, cptr<float>(p), dt, dw, sc, exec(d, st)); }, USFAST_NOGIL);
}

USFAST_BINDINGS(needle) {
  def_typed<float>(m, "f32");
  def_typed<uint8_t>(m, "u8");
  m.def("ridge_scale", [](Image<const float> x, Image<float> w, Image<float> r, Image<float> o, u taps, int rad, float sigma, int meas, float beta, float c, bool first, int d, u st) {
    ridge_scale(x, w, r, o, cptr<float>(taps), rad, sigma, static_cast<RidgeMeasure>(meas), beta, c, first, exec(d, st)); }, USFAST_NOGIL);
  m.def("needle_gate", [](Image<float> r, Image<const float> o, Image<const float> im, Image<const float> bg, float lo0, float hi0, float lo1, float hi1, float soft, float gain, float ref, int d, u st) {
    needle_gate(r, o, im, bg, lo0, hi0, lo1, hi1, soft, gain, ref, exec(d, st)); }, USFAST_NOGIL);
  m.def("hough_lines", [](Image<const float> r, Image<const float> o, Image<float> acc, u cs, u prior, int na, int nr, float th0, float dth, float rho0, float drho, float tol, float thr, int r0, int r1, int c0, int c1, int d, u st) {
    HoughGrid g{na, nr, th0, dth, rho0, drho, tol};
    hough_lines(r, o, acc, cptr<float>(cs), cptr<float>(prior), g, thr, r0, r1, c0, c1, exec(d, st)); }, USFAST_NOGIL);
}
