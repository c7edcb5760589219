"""Speckle reduction on float32 images ``(rows, cols)`` or batches ``(frames, rows, cols)``.

* :func:`srad` -- speckle reducing anisotropic diffusion (Yu & Acton, IEEE TIP 2002)
* :func:`dpad` -- detail preserving anisotropic diffusion (Aja-Fernandez & Alberola-Lopez,
  IEEE TIP 2006)
* :func:`lee`, :func:`kuan`, :func:`frost` -- adaptive local-statistics filters
* :func:`guided` -- the guided filter (He, Sun & Tang, IEEE TPAMI 2013), box form, O(1) per pixel

Inputs are envelope (amplitude) or intensity images, non-negative; every result is finite for
any finite input below 1e18 in magnitude (squares must fit in float32). Windows are
``window x window`` (odd, >= 3) and clipped at the image border: a window mean divides by the
pixels inside the image. The speckle level of the local-statistics
filters is the noise coefficient of variation ``Cu`` (std / mean of pure speckle in the data as
given): pass ``noise_cv`` or the equivalent number of looks ``enl`` (``Cu = 1/sqrt(enl)``); the
default ``Cu = sqrt(4/pi - 1) = 0.5227`` is fully developed speckle in an envelope (Rayleigh,
ENL 3.66, see :func:`usfast.metrics.enl`).

Every function: ``f(img, *, <params>, out=None, backend=None, stream=None, check_finite=True)``;
``out`` must not share memory with ``img``. Inputs whose columns are not contiguous are copied.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from . import _arrays, _backend, _cupy
from ._dispatch import Call, f32, frames_of, i32, i64
from ._errors import fail
from .bmode import _num as _number
from .reference import speckle as ref

__all__ = ["srad", "dpad", "lee", "kuan", "frost", "guided", "RAYLEIGH_CV"]

RAYLEIGH_CV = math.sqrt(4.0 / math.pi - 1.0)
"""Coefficient of variation of fully developed speckle in an envelope image (0.5227)."""

_F32 = (np.dtype(np.float32),)
# SpeckleOp of the C++ API (workspace sizes)
_OP = {"lee": 0, "kuan": 1, "frost": 2, "guided": 3, "guided_guide": 4, "srad": 5, "dpad": 6}
_MAX_WINDOW = {"frost": 31}
_BOX_STRIP = 32  # USFAST_BOX_STRIP: rows (columns) per thread of the GPU window-sum passes
_CV_BINS = 640


# ---- argument checks --------------------------------------------------------------------------
def _integer(fn, name, v, lo):
    try:
        i = operator.index(v)
    except TypeError:
        raise fail(fn, name, "an integer", repr(v)) from None
    if i < lo:
        raise fail(fn, name, f"an integer >= {lo}", i)
    return i


def _window(fn, window):
    w = _integer(fn, "window", window, 3)
    top = _MAX_WINDOW.get(fn, 255)
    if w % 2 == 0 or w > top:
        raise fail(fn, "window", f"an odd window size >= 3 and <= {top}", w)
    return w


def _noise_cv(fn, enl, noise_cv):
    if enl is not None and noise_cv is not None:
        raise fail(fn, "enl", "either enl or noise_cv, not both")
    if noise_cv is not None:
        return _number(fn, "noise_cv", noise_cv, 0, 1e3, lo_open=True)
    if enl is not None:
        return 1.0 / math.sqrt(_number(fn, "enl", enl, 0, lo_open=True))
    return RAYLEIGH_CV


def _dt(fn, dt):
    return _number(fn, "dt", dt, 0, 0.25, lo_open=True)


def _extent(a):
    """[first, last) byte addresses a view touches."""
    p = _arrays.pointer(a)
    span = sum((n - 1) * s for n, s in zip(a.shape, a.strides) if n > 0)
    lo = p + min(0, span)
    return lo, p + max(0, span) + a.itemsize


def _disjoint(fn, arg, a, b):
    if _arrays.on_device(a) != _arrays.on_device(b):
        return
    a0, a1 = _extent(a)
    b0, b1 = _extent(b)
    if a0 < b1 and b0 < a1:
        raise fail(fn, "out", f"an array that does not share memory with {arg}")


def _setup(fn, img, out, backend, stream, check_finite):
    c = Call(fn, img, backend, stream)
    x = c.input("img", img, _F32, check_finite=check_finite)
    o = c.output(out, x.shape, np.float32)
    _disjoint(fn, "img", x, o)
    return c, x, o


def _workspace(c, op, shape):
    """(pointer, bytes) of device scratch for the cuda backend (from CuPy's pool); the CPU
    backend allocates its own."""
    if c.backend != "cuda":
        return None, 0, 0
    F, R, C = frames_of(shape)
    n = _backend.core().speckle_workspace_bytes(_OP[op], F, R, C, 1)
    if n == 0:
        return None, 0, 0
    with c.xp.cuda.ExternalStream(c.stream):  # the pool hands it out again only after the call
        buf = c.xp.empty(n, dtype=np.uint8)
    return buf, c.ptr(buf), n


def _run(c, name, x, o, params, op=None):
    """The cpu/cuda core call ``name(x, o, *params, workspace, bytes)``."""
    keep, p, n = _workspace(c, op or name, x.shape)
    c.core(name, c.desc(x), c.desc(o), *params, p, n)
    del keep  # CuPy's pool reuses it once the stream is past the call


# ---- cupy (NVRTC) path: the launch sequence of cpp/src/cuda/speckle.cu ------------------------
def _kernel(c, area, name, grid, block, args):
    cp = c.xp
    with cp.cuda.ExternalStream(c.stream):
        _cupy.kernel(area, name)(grid, block, args)


def _strides(a):
    d = _arrays.desc(a)
    return i64(d[4]), i64(d[5])


def _cupy_box_cols(c, area, x, ws, h):
    F, R, C = frames_of(x.shape)
    xs = _strides(x)
    c.launch(area, "usfast_box_cols_sq", -(-R // _BOX_STRIP), C, F,
             (x, *xs, ws, i32(F), i32(R), i32(C), i32(h)))


def _rows_launch(c, area, name, R, C, F, args):
    # row passes: x = row, y = segment of _BOX_STRIP columns
    c.launch(area, name, -(-C // _BOX_STRIP), R, F, args)


def _cupy_local(c, name, x, o, h, p1):
    cp = c.xp
    F, R, C = frames_of(x.shape)
    with cp.cuda.ExternalStream(c.stream):
        ws = cp.empty((2, F, R, C), dtype=np.float32)
    _cupy_box_cols(c, "localstats", x, ws, h)
    _rows_launch(c, "localstats", f"usfast_{name}_rows", R, C, F,
                 (ws, x, *_strides(x), o, *_strides(o), i32(F), i32(R), i32(C), i32(h), f32(p1)))


def _cupy_guided(c, x, g, o, h, eps):
    cp = c.xp
    F, R, C = frames_of(x.shape)
    k = 2 if g is None else 4
    with cp.cuda.ExternalStream(c.stream):
        ws = cp.empty((k, F, R, C), dtype=np.float32)
        ab = cp.empty((2, F, R, C), dtype=np.float32)
    a = "localstats"
    if g is None:
        _cupy_box_cols(c, a, x, ws, h)
        _rows_launch(c, a, "usfast_guided_ab_self", R, C, F,
                     (ws, ab, i32(F), i32(R), i32(C), i32(h), f32(eps)))
    else:
        c.launch(a, "usfast_box_cols_guide", -(-R // _BOX_STRIP), C, F,
                 (g, *_strides(g), x, *_strides(x), ws, i32(F), i32(R), i32(C), i32(h)))
        _rows_launch(c, a, "usfast_guided_ab_guide", R, C, F,
                     (ws, ab, i32(F), i32(R), i32(C), i32(h), f32(eps)))
    plane = i64(R * C)
    c.launch(a, "usfast_box_cols_pair", -(-R // _BOX_STRIP), C, F,
             (ab[0], plane, i64(C), ab[1], plane, i64(C), ws, i32(F), i32(R), i32(C), i32(h)))
    gg = x if g is None else g
    _rows_launch(c, a, "usfast_guided_out_rows", R, C, F,
                 (ws, gg, *_strides(gg), o, *_strides(o), i32(F), i32(R), i32(C), i32(h)))


def _ping_pong(xp, x, o, iterations, step):
    """Run ``step(src, dst, t)`` so that the last iteration writes ``o``."""
    if iterations == 0:
        o[...] = x
        return
    tmp = xp.empty(x.shape, dtype=np.float32)
    cur = x
    for t in range(iterations):
        dst = o if (iterations - 1 - t) % 2 == 0 else tmp
        step(cur, dst, t)
        cur = dst


def _cupy_srad(c, x, o, iterations, dt, mode, roi, q0, decay):
    cp = c.xp
    F, R, C = frames_of(x.shape)
    a = "diffusion"
    r0, RR, c0, CC = roi if mode == 1 else (0, R, 0, C)
    region = (i32(r0), i32(c0), i32(RR), i32(CC))
    gx, gy = -(-C // 32), -(-R // 8)  # the 32 x 8 blocks of c.launch
    with cp.cuda.ExternalStream(c.stream):
        part = cp.empty((F, gy, gx, 2), dtype=np.float64)
        q0sq = cp.empty(F, dtype=np.float32)
    T = ref.q0_tile_size(R, C)
    if mode != 2 and iterations > 0:
        c.launch(a, "usfast_srad_block_sums", R, C, F, (x, *_strides(x), i32(R), i32(C), *region,
                                                        part))

    def step(src, dst, t):
        if mode == 2:
            qp, qv = np.uint64(0), f32((q0 * math.exp(-decay * dt * t)) ** 2)
        else:
            _kernel(c, a, "usfast_srad_q0", (F, 1, 1), (1024, 1, 1),
                    (part, i32(gx), i32(gy), i32(R), i32(C), i32(T), i32(RR), i32(CC),
                     i32(mode), q0sq))
            qp, qv = q0sq, f32(0)
        gather = part if mode != 2 and t + 1 < iterations else np.uint64(0)
        c.launch(a, "usfast_srad_step", R, C, F,
                 (src, *_strides(src), dst, *_strides(dst), i32(R), i32(C), qp, qv, f32(dt),
                  gather, *region))

    with cp.cuda.ExternalStream(c.stream):
        _ping_pong(cp, x, o, iterations, step)


def _cupy_dpad(c, x, o, iterations, dt, h):
    cp = c.xp
    F, R, C = frames_of(x.shape)
    a = "diffusion"
    with cp.cuda.ExternalStream(c.stream):
        ws = cp.empty((2, F, R, C), dtype=np.float32)
        ci2 = cp.empty((F, R, C), dtype=np.float32)
        hist = cp.zeros((F, _CV_BINS), dtype=np.uint32)
        cn2 = cp.empty(F, dtype=np.float32)

    def step(src, dst, t):
        ss = _strides(src)
        _cupy_box_cols(c, a, src, ws, h)
        _rows_launch(c, a, "usfast_dpad_ci2", R, C, F,
                     (ws, ci2, hist, i32(F), i32(R), i32(C), i32(h)))
        _kernel(c, a, "usfast_cv_median", (F, 1, 1), (32, 1, 1),
                (hist, np.float64(R * C), cn2))
        c.launch(a, "usfast_dpad_step", R, C, F,
                 (src, *ss, ci2, dst, *_strides(dst), i32(R), i32(C), cn2, f32(dt)))

    with cp.cuda.ExternalStream(c.stream):
        _ping_pong(cp, x, o, iterations, step)


# ---- public API -------------------------------------------------------------------------------
def _roi(fn, q0_roi, shape):
    """(row0, rows, col0, cols) from ``(row_slice, col_slice)`` or ``(r0, r1, c0, c1)``;
    bounds must lie inside the image (no clipping, no negative indices)."""
    R, C = shape[-2:]
    try:
        if len(q0_roi) == 2 and all(isinstance(s, slice) for s in q0_roi):
            rs, cs = q0_roi
            if rs.step not in (None, 1) or cs.step not in (None, 1):
                raise ValueError
            r0, r1 = (0 if rs.start is None else operator.index(rs.start),
                      R if rs.stop is None else operator.index(rs.stop))
            c0, c1 = (0 if cs.start is None else operator.index(cs.start),
                      C if cs.stop is None else operator.index(cs.stop))
        else:
            if isinstance(q0_roi, (str, bytes)):
                raise ValueError
            r0, r1, c0, c1 = (operator.index(v) for v in q0_roi)
    except (TypeError, ValueError):
        raise fail(fn, "q0_roi", "(row_start, row_stop, col_start, col_stop) or two unit-step "
                   "slices", repr(q0_roi)) from None
    if not (0 <= r0 < r1 <= R and 0 <= c0 < c1 <= C):
        raise fail(fn, "q0_roi", f"a non-empty region inside the {R}x{C} image",
                   (r0, r1, c0, c1))
    return r0, r1 - r0, c0, c1 - c0


def srad(img, *, iterations=100, dt=0.05, q0_roi=None, q0=None, q0_decay=0.0, out=None,
         backend=None, stream=None, check_finite=True):
    """Speckle reducing anisotropic diffusion (Yu & Acton, IEEE TIP 11(11):1260-1270, 2002).

    img: float32 (rows, cols) or (frames, rows, cols), an envelope or intensity image (not
    log-compressed). Returns float32 of the same shape.

    Each iteration computes the instantaneous coefficient of variation q at every pixel (from
    its four neighbours; Neumann borders), the diffusion coefficient
    ``c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2)))`` clamped to [0, 1], and the conservative
    update ``I += dt * div(c grad I)`` with grid step 1. ``dt`` must be in (0, 0.25]: 1/4 is the
    stability limit of this explicit scheme (the update is then a convex combination of a pixel
    and its neighbours, so no iteration count can overshoot, overflow or shift the mean).
    Yu & Acton write the step as ``(dt'/4) d``: their ``dt'`` is ``4 dt`` here.

    The speckle scale q0 at each iteration, in order of precedence:

    * ``q0_roi=(row_start, row_stop, col_start, col_stop)`` (or two slices): a homogeneous
      region; q0 = std/mean of the current image inside it (Yu & Acton's definition).
    * ``q0=``: a given scale, decaying as ``q0 exp(-q0_decay t)`` with diffusion time
      ``t = iteration * dt`` (Yu & Acton's eq. for an automatic scale; 0 = constant).
    * neither (default): estimated from the image itself at every iteration as the median,
      over 32 x 32 tiles (64, 128, ... when an image holds more than 1024 tiles), of each
      tile's var/mean^2. Why this estimator: it targets exactly what Yu & Acton's homogeneous
      region measures (std/mean of a speckle region of a few hundred speckle cells); the median
      over tiles ignores the tiles that straddle edges, cysts or bright structures as long as
      at least half of the tiles are plain speckle (50 % breakdown point); and it needs only
      per-tile sums (one block reduction) and a small sort, so on the GPU it stays on the
      device: no iteration waits for the host. On phantoms it reproduces the region-based
      result (PSNR/SSIM within a few hundredths).

    On the GPU all iterations are queued on the stream without synchronising; q0 is estimated
    by device kernels. Where q0 is 0 (constant or all-zero image, or a region with zero mean)
    the diffusion coefficient is 0 and the image is returned unchanged.
    """
    fn = "srad"
    iterations = _integer(fn, "iterations", iterations, 0)
    dt = _dt(fn, dt)
    c, x, o = _setup(fn, img, out, backend, stream, check_finite)
    if q0_roi is not None:
        mode, roi, qv, decay = 1, _roi(fn, q0_roi, x.shape), 0.0, 0.0
    elif q0 is not None:
        mode, roi = 2, (0, 0, 0, 0)
        qv = _number(fn, "q0", q0, 0)
        decay = _number(fn, "q0_decay", q0_decay, 0)
    else:
        mode, roi, qv, decay = 0, (0, 0, 0, 0), 0.0, 0.0
    if c.backend == "reference":
        o[...] = ref.srad(x, iterations, dt, ("tiles", "roi", "given")[mode], roi, qv, decay)
    elif c.backend == "cupy":
        _cupy_srad(c, x, o, iterations, dt, mode, roi, qv, decay)
    else:
        _run(c, "srad", x, o, (iterations, dt, mode, *roi, qv, decay))
    return c.result(o)


def dpad(img, *, iterations=100, dt=0.05, window=5, out=None, backend=None, stream=None,
         check_finite=True):
    """Detail preserving anisotropic diffusion (Aja-Fernandez & Alberola-Lopez, IEEE TIP
    15(9):2694-2701, 2006).

    The SRAD scheme (see :func:`srad`; ``0 < dt <= 0.25``) with the coefficient of variation
    estimated from local statistics: ``Ci^2 = var/mean^2`` over a ``window x window``
    neighbourhood, the noise ``Cn^2`` the median of ``Ci^2`` over the frame at every iteration,
    and Kuan's diffusion coefficient ``c = (1 + 1/Ci^2) / (1 + 1/Cn^2)`` clamped to [0, 1].
    The median is read from a histogram of ``Ci^2`` with 16 bins per octave, linearly
    interpolated inside the bin holding the middle (within 4.4 % of the exact median; computed
    on the device on the GPU, no host round-trip).
    """
    fn = "dpad"
    iterations = _integer(fn, "iterations", iterations, 0)
    dt = _dt(fn, dt)
    w = _window(fn, window)
    c, x, o = _setup(fn, img, out, backend, stream, check_finite)
    if c.backend == "reference":
        o[...] = ref.dpad(x, iterations, dt, w)
    elif c.backend == "cupy":
        _cupy_dpad(c, x, o, iterations, dt, w // 2)
    else:
        _run(c, "dpad", x, o, (iterations, dt, w))
    return c.result(o)


def _local(fn, img, window, enl, noise_cv, damping, out, backend, stream, check_finite):
    w = _window(fn, window)
    cu = _noise_cv(fn, enl, noise_cv)
    c, x, o = _setup(fn, img, out, backend, stream, check_finite)
    cu2 = cu * cu
    if c.backend == "reference":
        o[...] = (ref.frost(x, w, cu2, damping) if fn == "frost"
                  else getattr(ref, fn)(x, w, cu2))
    elif c.backend == "cupy":
        _cupy_local(c, fn, x, o, w // 2, damping / cu2 if fn == "frost" else cu2)
    else:
        _run(c, fn, x, o, (w, cu, damping) if fn == "frost" else (w, cu))
    return c.result(o)


def lee(img, *, window=7, enl=None, noise_cv=None, out=None, backend=None, stream=None,
        check_finite=True):
    """Lee filter (Lee, IEEE TPAMI 1980), multiplicative-noise form (Lopes et al. 1990):
    ``y = m + W (x - m)``, ``W = 1 - Cu^2 / Ci^2`` clamped to [0, 1], with m and
    ``Ci^2 = var/m^2`` the window statistics and Cu from ``enl`` or ``noise_cv`` (see the module
    docstring). A flat window (var = 0) gives its mean."""
    return _local("lee", img, window, enl, noise_cv, 0.0, out, backend, stream, check_finite)


def kuan(img, *, window=7, enl=None, noise_cv=None, out=None, backend=None, stream=None,
         check_finite=True):
    """Kuan filter (Kuan et al., IEEE TPAMI 1985): as :func:`lee` with
    ``W = (1 - Cu^2/Ci^2) / (1 + Cu^2)`` clamped to [0, 1]."""
    return _local("kuan", img, window, enl, noise_cv, 0.0, out, backend, stream, check_finite)


def frost(img, *, window=7, damping=1.0, enl=None, noise_cv=None, out=None, backend=None,
          stream=None, check_finite=True):
    """Frost filter (Frost et al., IEEE TPAMI 1982): ``y = sum w x / sum w`` over the window
    with ``w = exp(-K Ci^2 |t|)``, Ci^2 the window's var/mean^2 at the centre pixel and
    ``|t| = |dr| + |dc|`` the city-block distance. ``K = damping / Cu^2``, so that the exponent
    equals ``damping * |t|`` where the window holds plain speckle (Ci = Cu) at any speckle
    level, and grows where Ci exceeds Cu (edges keep their pixels). window <= 31 (the weighted
    sum is direct, O(window^2) per pixel); damping >= 0 (0 = box mean)."""
    damping = _number("frost", "damping", damping, 0)
    return _local("frost", img, window, enl, noise_cv, damping, out, backend, stream,
                  check_finite)


def guided(img, *, window=7, eps=None, guide=None, out=None, backend=None, stream=None,
           check_finite=True):
    """Guided filter (He, Sun & Tang, IEEE TPAMI 35(6), 2013), box-filter form, O(1) per pixel
    whatever the window: ``a = cov(I, p)/(var(I) + eps)``, ``b = mean(p) - a mean(I)`` over each
    window, output ``mean(a) I + mean(b)``.

    guide: the guidance image I (same shape; default ``img`` itself). eps: the regularisation
    in squared image units, > 0; default the variance of ``img`` (over the whole batch), so
    that windows whose variance is below the image's (speckle) are smoothed and windows with
    much more (edges) are kept -- scale-free. Computing that default synchronises the stream
    once.
    """
    fn = "guided"
    w = _window(fn, window)
    c, x, o = _setup(fn, img, out, backend, stream, check_finite)
    g = None
    if guide is not None:
        g = c.input("guide", guide, _F32, check_finite=check_finite)
        if g.shape != x.shape:
            raise fail(fn, "guide", f"the shape of img {x.shape}", g.shape)
        _disjoint(fn, "guide", g, o)
    if eps is None:
        # (a constant image has variance 0: any positive eps returns it unchanged)
        eps = max(float(c.xp.var(x, dtype=np.float64)), 1e-30)
    else:
        eps = _number(fn, "eps", eps, 0, lo_open=True)
    if c.backend == "reference":
        o[...] = ref.guided(x, w, eps, g)
    elif c.backend == "cupy":
        _cupy_guided(c, x, g, o, w // 2, eps)
    else:
        gd = c.desc(g) if g is not None else (0, *_arrays.desc(x)[1:])
        op = "guided" if g is None else "guided_guide"
        keep, p, n = _workspace(c, op, x.shape)
        c.core("guided", c.desc(x), gd, c.desc(o), w, eps, p, n)
        del keep
    return c.result(o)
