// Bindings for speckle reduction (usfast/speckle.hpp). One line per function.
#include "usfast/speckle.hpp"

#include "bindings/common.hpp"

using namespace usfast;
using bind::exec;
using u = std::uintptr_t;

USFAST_BINDINGS(speckle) {
  m.def("speckle_workspace_bytes", [](int op, int64_t f, int64_t r, int64_t c, int d) {
    return speckle_workspace_bytes(SpeckleOp(op), f, r, c, exec(d, 0)); });
  m.def("srad", [](Image<const float> x, Image<float> y, int iters, float dt, int mode, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float q0, float decay, u ws, size_t wsb, int d, u st) {
    SradParams p;
    p.iterations = iters; p.dt = dt; p.q0_mode = SradQ0(mode);
    p.roi_row0 = r0; p.roi_rows = nr; p.roi_col0 = c0; p.roi_cols = nc; p.q0 = q0; p.q0_decay = decay;
    srad(x, y, p, exec(d, st), reinterpret_cast<void*>(ws), wsb); }, USFAST_NOGIL);
  m.def("dpad", [](Image<const float> x, Image<float> y, int iters, float dt, int win, u ws, size_t wsb, int d, u st) {
    dpad(x, y, iters, dt, win, exec(d, st), reinterpret_cast<void*>(ws), wsb); }, USFAST_NOGIL);
  m.def("lee", [](Image<const float> x, Image<float> y, int win, float cv, u ws, size_t wsb, int d, u st) {
    lee(x, y, win, cv, exec(d, st), reinterpret_cast<void*>(ws), wsb); }, USFAST_NOGIL);
  m.def("kuan", [](Image<const float> x, Image<float> y, int win, float cv, u ws, size_t wsb, int d, u st) {
    kuan(x, y, win, cv, exec(d, st), reinterpret_cast<void*>(ws), wsb); }, USFAST_NOGIL);
  m.def("frost", [](Image<const float> x, Image<float> y, int win, float cv, float damping, u ws, size_t wsb, int d, u st) {
    frost(x, y, win, cv, damping, exec(d, st), reinterpret_cast<void*>(ws), wsb); }, USFAST_NOGIL);
  m.def("guided", [](Image<const float> x, Image<const float> g, Image<float> y, int win, float eps, u ws, size_t wsb, int d, u st) {
    guided(x, g, y, win, eps, exec(d, st), reinterpret_cast<void*>(ws), wsb); }, USFAST_NOGIL);
}
