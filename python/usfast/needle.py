"""Needle enhancement and localisation for in-plane ultrasound-guided procedures.

Conventions (DESIGN.md): images ``(rows = depth, cols = lateral)``; things shaped like arrays
(spacing, origin) follow axis order ``(z, x)``; points are ``(x, z)``, x lateral to the right
(column), z depth downward (row). Orientations of lines are signed degrees in (-90, 90]: the
line runs along ``(cos a, sin a)`` in (x, z), so a positive orientation descends to the right
(a needle coming from the left). A needle's ``angle_deg`` is unsigned, 0-90, between the needle
and the probe face, measured in millimetres (anisotropic pixels are accounted for).

Public functions:

* :func:`ridge` -- multiscale Hessian bright-ridge response (Frangi vesselness or ridge strength)
  and local orientation.
* :func:`oriented_line_filter` -- a bank of oriented line detectors over the plausible angles.
* :func:`needle_enhance` -- the enhancement used for localisation: scale-normalised ridge
  strength gated by the angle prior, with an optional temporal term.
* :func:`locate_needle` -- axis, tip, entry point, angle and confidence of the needle in one
  frame, as a :class:`usfast.NeedleEstimate`.

The per-pixel work runs in the compiled core (kernels/ridge.cuh, linefilter.cuh, hough.cuh) on
the CPU (OpenMP), CUDA or CuPy (NVRTC) backend, or in float64 NumPy (``backend="reference"``).
"""
from __future__ import annotations

import functools
import math
import statistics

import numpy as np

from . import _arrays
from ._dispatch import Call, f32, frames_of, i32, i64
from .bmode import _num
from ._errors import fail
from .estimate import NeedleEstimate
from .geometry import ImageGeometry
from .reference import needle as ref

__all__ = ["ridge", "oriented_line_filter", "needle_enhance", "locate_needle"]

_IMG = (np.dtype(np.float32), np.dtype(np.uint8))
_SFX = {"float32": "f32", "uint8": "u8"}
_MEASURES = {"frangi": ref.RIDGE_FRANGI, "strength": ref.RIDGE_STRENGTH}


# ---- parameter checks (numbers: bmode._num, shared with speckle) --------------------------------
def _geometry(func, geometry, shape):
    if geometry is None:
        raise fail(func, "geometry", "the image's usfast.ImageGeometry (spacing and origin in mm)")
    if not isinstance(geometry, ImageGeometry):
        raise fail(func, "geometry", "a usfast.ImageGeometry", type(geometry).__name__)
    geometry.check_image(func, "geometry", shape)
    return geometry


def _angle_range(func, angle_range_deg, default=(10.0, 80.0)):
    if angle_range_deg is None:
        return default
    try:
        lo, hi = angle_range_deg
    except (TypeError, ValueError):
        raise fail(func, "angle_range_deg", "(lo, hi) in degrees", repr(angle_range_deg)) from None
    lo = _num(func, "angle_range_deg", lo)
    hi = _num(func, "angle_range_deg", hi)
    if not (0.0 < lo <= hi < 90.0):
        raise fail(func, "angle_range_deg", "0 < lo <= hi < 90 degrees", (lo, hi))
    return lo, hi


def _side(func, side):
    if side not in (None, "left", "right"):
        raise fail(func, "side", "None, 'left' or 'right'", repr(side))
    return side


def _px_orientation(a_mm_deg, spacing):
    """Orientation in pixel space of a line at signed orientation ``a_mm_deg`` in mm."""
    dz, dx = spacing
    a = np.radians(np.asarray(a_mm_deg, dtype=np.float64))
    return np.degrees(np.arctan2(np.sin(a) / dz, np.cos(a) / dx))


def _mm_orientation(a_px_deg, spacing):
    dz, dx = spacing
    a = np.radians(np.asarray(a_px_deg, dtype=np.float64))
    return np.degrees(np.arctan2(np.sin(a) * dz, np.cos(a) * dx))


def _intervals_px(lo, hi, side, spacing):
    """Angle prior as up to two signed pixel-space orientation intervals (lo > hi = unused)."""
    a, b = (float(v) for v in _px_orientation([lo, hi], spacing))
    left = (a, b) if side in (None, "left") else (1.0, -1.0)
    right = (-b, -a) if side in (None, "right") else (1.0, -1.0)
    return left, right


# ---- kernel runners (input already validated and on the call's device) ------------------------
@functools.lru_cache(maxsize=64)
def _taps(sigma, radius):
    t = ref.gaussian_taps(sigma, radius).astype(np.float32).ravel()
    t.setflags(write=False)
    return t


def _radius(sigma):
    return max(int(4.0 * sigma + 0.5), 1)


def _to_float(c, x):
    """float32 copy in [0, 1] of a uint8 display image (float32 passes through)."""
    if x.dtype == np.float32:
        return x
    return _decimate(c, x, 1, 1.0 / 255.0)


def _decimate(c, x, factor, scale):
    F, R, C = frames_of(x.shape)
    RO, CO = -(-R // factor), -(-C // factor)
    o = c.xp.empty(x.shape[:-2] + (RO, CO), np.float32)
    if c.backend == "reference":
        o[...] = ref.box_decimate(x, factor, scale)
    elif c.backend == "cupy":
        dx, do = c.desc(x), c.desc(o)
        c.launch("ridge", f"usfast_box_decimate_{_SFX[x.dtype.name]}", RO, CO, F,
                 (x, i64(dx[4]), i64(dx[5]), i32(R), i32(C), o, i64(do[4]), i64(do[5]),
                  i32(RO), i32(CO), i32(factor), f32(scale)))
    else:
        c.core(f"box_decimate_{_SFX[x.dtype.name]}", c.desc(x), c.desc(o), factor, scale)
    return o


def _ridge(c, x, sigmas, measure, beta=0.5, cc=1.0, resp=None, orient=None):
    """Multiscale ridge response and orientation (pixel-space degrees) of float32 x."""
    F, R, C = frames_of(x.shape)
    xp = c.xp
    resp = xp.empty(x.shape, np.float32) if resp is None else resp
    orient = xp.empty(x.shape, np.float32) if orient is None else orient
    if c.backend == "reference":
        r, o = ref.ridge(x, sigmas, [_radius(s) for s in sigmas], measure, beta, cc)
        resp[...], orient[...] = r, o
        return resp, orient
    work = xp.empty((3 * F, R, C), np.float32)
    dw, dr = c.desc(work), c.desc(resp)
    for i, s in enumerate(sigmas):
        rad = _radius(s)
        taps = c.table(_taps(float(s), rad))
        if c.backend == "cupy":
            dx = c.desc(x)
            aps = F * dw[4]
            c.launch("ridge", "usfast_ridge_rows", R, C, F,
                     (x, i64(dx[4]), i64(dx[5]), work, i64(aps), i64(dw[4]), i64(dw[5]), i32(R),
                      i32(C), taps, i32(rad)))
            c.launch("ridge", "usfast_ridge_cols", R, C, F,
                     (work, i64(aps), i64(dw[4]), i64(dw[5]), resp, orient, i64(dr[4]),
                      i64(dr[5]), i32(R), i32(C), taps, i32(rad), f32(s * s), i32(measure),
                      f32(beta), f32(cc), i32(1 if i == 0 else 0)))
        else:
            c.core("ridge_scale", c.desc(x), dw, dr, c.desc(orient), c.ptr(taps), rad, float(s),
                   measure, float(beta), float(cc), i == 0)
    return resp, orient


def _gate(c, resp, orient, intervals, soft_deg, img=None, bg=None, gain=0.0, ref_contrast=1.0):
    """In place: response times the angle-prior weight (times the temporal factor when a
    background is given)."""
    (lo0, hi0), (lo1, hi1) = intervals
    F, R, C = frames_of(resp.shape)
    if c.backend == "reference":
        resp[...] = ref.needle_gate(resp, orient, intervals, soft_deg, img, bg, gain,
                                    ref_contrast)
        return resp
    temporal = bg is not None
    if c.backend == "cupy":
        dr = c.desc(resp)
        di = c.desc(img) if temporal else dr
        db = c.desc(bg) if temporal else dr
        c.launch("ridge", "usfast_needle_enhance", R, C, F,
                 (resp, orient, i64(dr[4]), i64(dr[5]), img if temporal else resp, i64(di[4]),
                  i64(di[5]), bg if temporal else resp, i64(db[4]), i64(db[5]), i32(R), i32(C),
                  f32(lo0), f32(hi0), f32(lo1), f32(hi1), f32(1.0 / soft_deg),
                  i32(1 if temporal else 0), f32(gain), f32(1.0 / ref_contrast)))
    else:
        null = (0, F, R, C, R * C, C)
        c.core("needle_gate", c.desc(resp), c.desc(orient), c.desc(img) if temporal else null,
               c.desc(bg) if temporal else null, lo0, hi0, lo1, hi1, soft_deg,
               gain if temporal else 0.0, ref_contrast)
    return resp


def _band(c, x, params, T, W, dt, dw, scale):
    """(F, T, W) samples along one line per frame (params (F, 4) = x0, z0, ux, uz)."""
    F = frames_of(x.shape)[0]
    o = c.xp.empty((F, T, W), np.float32)
    if c.backend == "reference":
        o[...] = ref.band_sample(x, params, T, W, dt, dw, scale).reshape(F, T, W)
        return o
    p = c.table(np.asarray(params, np.float32).reshape(F, 4))
    if c.backend == "cupy":
        dx, do = c.desc(x), c.desc(o)
        R, C = x.shape[-2:]
        c.launch("linefilter", f"usfast_band_sample_{_SFX[x.dtype.name]}", T, W, F,
                 (x, i64(dx[4]), i64(dx[5]), i32(R), i32(C), o, i64(do[4]), i64(do[5]), i32(T),
                  i32(W), p, f32(dt), f32(dw), f32(scale)))
    else:
        c.core(f"band_sample_{_SFX[x.dtype.name]}", c.desc(x), c.desc(o), c.ptr(p), dt, dw,
               scale)
    return o


class _HoughGrid:
    """Angle bins over 180 degrees and offset bins covering the voting grid."""

    def __init__(self, shape, dtheta_deg=1.0, drho=1.0, tol_deg=5.0):
        R, C = shape
        self.A = int(round(180.0 / dtheta_deg))
        self.dtheta = 180.0 / self.A
        self.theta0 = -90.0
        half = 0.5 * math.hypot(R - 1, C - 1) + 1.0
        self.NR = 2 * int(math.ceil(half / drho)) + 1
        self.drho = float(drho)
        self.rho0 = -(self.NR - 1) / 2 * self.drho
        self.tol = float(tol_deg)
        self.theta = self.theta0 + np.arange(self.A) * self.dtheta
        th = np.radians(self.theta)
        self.cs = np.stack([np.cos(th), np.sin(th)], axis=1).astype(np.float32).ravel()


def _hough(c, resp, orient, grid, prior, threshold, roi):
    """(A, NR) accumulator of one frame (roi = (r0, r1, c0, c1) on the voting grid)."""
    R, C = resp.shape[-2:]
    r0, r1, c0, c1 = roi
    if c.backend == "reference":
        acc = ref.hough_lines(resp, orient, grid.cs, prior, grid.A, grid.NR, grid.theta0,
                              grid.dtheta, grid.rho0, grid.drho, grid.tol, threshold, roi)
        return acc.astype(np.float32)
    acc = c.xp.empty((grid.A, grid.NR), np.float32)
    cs, pr = c.table(grid.cs), c.table(prior)
    if c.backend == "cupy":
        dr, da = c.desc(resp), c.desc(acc)
        K = int(math.ceil(grid.tol / grid.dtheta))
        c.launch("hough", "usfast_hough_clear", grid.A, grid.NR, 1,
                 (acc, i64(da[4]), i64(da[5]), i32(grid.A), i32(grid.NR)))
        c.launch("hough", "usfast_hough_vote", R, C, 1,
                 (resp, orient, i64(dr[4]), i64(dr[5]), i32(R), i32(C), acc, i64(da[4]),
                  i64(da[5]), cs, pr, i32(grid.A), i32(grid.NR), f32(grid.theta0),
                  f32(grid.dtheta), f32(grid.rho0), f32(grid.drho), f32(1.0 / grid.tol), i32(K),
                  f32(threshold), i32(r0), i32(r1), i32(c0), i32(c1)))
    else:
        c.core("hough_lines", c.desc(resp), c.desc(orient), c.desc(acc), c.ptr(cs), c.ptr(pr),
               grid.A, grid.NR, grid.theta0, grid.dtheta, grid.rho0, grid.drho, grid.tol,
               float(threshold), r0, r1, c0, c1)
    return acc


def _pair_out(c, out, shape):
    """Two float32 outputs (response, angle) from ``out`` = None or a pair of arrays."""
    if out is None:
        return c.xp.empty(shape, np.float32), c.xp.empty(shape, np.float32)
    try:
        a, b = out
    except (TypeError, ValueError):
        raise fail(c.func, "out", "a pair of arrays (response, angle)", type(out).__name__) from None
    res = []
    for o in (a, b):
        o = _arrays.as_array(c.func, "out", o)
        _arrays.check_out(c.func, o, shape, np.float32)
        if _arrays.on_device(o) != (c.backend in ("cuda", "cupy")):
            raise fail(c.func, "out", f"arrays where the {c.backend} backend runs",
                       "an array on the other device")
        res.append(o)
    if res[0].strides != res[1].strides:
        raise fail(c.func, "out", "two arrays with the same strides")
    return res[0], res[1]


def _result_pair(c, a, b):
    return _arrays.like_input(a, c.original), _arrays.like_input(b, c.original)


# ---- public: enhancement ------------------------------------------------------------------------
def ridge(img, *, scales=(1.0, 2.0, 3.0), measure="frangi", beta=0.5, c=None, out=None,
          backend=None, stream=None, check_finite=True):
    """Multiscale Hessian bright-ridge response and local orientation.

    img: (rows, cols) or (frames, rows, cols), float32 or uint8 (uint8 is read as value/255).
    scales: Gaussian standard deviations in pixels (as ``skimage.filters.frangi``'s
        ``sigmas``). At each scale the Hessian comes from separable sampled Gaussian-derivative
        filters (radius round(4 sigma), "reflect" borders as scipy.ndimage) and is multiplied by
        sigma^2 (Frangi et al. 1998's scale normalisation; skimage's frangi omits it, which
        changes values across scales but not where ridges are). Eigenvalues come from the
        analytic 2x2 decomposition, sorted by magnitude ``|l1| <= |l2|``.
    measure: ``"frangi"``: ``exp(-(l1/l2)^2/(2 beta^2)) (1 - exp(-(l1^2+l2^2)/(2 c^2)))`` where
        ``l2 < 0``, else 0 (bright ridges, in [0, 1]); ``"strength"``: ``max(0, -l2 - |l1|)``
        (keeps the ridge contrast; what :func:`needle_enhance` uses).
    c: Frangi structureness constant; None: half the largest Hessian norm at the first scale
        (skimage's default rule, on the normalised Hessian).
    Returns ``(response, orientation_deg)`` float32 of img's shape: the per-pixel maximum over
    scales and the orientation of the ridge at the winning scale, signed degrees in (-90, 90]
    in pixel space (the ridge runs along (cos, sin) in (x, z)).
    out: optional pair of float32 arrays for (response, orientation).
    """
    fn = "ridge"
    if measure not in _MEASURES:
        raise fail(fn, "measure", "'frangi' or 'strength'", repr(measure))
    try:
        sig = [float(s) for s in np.atleast_1d(np.asarray(scales, dtype=np.float64))]
    except (TypeError, ValueError):
        raise fail(fn, "scales", "positive Gaussian sigmas in pixels", repr(scales)) from None
    if not sig or not all(math.isfinite(s) and 0.0 < s <= 256.0 for s in sig):
        raise fail(fn, "scales", "one or more sigmas in (0, 256] pixels", repr(scales))
    b = _num(fn, "beta", beta, 0, lo_open=True)
    call = Call(fn, img, backend, stream)
    x = call.input("img", img, _IMG, check_finite=check_finite)
    m = _MEASURES[measure]
    resp, orient = _pair_out(call, out, x.shape)
    xf = _to_float(call, x)
    if m == ref.RIDGE_FRANGI:
        if c is None:
            cc = 0.5 * _hessian_norm_max(call, xf, sig[0])
            cc = cc if cc > 0 else 1.0
        else:
            cc = _num(fn, "c", c, 0, lo_open=True)
    else:
        cc = 1.0
    _ridge(call, xf, sig, m, b, cc, resp, orient)
    return _result_pair(call, resp, orient)


def _hessian_norm_max(c, x, sigma):
    """Largest Hessian norm sqrt(l1^2 + l2^2) (normalised) at one scale."""
    r, _ = _ridge(c, x, [sigma], ref.RIDGE_NORM)
    return float(r.max())


def _bank(func, angles_deg, angle_range_deg, side, step_deg):
    """Signed mm orientations of the filter bank: given, or the plausible range at step_deg
    (positive for a needle from the left, negative from the right)."""
    if angles_deg is not None:
        try:
            a = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64)).ravel()
        except (TypeError, ValueError):
            raise fail(func, "angles_deg", "orientations in degrees", repr(angles_deg)) from None
        if a.size == 0 or a.size > 4096 or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 90):
            raise fail(func, "angles_deg", "1 to 4096 finite orientations in [-90, 90] degrees",
                       repr(angles_deg))
        return a
    lo, hi = _angle_range(func, angle_range_deg)
    st = _num(func, "step_deg", step_deg, 0, 90, lo_open=True)
    mag = np.arange(lo, hi + 1e-9, st)
    if side == "left":
        return mag
    if side == "right":
        return -mag
    return np.concatenate([-mag[::-1], mag])


def oriented_line_filter(img, *, geometry=None, angles_deg=None, angle_range_deg=(10.0, 80.0),
                         side=None, step_deg=2.0, length_mm=3.0, offset_mm=0.8, out=None,
                         backend=None, stream=None, check_finite=True):
    """Oriented line detector bank: the best response over the plausible needle orientations.

    For each orientation a (signed degrees in mm space, see the module docstring) and each
    pixel p: the mean of the image along a segment of ``length_mm`` through p at orientation a
    (samples one pixel apart, bilinear, clamped at the borders) minus the mean along the two
    parallel segments ``offset_mm`` to either side. A bright line narrower than ``offset_mm``
    gives its contrast over the local background; speckle averages out along the segment.

    img: (rows, cols) or (frames, rows, cols) float32, or uint8 (read as value/255).
    geometry: the image's :class:`usfast.ImageGeometry` (lengths and angles are in mm).
    angles_deg: the bank; default: ``angle_range_deg`` (unsigned, 0 < lo <= hi < 90) every
        ``step_deg``, for needles from the ``side`` given ("left": positive orientations,
        "right": negative, None: both).
    Returns ``(response, angle_deg)`` float32 of img's shape: the largest response and its
    orientation (signed degrees, mm space). Cost: orientations x 3 x length/pixel samples per
    pixel (run it on a decimated image for speed).
    """
    fn = "oriented_line_filter"
    _side(fn, side)
    angles = _bank(fn, angles_deg, angle_range_deg, side, step_deg)
    L = _num(fn, "length_mm", length_mm, 0, lo_open=True)
    off = _num(fn, "offset_mm", offset_mm, 0)
    call = Call(fn, img, backend, stream)
    x = call.input("img", img, _IMG, check_finite=check_finite)
    g = _geometry(fn, geometry, x.shape)
    dz, dx = g.spacing_mm
    step = min(dz, dx)
    n = int(L / step) + 1
    if n > 4096:
        raise fail(fn, "length_mm", "a segment of at most 4096 pixels", L)
    ar = np.radians(angles)
    dirs = np.stack([np.cos(ar) / dx, np.sin(ar) / dz, -np.sin(ar) / dx, np.cos(ar) / dz], 1)
    sc = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    resp, ang = _pair_out(call, out, x.shape)
    F, R, C = frames_of(x.shape)
    if call.backend == "reference":
        xr = x.astype(np.float64) * sc
        r, a = ref.oriented_line_filter(xr, dirs.ravel(), angles, n, step, off)
        resp[...], ang[...] = r, a
        return _result_pair(call, resp, ang)
    dt, at = call.table(dirs.ravel()), call.table(angles)
    if call.backend == "cupy":
        dxx, dr = call.desc(x), call.desc(resp)
        call.launch("linefilter", f"usfast_line_filter_{_SFX[x.dtype.name]}", R, C, F,
                    (x, i64(dxx[4]), i64(dxx[5]), resp, ang, i64(dr[4]), i64(dr[5]), i32(R),
                     i32(C), dt, at, i32(len(angles)), i32(n), f32(step), f32(off), f32(sc)))
    else:
        call.core(f"line_filter_{_SFX[x.dtype.name]}", call.desc(x), call.desc(resp),
                  call.desc(ang), call.ptr(dt), call.ptr(at), len(angles), n, step, off, sc)
    return _result_pair(call, resp, ang)


# ---- the enhancement used for localisation ----------------------------------------------------
_WORK_PX_MM = 0.16      # working pixel of the enhancement (box decimation to about this size)
_SCALE_MM = 0.3         # Hessian scale of the needle's bright line
_SOFT_DEG = 2.0         # soft edge of the angle prior
_SCALES = ("display", "envelope", "db")


def _factor(spacing, decimate, func):
    if decimate is None:
        return max(1, int(round(_WORK_PX_MM / min(spacing))))
    if isinstance(decimate, bool) or not isinstance(decimate, (int, np.integer)) or \
            not 1 <= decimate <= 16:
        raise fail(func, "decimate", "None or an integer factor in [1, 16]", repr(decimate))
    return int(decimate)


def _display(c, x, scale, dynamic_range_db, func):
    """The image as a display image in [0, 1] (float32) for scale 'envelope' / 'db'; display
    images (float32 [0, 1] or uint8) pass through."""
    if scale == "display":
        return x
    if x.dtype != np.float32:
        raise fail(func, "img", f"float32 data for scale={scale!r}", x.dtype)
    xp = c.xp
    if scale == "envelope":
        m = float(xp.abs(x).max())
        with np.errstate(divide="ignore"):
            db = 20.0 * xp.log10(xp.maximum(xp.abs(x) / (m if m > 0 else 1.0), 1e-30))
    else:
        db = x - float(x.max())
    return xp.clip((db + dynamic_range_db) / dynamic_range_db, 0.0, 1.0).astype(np.float32)


def _enhance(c, x, spacing, factor, intervals, scale_mm, bg=None, gain=0.0, ref_contrast=0.1):
    """Working-grid needle enhancement of display image x: (enhanced, orientation px-deg)."""
    sc = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    xd = _decimate(c, x, factor, sc)
    sigma = scale_mm / (factor * min(spacing))
    resp, orient = _ridge(c, xd, [sigma], ref.RIDGE_STRENGTH)
    bgd = None
    if bg is not None:
        bgd = _decimate(c, bg, factor, 1.0 / 255.0 if bg.dtype == np.uint8 else 1.0)
    _gate(c, resp, orient, intervals, _SOFT_DEG, xd if bg is not None else None, bgd, gain,
          ref_contrast)
    return resp, orient, xd


def needle_enhance(img, *, geometry=None, angle_range_deg=(10.0, 80.0), side=None, scale_mm=_SCALE_MM,
                   decimate=None, background=None, temporal_gain=1.0, temporal_ref=0.1,
                   scale="display", dynamic_range_db=60.0, out=None, backend=None, stream=None,
                   check_finite=True):
    """Needle enhancement: what :func:`locate_needle` votes with.

    Of the enhancements here (Frangi vesselness, ridge strength, the oriented line bank), the
    scale-normalised ridge strength ``max(0, -l2 - |l1|)`` at one scale matched to the needle's
    bright line (``scale_mm``, Hessian from Gaussian derivatives) worked best for localisation:
    it keeps the line's contrast (Frangi's vesselness saturates, so speckle ridges weigh as
    much as the needle) and it is cheap; the line integration that the oriented filter bank
    does is left to the line accumulator. It is computed on a box-decimated grid (pixels of
    about 0.16 mm; ``decimate`` sets the factor) and multiplied by the angle prior: 1 for local
    orientations inside ``angle_range_deg`` (unsigned degrees between needle and probe face,
    in mm; from the ``side`` given, or both), falling to 0 two degrees outside. So a
    near-horizontal bright layer (fascia, bone) is suppressed by its orientation.

    Temporal term: with ``background`` (a running mean of past frames of img's shape, e.g. the
    state of :func:`usfast.persistence`), the response is multiplied by
    ``1 + temporal_gain * clip((img - background) / temporal_ref, 0, 1)`` (display units): a
    needle that moves or advances over static tissue stands out.

    img: (rows, cols) or (frames, rows, cols): a display image (float32 in [0, 1] or uint8, as
    :func:`usfast.log_compress` returns), or ``scale="envelope"`` / ``"db"`` (float32) with
    ``dynamic_range_db``. Returns ``(enhanced, orientation_deg)`` float32 on the working grid
    (``ceil(rows/f), ceil(cols/f)``); orientation signed degrees in mm space.
    """
    fn = "needle_enhance"
    _side(fn, side)
    lo, hi = _angle_range(fn, angle_range_deg)
    s_mm = _num(fn, "scale_mm", scale_mm, 0, lo_open=True)
    if scale not in _SCALES:
        raise fail(fn, "scale", f"one of {_SCALES}", repr(scale))
    dr = _num(fn, "dynamic_range_db", dynamic_range_db, 0, lo_open=True)
    gain = _num(fn, "temporal_gain", temporal_gain, 0)
    tref = _num(fn, "temporal_ref", temporal_ref, 0, lo_open=True)
    call = Call(fn, img, backend, stream)
    x = call.input("img", img, _IMG, check_finite=check_finite)
    g = _geometry(fn, geometry, x.shape)
    f = _factor(g.spacing_mm, decimate, fn)
    if s_mm / (f * min(g.spacing_mm)) > 64:
        raise fail(fn, "scale_mm", "a scale of at most 64 working pixels", s_mm)
    bg = None
    if background is not None:
        bg = call.input("background", background, _IMG, check_finite=check_finite)
        if bg.shape != x.shape:
            raise fail(fn, "background", f"shape {x.shape}", bg.shape)
        bg = _display(call, bg, scale, dr, fn)
    xd = _display(call, x, scale, dr, fn)
    intervals = _intervals_px(lo, hi, side, g.spacing_mm)
    resp, orient, _ = _enhance(call, xd, g.spacing_mm, f, intervals, s_mm, bg, gain, tref)
    if abs(g.spacing_mm[0] - g.spacing_mm[1]) > 1e-12 * max(g.spacing_mm):
        orient[...] = call.xp.asarray(_mm_orientation(
            orient if call.xp is np else call.xp.asnumpy(orient), g.spacing_mm), np.float32)
    if out is not None:
        o1, o2 = _pair_out(call, out, resp.shape)
        o1[...], o2[...] = resp, orient
        resp, orient = o1, o2
    return _result_pair(call, resp, orient)


# ---- localisation -------------------------------------------------------------------------------
_VOTE_QUANTILE = 0.97   # voters: the strongest 3 % of the enhanced image
_TOL_DEG = 5.0          # orientation agreement half-width of a vote
_MAX_CANDIDATES = 8     # Hough peaks examined: at most this many, those above
_PEAK_FLOOR = 0.3       # this fraction of the highest, and at most
_PER_ANGLE = 2          # this many of them within
_PER_ANGLE_DEG = 6      # this many degrees (bins) of one another's angle
_FIRST_CANDIDATES = 4   # beyond this many of the highest, a line's detection statistic must clear
_EXTRA_SNR = 4.0        # the threshold by this much more (one more chance for a noise line)
_BAND_MM = 1.0          # half-width of the band searched across the accumulator's line
_BLOCK_MM = 1.0         # blocks along the axis for the cross-profile peaks
_LINE_MM = 3.0          # the shaft's line in the tip's change point starts this far before
_BG_MM = 2.0            # ... and the background is read from this far past the bright stretch
_CORE_PX = 1            # the core of the refined band: +-1 pixel
_SIDE_PX = (4, 7)       # side bands (pixels off the axis; pushed out for a wide line)
_WIDE_MIN_PX = 5        # a shaft this wide (half-maximum half-width) pushes the side bands out
_CORR_MM = 0.3          # speckle correlation length along the axis (samples per independent one)
_MIN_LEN_MM = 3.0       # shortest shaft reported
_MAX_SAGITTA_MM = 0.4   # straightness: sagitta of a parabola through the shaft
_SHADOW_Z = 3.0         # significance of the shadow's end (see _shadow_tip)
_SHADOW_STANDOUT = 2.0  # ... and its robust z among the profile's other steps
_FAINT_Z = 1.5          # significance of the faint stretch before it (see _faint_between)
_BLUR_MAX_MM = 0.3      # widest speckle correlation length that shifts the tip (_blur_shift)
#: detection statistic at which confidence is 0.5: set on needle-free sequences of usfast.sim
#: for about 1 % of their frames reporting a needle (1.2 % on seeds 0-99 where it was set, 1.0 %
#: on the test's seeds 2000-2099; with the accumulator's lines examined as now, 1.0 % on both;
#: see tests/test_needle_accuracy.py)
DETECTION_SNR = 5.0


@functools.lru_cache(maxsize=16)
def _grid(shape):
    return _HoughGrid(shape, dtheta_deg=1.0, drho=1.0, tol_deg=_TOL_DEG)


def _roi(func, roi, geometry, shape):
    """ROI (x_min, x_max, z_min, z_max) in mm -> pixel box (c0, c1, r0, r1) inclusive bounds."""
    R, C = shape
    if roi is None:
        return (0.0, C - 1.0, 0.0, R - 1.0)
    try:
        x0, x1, z0, z1 = (float(v) for v in roi)
    except (TypeError, ValueError):
        raise fail(func, "roi", "(x_min, x_max, z_min, z_max) in mm", repr(roi)) from None
    if not all(math.isfinite(v) for v in (x0, x1, z0, z1)) or x1 <= x0 or z1 <= z0:
        raise fail(func, "roi", "finite (x_min, x_max, z_min, z_max) with x_min < x_max and "
                   "z_min < z_max", roi)
    (c0, r0), (c1, r1) = geometry.mm_to_px([[x0, z0], [x1, z1]])
    c0, c1 = sorted((c0, c1))
    r0, r1 = sorted((r0, r1))
    c0, c1, r0, r1 = max(c0, 0.0), min(c1, C - 1.0), max(r0, 0.0), min(r1, R - 1.0)
    if c1 - c0 < 1.0 or r1 - r0 < 1.0:
        ex = geometry.extent_mm(shape)
        raise fail(func, "roi", f"a region overlapping the image (x {ex[0]:.3g}..{ex[1]:.3g}, "
                   f"z {ex[2]:.3g}..{ex[3]:.3g} mm) by at least a pixel", roi)
    return (c0, c1, r0, r1)


def _peaks(acc, prior, n, floor):
    """Up to n local maxima of acc over allowed bins (non-maximum suppression of +-4 degrees,
    +-6 offsets), those above floor times the highest, refined to sub-bin by parabolas. At most
    _PER_ANGLE of them lie within +-_PER_ANGLE_DEG of one another's angle: layered tissue
    (fascia, muscle sheets) offers many parallel lines, which would otherwise take every
    place and leave the needle's line unexamined."""
    a = np.where(prior[:, None] > 0, acc, 0.0)
    A, NR = a.shape
    out = []
    top = None
    near = np.zeros(A, dtype=np.int64)   # peaks taken within _PER_ANGLE_DEG of each angle
    ja = np.arange(-_PER_ANGLE_DEG, _PER_ANGLE_DEG + 1)
    for _ in range(n):
        i = int(np.argmax(a))
        ia, ir = divmod(i, NR)
        v = float(a[ia, ir])
        if top is None:
            top = v
        if not v > 0 or v < floor * top:
            break

        def vertex(y0, y1, y2):
            d = y0 - 2 * y1 + y2
            return float(np.clip(0.5 * (y0 - y2) / d, -0.5, 0.5)) if d < 0 else 0.0

        da = vertex(acc[(ia - 1) % A, ir], acc[ia, ir], acc[(ia + 1) % A, ir])
        dr = vertex(acc[ia, max(ir - 1, 0)], acc[ia, ir], acc[ia, min(ir + 1, NR - 1)])
        out.append((ia + da, ir + dr, v))
        for j in range(-4, 5):
            a[(ia + j) % A, max(ir - 6, 0):ir + 7] = 0.0
        near[(ia + ja) % A] += 1
        a[near >= _PER_ANGLE] = 0.0
    return out


def _clip_line(p, u, box):
    """Range of t with p + t u inside box = (x0, x1, z0, z1), or None."""
    lo, hi = -math.inf, math.inf
    for k, (a, b) in enumerate(((box[0], box[1]), (box[2], box[3]))):
        if abs(u[k]) < 1e-12:
            if not a <= p[k] <= b:
                return None
            continue
        t0, t1 = (a - p[k]) / u[k], (b - p[k]) / u[k]
        lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
    return (lo, hi) if hi > lo else None


def _med(a):
    """Median of a 1-D array (np.median without its generic overhead: this runs ~40 times
    per frame on short profiles)."""
    n = len(a)
    if n == 0:
        return 0.0
    h = n // 2
    p = np.partition(a, (h - 1, h) if n % 2 == 0 and n > 1 else h)
    return float(p[h]) if n % 2 else 0.5 * float(p[h - 1] + p[h])


def _bright_segment(c):
    """[k0, k1) of the bright stretch of profile c: the run maximising the number of samples
    above a level m minus those below (a sign test, so one very bright stretch, such as the
    shaft crossing a dark vessel, does not outweigh the rest of the shaft), with m midway
    between the run's and the rest's medians (iterated from the 10/90 % quantiles' midpoint)."""
    n = len(c)
    i10, i90 = int(0.1 * (n - 1)), int(0.9 * (n - 1))
    q = np.partition(c, (i10, i90))
    q10, q90 = float(q[i10]), float(q[i90])
    m = 0.5 * (q10 + q90)
    k0, k1 = 0, len(c)
    for _ in range(4):
        S = np.concatenate(([0.0], np.cumsum(np.sign(c - m))))
        run = S - np.minimum.accumulate(S)
        k1 = int(np.argmax(run))
        k0 = int(np.argmin(S[:k1 + 1]))
        if k1 - k0 < 1 or k1 - k0 >= len(c):
            break
        m2 = 0.5 * (_med(c[k0:k1]) + _med(np.concatenate((c[:k0], c[k1:]))))
        if abs(m2 - m) < 1e-7:
            break
        m = m2
    return k0, k1


def _outside_fov(c, xd, resp, sigma):
    """Mask of the working grid near pixels outside the field of view (None if there are none),
    where the response is zeroed.

    A scan-converted sector (usfast.ScanConverter) is 0 outside the field of view; its straight
    edges are one-sided ridges at needle-like angles. Outside is where a row or a column starts
    or ends with a run of exact zeros (an anechoic vessel inside the image is not outside), grown
    by the Hessian's reach; nothing is outside when zeros are common inside too."""
    xp = c.xp
    nz = xd > 0
    if bool(nz.all()):
        return None
    R, C = nz.shape
    out = xp.zeros(nz.shape, bool)
    for ax, n in ((1, C), (0, R)):
        any_ = nz.any(axis=ax)
        first = xp.argmax(nz, axis=ax)
        last = n - 1 - xp.argmax(xp.flip(nz, axis=ax), axis=ax)
        idx = xp.arange(n)
        if ax == 1:
            o = (idx[None, :] < first[:, None]) | (idx[None, :] > last[:, None]) | ~any_[:, None]
        else:
            o = (idx[:, None] < first[None, :]) | (idx[:, None] > last[None, :]) | ~any_[None, :]
        out |= o
    if not bool(out.any()):
        return None
    # an image whose tissue is black (below the display range) is not a sector: zeros are
    # everywhere there, not only outside, and what is left "inside" is a sliver (a field of
    # view covers at least half of the frame that holds it)
    inside = ~out
    n_in = float(inside.sum())
    if n_in < 0.3 * inside.size or float((inside & ~nz).sum()) > 0.1 * max(n_in, 1.0):
        return None
    m = out.copy()
    for _ in range(int(math.ceil(3.0 * sigma)) + 1):
        m[1:] |= out[:-1]
        m[:-1] |= out[1:]
        m[:, 1:] |= out[:, :-1]
        m[:, :-1] |= out[:, 1:]
        out = m.copy()
    resp[m] = 0.0
    return m


def _on_grid(m, f, e0, u, k):
    """Values of the working-grid (decimation f) array m at the full-resolution points
    e0 + k u."""
    pts = e0[None, :] + np.asarray(k, np.float64)[:, None] * u[None, :]
    cw = np.clip(np.rint((pts[:, 0] - (f - 1) / 2) / f).astype(int), 0, m.shape[1] - 1)
    rw = np.clip(np.rint((pts[:, 1] - (f - 1) / 2) / f).astype(int), 0, m.shape[0] - 1)
    return m[rw, cw]


_NORMAL = statistics.NormalDist()
_HALF_HEIGHT = math.sqrt(2.0 * math.log(2.0))  # a Gaussian's half-height half-width / sigma


def _speckle_width(parts, max_lag):
    """The speckle's correlation length along the rows (pixels) of the 2-D display-image
    samples in ``parts`` (columns are independent lines): the lag at which their
    autocorrelation falls to one half, over sqrt(2 ln 2) (the sigma of a Gaussian with that
    half height). On log-compressed, fully developed speckle made by a Gaussian PSF of
    amplitude width sigma it reads about 0.65 sigma (tests/test_needle_kernels.py). None when
    there is no speckle to read (no part with more than 2 max_lag clean rows) or when it does
    not decorrelate within max_lag (smoothed away)."""
    num = np.zeros(max_lag + 1)
    for P in parts:
        P = P[(P > 0).all(axis=1)]          # outside a sector, or black: no speckle there
        n = len(P)
        if n <= 2 * max_lag:
            continue
        P = P - P.mean(axis=0)
        for k in range(max_lag + 1):
            num[k] += float((P[k:] * P[:n - k]).sum()) / (n - k)
    if num[0] <= 0.0:
        return None
    r = num / num[0]
    for k in range(1, max_lag + 1):
        if r[k] < 0.5:
            lag = k - 1 + (r[k - 1] - 0.5) / (r[k - 1] - r[k])
            return lag / _HALF_HEIGHT
    return None


def _blur_shift(b, s1, px, contrast_db, side_px):
    """How far (pixels) past the physical tip the change point of a blurred end lies.

    The point-spread function blurs the shaft's end into a step Phi((t0 - s) / sigma) in
    linear amplitude (t0 the tip). The least-squares change point on log-compressed data
    (_drop) falls near the middle in decibels between the shaft's level A and the background
    B, where B + (A - B) Phi = sqrt(A B): w z(R) past t0, with R = A / B and
    z(R) = -Phi^-1((sqrt(R) - 1) / (R - 1)) (0.4 at 10 dB, 1.0 at 30 dB). The width w is read
    on the same image: the speckle's correlation length along the axis (_speckle_width) in the
    side bands and in the band past the tip, so whatever blurred the image (pulse, beam,
    scan conversion) counts. It reads about 0.65 of the PSF's width; with it the shift takes
    out the outward bias of tips that keep their brightness to the end, on both simulators
    (benchmarks/needle_accuracy.md: mean along-axis error -0.02 mm on the Cartesian seeds
    40-99, was +0.08; +0.06 mm through the RF chain, was +0.16). An image whose speckle was
    smoothed away by a speckle filter (correlated beyond a 0.3 mm width) gives no shift."""
    if not contrast_db > 0.0:
        return 0.0
    T, W = b.shape
    parts = [b[:, :side_px], b[:, W - side_px:]]
    past = b[min(s1 + int(round(1.0 / px)), T):]
    if len(past):
        parts.append(past)
    w = _speckle_width(parts, max(4, int(math.ceil(_BLUR_MAX_MM * _HALF_HEIGHT / px))))
    if w is None:
        return 0.0
    R = 10.0 ** (min(contrast_db, 40.0) / 20.0)
    q = (math.sqrt(R) - 1.0) / (R - 1.0) if R > 1.0 + 1e-9 else 0.5
    return w * -_NORMAL.inv_cdf(q)


def _drop(c, k, lo, hi, a0, bg):
    """Change point of the tip near k, by least squares: the profile c is a straight line over
    [a0, t) (the shaft, whether it keeps its brightness or fades towards its end) and the
    background level bg from t to the end of the search; t in [k - lo, k + hi] minimises the
    sum of squared residuals of both. A two-window test (the mean before minus the mean after)
    would stop short on a fading tip, where the largest drop lies inside the fade; the line
    takes up the fade, and the tip is where the shaft meets the background."""
    n = len(c)
    t = np.arange(max(k - lo, a0 + 2), min(k + hi, n - 1) + 1)
    if len(t) == 0:
        return k, float(c[max(k - 1, 0)])
    i = np.arange(n, dtype=np.float64)

    def cum(v):
        return np.concatenate(([0.0], np.cumsum(v)))

    # sums of i and of i^2 over [0, k), in closed form
    def s1(q):
        return q * (q - 1) / 2.0

    def s2(q):
        return (q - 1) * q * (2 * q - 1) / 6.0

    Y, XY, YY = cum(c), cum(i * c), cum(c * c)
    R = cum((c - bg) ** 2)
    m = (t - a0).astype(np.float64)
    tf = t.astype(np.float64)
    sx, sxx = s1(tf) - s1(a0), s2(tf) - s2(a0)
    sy, sxy, syy = Y[t] - Y[a0], XY[t] - XY[a0], YY[t] - YY[a0]
    vx = sxx - sx * sx / m
    cxy = sxy - sx * sy / m
    line = (syy - sy * sy / m) - cxy * cxy / np.maximum(vx, 1e-12)
    e = min(k + hi + 1, n)
    back = R[e] - R[np.minimum(t, e)]
    j = int(np.argmin(line + back))
    level = sy[j] / m[j] + cxy[j] / max(vx[j], 1e-12) * (t[j] - sx[j] / m[j])
    return int(t[j]), float(level)


def _line_fit(t, y, w):
    """Weighted least-squares line y = c0 + c1 t (closed form, about the weighted mean of t);
    None when the points do not determine a slope."""
    W = float(w.sum())
    tm = float((w * t).sum()) / W
    ym = float((w * y).sum()) / W
    dt = t - tm
    stt = float((w * dt * dt).sum())
    if not stt > 1e-9 * W * (1.0 + tm * tm):
        return None
    c1 = float((w * dt * (y - ym)).sum()) / stt
    return ym - c1 * tm, c1


class _Frame:
    """What the candidates of one frame share."""

    def __init__(self, c, img, geometry, roi_px, prior_deg, work):
        self.c, self.img, self.g = c, img, geometry
        self.R, self.C = img.shape
        self.px = min(geometry.spacing_mm)
        self.box = (0.0, self.C - 1.0, 0.0, self.R - 1.0)
        self.roi = roi_px
        self.prior_deg = prior_deg
        self.scale = 1.0 / 255.0 if img.dtype == np.uint8 else 1.0
        self.work = work

    def band(self, p, u, t0, t1, half_px):
        T = int(math.floor(t1 - t0)) + 1
        W = 2 * int(math.ceil(half_px)) + 1
        x0 = p + t0 * u
        b = _band(self.c, self.img, np.array([[x0[0], x0[1], u[0], u[1]]]), T, W, 1.0, 1.0,
                  self.scale)[0]
        if self.c.xp is not np:
            b = self.c.xp.asnumpy(b)
        return np.asarray(b, dtype=np.float64), x0


def _angle_mm(u, spacing):
    dz, dx = spacing
    um = np.array([u[0] * dx, u[1] * dz])
    um /= np.linalg.norm(um)
    return math.degrees(math.atan2(abs(um[1]), abs(um[0]))), um


def _evaluate(fr, p, u):
    """Refine one candidate axis (point p, unit direction u into the tissue, full-resolution
    pixels) and measure it. Returns a dict or None."""
    px = fr.px
    tr = _clip_line(p, u, fr.box)
    if tr is None or tr[1] - tr[0] < 3.0 / px:
        return None
    # 1. across: the peak of the cross profile in 1 mm blocks -> robust weighted line fit
    b, x0 = fr.band(p, u, tr[0], tr[1], _BAND_MM / px)
    T, W = b.shape
    L = max(int(round(_BLOCK_MM / px)), 2)
    nb = T // L
    if nb < 3:
        return None
    B = b[:nb * L].reshape(nb, L, W).mean(axis=1)
    pk = np.argmax(B, axis=1)
    rows = np.arange(nb)
    y1 = B[rows, pk]
    y0 = B[rows, np.maximum(pk - 1, 0)]
    y2 = B[rows, np.minimum(pk + 1, W - 1)]
    d = y0 - 2 * y1 + y2
    off = np.where(d < 0, 0.5 * (y0 - y2) / np.where(d < 0, d, -1.0), 0.0)
    wpos = pk + np.clip(off, -0.5, 0.5) - (W - 1) / 2
    con = y1 - np.median(B, axis=1)
    k0, k1 = _bright_segment(con)
    if k1 - k0 < 2:
        return None
    tt = (np.arange(k0, k1) + 0.5) * L
    yy = wpos[k0:k1]
    ww = np.maximum(con[k0:k1], 0.0) ** 2 + 1e-12
    keep = np.ones(len(tt), bool)
    coef = None
    for _ in range(3):
        if keep.sum() < 2:
            return None
        coef = _line_fit(tt[keep], yy[keep], ww[keep])
        if coef is None:
            return None
        res = yy - (coef[0] + coef[1] * tt)
        s = 1.4826 * _med(np.abs(res[keep])) + 0.3
        keep = np.abs(res) < 3.0 * s
    if abs(math.degrees(math.atan(coef[1]))) > _TOL_DEG:
        return None
    # straightness: the sagitta of the kept points' thirds (medians, robust to a layer that
    # crosses the shaft)
    sagitta = 0.0
    if keep.sum() >= 6:
        res_k = (yy - (coef[0] + coef[1] * tt))[keep]
        thirds = np.array_split(res_k, 3)
        sagitta = abs(_med(thirds[1]) - 0.5 * (_med(thirds[0]) + _med(thirds[2]))) * px
    n = np.array([-u[1], u[0]])
    q0 = x0 + coef[0] * n
    u2 = u + coef[1] * n
    u2 /= np.linalg.norm(u2)
    angle, um = _angle_mm(u2, fr.g.spacing_mm)
    if not fr.prior_deg[0] - 1e-9 <= angle <= fr.prior_deg[1] + 1e-9:
        return None
    # 2. along: the refined axis, its core and the side away from the comet tail and shadow
    tr2 = _clip_line(q0, u2, fr.box)
    if tr2 is None:
        return None
    # side bands beyond the line's own width (a wide point-spread function widens it): the
    # half-maximum half-width of the shaft's mean cross profile, aligned on the block peaks
    a, z = _SIDE_PX
    shift = np.rint(wpos[k0:k1]).astype(int)
    rows_ok = np.abs(shift) <= (W - 1) // 2 - 1
    if rows_ok.sum() >= 2:
        Bk = B[k0:k1][rows_ok]
        idx = np.clip(np.arange(W)[None, :] + shift[rows_ok][:, None], 0, W - 1)
        cp = np.take_along_axis(Bk, idx, axis=1).mean(axis=0)
        c_mid = (W - 1) // 2
        half = 0.5 * (cp[c_mid] + _med(cp))
        hw, hw_max = 1, min(c_mid, int(round(0.5 / px)))
        while hw < hw_max and (cp[c_mid - hw] > half or cp[c_mid + hw] > half):
            hw += 1
        if hw >= _WIDE_MIN_PX:
            a = max(a, int(math.ceil(1.5 * hw)))
            z = max(z, a + 3)
    b2, e0 = fr.band(q0, u2, tr2[0], tr2[1], z)
    fov_edge, f = fr.work
    mid = (b2.shape[1] - 1) // 2
    prof = b2[:, mid - _CORE_PX:mid + _CORE_PX + 1].mean(axis=1)
    upper = b2[:, mid + a:mid + z + 1] if u2[0] > 0 else b2[:, mid - z:mid - a + 1]
    lower = b2[:, mid - z:mid - a + 1] if u2[0] > 0 else b2[:, mid + a:mid + z + 1]
    up, lw = upper.mean(axis=1), lower.mean(axis=1)
    r = prof - up
    rl = prof - lw
    # the line's contrast over both sides: tissue brightness changes (a vessel, a shadow,
    # a layer crossing the band) cancel, the needle's own brightness remains
    sides = 0.5 * (up + lw)
    rb = prof - sides
    s0, s1 = _bright_segment(rb)
    if s1 - s0 < 2:
        return None
    # a shaft along the edge of the field of view (a scan-converted sector) is that edge
    if fov_edge is not None and np.mean(_on_grid(fov_edge, f, e0, u2, np.arange(s0, s1, f))) > 0.25:
        return None
    lo, hi = int(round(4.0 / px)), int(round(2.0 / px))
    # the change point is read on the axis itself: the centre sample's contrast over both sides
    # (the +-1 pixel core, which the detection statistic below uses for its lower noise, placed
    # the tip worse: p95 1.21 -> 0.91 mm on seeds 40-99, benchmarks/needle_accuracy.md); the
    # shaft's line starts no earlier than the shaft
    rc = b2[:, mid] - sides
    far = rc[min(s1 + int(round(_BG_MM / px)), len(rc)):]
    bg = _med(far) if len(far) >= int(round(1.0 / px)) else _med(rc[s1:])
    s1, level = _drop(rc, s1, lo, hi, max(s1 - lo - int(round(_LINE_MM / px)), s0, 0), bg)
    # 3. detection statistic: the shaft against the rest of its line and against its side,
    #    in robust noise units times sqrt(effective samples)
    gap = int(round(0.5 / px))
    out = np.ones(len(prof), bool)
    if fov_edge is not None:
        # samples outside a scan-converted sector (exact zeros) or on its rim carry no noise
        # to measure against: left out
        out &= ~_on_grid(fov_edge, f, e0, u2, np.arange(len(prof)))
    out[max(s0 - gap, 0):min(s1 + gap, len(prof))] = False
    n_seg = max(min(s1 - s0, 10.0 / px), 1.0)
    tau = max(1.0, _CORR_MM / px)

    def snr(v):
        if out.sum() < 10 or s1 <= s0:
            return 0.0
        o = v[out]
        mo = _med(o)
        so = 1.4826 * _med(np.abs(o - mo)) + 1e-6
        return float((_med(v[s0:s1]) - mo) / so * math.sqrt(n_seg / tau))

    # band, tip_contrast (display units) and side_px: the winner's blur shift (_blur_shift)
    return dict(entry=e0, u=u2, um=um, angle=angle, tip=e0 + s1 * u2, start=e0 + s0 * u2,
                length_mm=(s1 - s0) * px, sagitta_mm=sagitta,
                snr_side=snr(r), snr_line=snr(prof), snr_lower=snr(rl), prof=rb, k=(s0, s1),
                band=b2, tip_contrast=level - bg, side_px=z - a + 1)


def _shadow_tip(fr, tip, u, um):
    """Where the needle's acoustic shadow ends, as a point on the axis, or None.

    A needle shadows the tissue below it along the beams (vertical here: a linear probe). Its
    tip ends the shadow, even where the shaft's own echo has faded into the speckle. Below the
    shaft's visible end (1.5 to 6 mm deeper), the column means of the image step from dark
    (shadow) to bright (tissue) at the tip's lateral position; the step is found as the
    position maximising the difference of the means of 1 mm windows on either side, and kept
    when it is significant (z > _SHADOW_Z on the noise of the column means, and a robust z >
    _SHADOW_STANDOUT among the steps at every other position of the window), lies 0.3 to 4 mm
    beyond the visible end along the axis, and the shadow is seen along the shaft too."""
    dz, dx = fr.g.spacing_mm
    sx = 1.0 if u[0] > 0 else -1.0
    xt, zt = float(tip[0]), float(tip[1])
    r0, r1 = int(round(zt + 1.5 / dz)), int(round(zt + 6.0 / dz))
    half = int(round(5.0 / dx))
    c0, c1 = int(round(xt)) - half, int(round(xt)) + half
    if r0 >= fr.R or r1 - r0 < 5:
        return None
    r1 = min(r1, fr.R)
    c0, c1 = max(c0, 0), min(c1, fr.C)
    if c1 - c0 < 10:
        return None
    blk = fr.img[r0:r1, c0:c1]
    if fr.c.xp is not np:
        blk = fr.c.xp.asnumpy(blk)
    col = np.asarray(blk, np.float64).mean(axis=0) * fr.scale
    if sx < 0:
        col = col[::-1]
    w = max(int(round(1.0 / dx)), 3)
    n = len(col)
    if n < 2 * w + 2:
        return None
    S = np.concatenate(([0.0], np.cumsum(col)))
    t = np.arange(w, n - w + 1)
    D = (S[t + w] - S[t]) / w - (S[t] - S[t - w]) / w  # dark before (shadow), bright after
    i = int(np.argmax(D))
    d = np.diff(col)
    noise = 1.4826 * _med(np.abs(d - _med(d))) / math.sqrt(2) + 1e-9
    if D[i] / (noise * math.sqrt(2.0 / w)) < _SHADOW_Z:
        return None
    # ... and it stands out among the other steps of the same profile (a gentle ramp in a
    # wavy, smooth profile, as a speckle-reduced image has, passes the test above)
    mD = _med(D)
    if (D[i] - mD) / (1.4826 * _med(np.abs(D - mD)) + 1e-12) < _SHADOW_STANDOUT:
        return None
    edge = t[i] - 0.5
    x_edge = (c0 + edge) if sx > 0 else (c1 - 1 - edge)
    # along the axis, from the visible end to the edge's column
    ahead_px = (x_edge - xt) / u[0]
    ahead_mm = ahead_px * math.hypot(u[0] * dx, u[1] * dz)
    if not 0.3 <= ahead_mm <= 4.0:
        return None
    return np.asarray(tip, np.float64) + ahead_px * np.asarray(u, np.float64)


def _faint_between(cand, new_tip, px):
    """Whether the shaft's contrast profile stays above its background between the visible end
    and new_tip (a faded, not a missing, end of the shaft): the mean over that stretch against
    the median and MAD of the profile beyond it, z > _FAINT_Z."""
    rb = cand["prof"]
    s1 = cand["k"][1]
    a = int(round(float(np.dot(np.asarray(new_tip) - cand["entry"], cand["u"]))))
    b0 = a + int(round(0.5 / px))
    far = rb[b0:]
    if a - s1 < 2 or len(far) < int(round(2.0 / px)):
        return False
    mb = _med(far)
    sb = 1.4826 * _med(np.abs(far - mb)) + 1e-9
    n_eff = max((a - s1) * px / _CORR_MM, 1.0)
    return (float(np.mean(rb[s1:a])) - mb) / sb * math.sqrt(n_eff) > _FAINT_Z


def locate_needle(img, *, geometry=None, angle_range_deg=None, side=None, roi=None, scale="display",
                  dynamic_range_db=60.0, backend=None, stream=None, check_finite=True):
    """Find the needle in one frame: axis, tip, entry point, angle and confidence.

    img: a scan-converted frame ``(rows, cols)``: by default a display image as
        :func:`usfast.log_compress` returns it (float32 in [0, 1], or uint8); ``scale="envelope"``
        (linear amplitude) or ``"db"`` (decibels) with ``dynamic_range_db`` say otherwise.
        The display range, ``dynamic_range_db``, also converts the tip's contrast to decibels
        (the tip's blur correction; a display made at 45-67 dB read as 60 dB moves the tip by
        0.01 mm at the median and 0.05 mm at most on seeds 40-99).
    geometry: its :class:`usfast.ImageGeometry` (spacing and origin in mm, axis order (z, x)).
    angle_range_deg: prior (lo, hi), 0 < lo <= hi < 90, on the angle between needle and probe
        face (mm space); default (10, 80): a near-horizontal layer is not a needle.
    side: "left" / "right" (where the needle comes from: "left" points right and down) or None.
    roi: (x_min, x_max, z_min, z_max) in mm: only structure inside votes, and the tip must lie
        inside.
    Returns a :class:`usfast.NeedleEstimate` with points (x, z) in pixels and mm. Never NaN;
    ``found=False`` when no candidate passes (confidence then says how close one came).

    Method:
    1. Enhancement (:func:`needle_enhance`): ridge strength on a ~0.16 mm box-decimated grid,
       gated by the angle prior. Near the edge of the field of view of a scan-converted sector
       (exact zeros reaching the image border) the response is zeroed.
    2. Line accumulator in the core (kernels/hough.cuh): the strongest 3 % of the enhanced
       pixels vote for (theta, rho) at 1 degree x 1 working pixel, each within 5 degrees of its
       own orientation (weight: response x agreement), only at angles the prior allows.
    3. For the highest peaks (up to 8, above 0.3 of the highest, at most two of them within 6
       degrees of one another: parallel layers do not take every place): at full resolution,
       a band along the line is sampled (kernels/linefilter.cuh); the peak of the cross
       profile in 1 mm blocks along the bright stretch gives points that a robust (reweighted,
       3-sigma trimmed) weighted least-squares line fit turns into the axis. The angle is
       measured in mm.
    4. Tip: along the refined axis, the profile of the line's contrast over both its sides
       (tissue brightness changes cancel); its bright stretch is the run with most samples above
       a level midway between shaft and background (a sign test, iterated); then the change
       point where the shaft meets the background, by least squares on the contrast of the
       axis's centre sample: a straight line over the shaft (it takes up a tip that fades
       towards its end) from 7 mm before the stretch's end (not before the stretch's start),
       and the background level (the profile's median from 2 mm past it) after; searched from
       4 mm before to 2 mm after the stretch's end. That change point of the blurred end lies
       past the physical tip (near the middle in decibels between shaft and background, where
       the linear amplitude is well below half the shaft's): the tip moves back by the
       speckle's correlation length along the axis (beside and past the needle) times a
       factor of the tip's contrast (0.4 at 10 dB, 1.0 at 30 dB; ``extra["tip_blur_mm"]``;
       none when a speckle filter has smoothed the speckle beyond 0.3 mm). When the
       needle's acoustic shadow (below it, along vertical beams) ends significantly further on
       and a faint continuation of the shaft is seen up to there, the tip moves to where the
       shadow ends instead (a tip that fades into the speckle).
    5. Decision: the shaft must be straight (sagitta <= 0.4 mm), at least 3 mm long, inside
       the angle prior and the ROI; its detection statistic is the smallest of three robust
       SNRs (the shaft against the rest of its line, and against the bands on either side)
       times the square root of its effective sample count (0.3 mm of speckle correlation),
       less 4 for a line beyond the accumulator's four highest (each line examined is one more
       chance for a noise line to pass).
       ``confidence = 1 / (1 + exp(-(snr - DETECTION_SNR)))``; ``found`` when it is at least
       0.5. DETECTION_SNR is set on needle-free simulated sequences (fascia, vessels, speckle)
       for about 1 % false detections (benchmarks/needle_accuracy.md).
    ``extra`` carries the statistics (snr, snr_side, snr_lower, snr_line, votes, sagitta_mm,
    shaft_length_mm, valid) and, when found, ``start_px``/``start_mm`` (the visible shaft's
    proximal end) and ``axis_px`` (entry point and unit direction in pixels).
    """
    fn = "locate_needle"
    if scale not in _SCALES:
        raise fail(fn, "scale", f"one of {_SCALES}", repr(scale))
    dr = _num(fn, "dynamic_range_db", dynamic_range_db, 0, lo_open=True)
    _side(fn, side)
    lo, hi = _angle_range(fn, angle_range_deg)
    call = Call(fn, img, backend, stream)
    # NaN and Inf survive the box decimation, so they are looked for on the decimated image
    # (a quarter of the work); the full check then names them
    x = call.input("img", img, _IMG, ndim=(2,), check_finite=False)
    g = _geometry(fn, geometry, x.shape)
    roi_px = _roi(fn, roi, g, x.shape)
    disp = _display(call, x, scale, dr, fn)
    f = _factor(g.spacing_mm, None, fn)
    intervals = _intervals_px(lo, hi, side, g.spacing_mm)
    resp, orient, xd = _enhance(call, disp, g.spacing_mm, f, intervals, _SCALE_MM)
    if check_finite and x.dtype != np.uint8 and not bool(call.xp.isfinite(xd).all()):
        _arrays.check_input(fn, "img", x, _IMG, ndim=(2,), check_finite=True)
    fov_edge = _outside_fov(call, xd, resp, _SCALE_MM / (f * min(g.spacing_mm)))
    RW, CW = resp.shape
    grid = _grid((RW, CW))
    th = grid.theta
    (l0, h0), (l1, h1) = intervals
    prior = (((th >= l0) & (th <= h0)) | ((th >= l1) & (th <= h1))).astype(np.float32)
    # voters: a data-driven threshold (the upper quantile of a subsample)
    sub = resp[::2, ::2].ravel()
    k = int(_VOTE_QUANTILE * (sub.size - 1))
    thr = float(call.xp.partition(sub, k)[k]) if sub.size else 0.0
    c0, c1, r0, r1 = roi_px
    vbox = (int(math.floor((r0 - (f - 1) / 2) / f)), int(math.ceil((r1 - (f - 1) / 2) / f)) + 1,
            int(math.floor((c0 - (f - 1) / 2) / f)), int(math.ceil((c1 - (f - 1) / 2) / f)) + 1)
    acc = _hough(call, resp, orient, grid, prior, thr, vbox)
    if call.xp is not np:
        acc = call.xp.asnumpy(acc)
    if fov_edge is not None and call.xp is not np:
        fov_edge = call.xp.asnumpy(fov_edge)
    fr = _Frame(call, disp, g, roi_px, (lo, hi), (fov_edge, f))
    best = None
    peaks = _peaks(np.asarray(acc, np.float64), prior, _MAX_CANDIDATES, _PEAK_FLOOR)
    for rank, (ia, ir, votes) in enumerate(peaks):
        if best is not None and best["valid"] and best["snr"] >= 2.0 * DETECTION_SNR:
            break  # a clear needle already: weaker peaks cannot win
        t = math.radians(grid.theta0 + ia * grid.dtheta)
        rho = grid.rho0 + ir * grid.drho
        u = np.array([math.cos(t), math.sin(t)])
        pw = np.array([(CW - 1) / 2.0, (RW - 1) / 2.0]) + rho * np.array([-u[1], u[0]])
        p = f * pw + (f - 1) / 2.0
        if u[1] < 0:
            u = -u
        cand = _evaluate(fr, p, u)
        if cand is None:
            continue
        tip = cand["tip"]
        cand["votes"] = votes
        cand["snr"] = min(cand["snr_side"], cand["snr_lower"], cand["snr_line"])
        if rank >= _FIRST_CANDIDATES:
            cand["snr"] -= _EXTRA_SNR
        cand["valid"] = (cand["length_mm"] >= _MIN_LEN_MM and cand["sagitta_mm"] <= _MAX_SAGITTA_MM
                         and c0 - 1 <= tip[0] <= c1 + 1 and r0 - 1 <= tip[1] <= r1 + 1)
        if best is None or (cand["valid"], cand["snr"]) > (best["valid"], best["snr"]):
            best = cand
    if best is None:
        return NeedleEstimate(found=False, confidence=0.0, extra={"candidates": 0})
    if _SHADOW_Z > 0:
        st = _shadow_tip(fr, best["tip"], best["u"], best["um"])
        if st is not None and _faint_between(best, st, fr.px):
            best["tip_shaft"] = best["tip"]
            best["tip"] = st
    if "tip_shaft" not in best:
        # the change point of a blurred end lies past the tip (_blur_shift)
        best["blur"] = _blur_shift(best["band"], best["k"][1], fr.px, best["tip_contrast"] * dr,
                                   best["side_px"])
        best["tip"] = best["tip"] - best["blur"] * best["u"]
    return _estimate(best, g)


def _estimate(b, g):
    z = max(min(b["snr"] - DETECTION_SNR, 50.0), -50.0)
    conf = 1.0 / (1.0 + math.exp(-z))
    found = bool(b["valid"] and conf >= 0.5)
    if not b["valid"]:
        conf = min(conf, 0.49)
    extra = {"snr": b["snr"], "snr_side": b["snr_side"], "snr_line": b["snr_line"],
             "snr_lower": b["snr_lower"],
             "votes": b["votes"], "sagitta_mm": b["sagitta_mm"], "shaft_length_mm": b["length_mm"],
             "valid": b["valid"], "tip_blur_mm": b.get("blur", 0.0) * min(g.spacing_mm)}
    if not found:
        return NeedleEstimate(found=False, confidence=conf, extra=extra)
    tip, start, entry = b["tip"], b["start"], b["entry"]
    tip_mm, start_mm, entry_mm = g.px_to_mm(np.stack((tip, start, entry)))
    extra.update(start_px=tuple(start), start_mm=tuple(start_mm),
                 axis_px=(tuple(entry), tuple(b["u"])))
    return NeedleEstimate(found=True, tip_px=tuple(tip), tip_mm=tuple(tip_mm),
                          entry_px=tuple(entry), entry_mm=tuple(entry_mm),
                          angle_deg=b["angle"], direction=tuple(b["um"]),
                          visible_length_mm=float(np.hypot(*(tip_mm - start_mm))),
                          confidence=conf, extra=extra)
