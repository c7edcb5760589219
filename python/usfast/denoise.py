"""Speckle reduction: non-local means, median and bilateral filters.

Every function: ``f(img, *, <params>, out=None, backend=None, stream=None, check_finite=True)``. ``img`` is float32 ``(rows, cols)`` or a batch ``(frames, rows, cols)``
(each frame filtered on its own); the result has its shape. Inputs whose columns are not
contiguous are copied; row-strided views and sub-regions are used in place. ``out`` must not
overlap ``img`` (these filters read a neighbourhood of every pixel).

Apply them to the log-compressed (display) image: there speckle is close to additive noise of
constant variance, which is what a Euclidean patch distance (NLM) and a Gaussian range weight
(bilateral) assume. Parameters in grey levels (``h``, ``sigma``, ``sigma_color``) are in the
units of the image: for ``log_compress`` output in [0, 1] (60 dB), fully developed speckle has a
standard deviation near 5.6 dB, i.e. about 0.09.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _backend, _cupy
from ._dispatch import Call, f32, frames_of, i32, i64
from ._errors import fail
from .reference import denoise as ref

__all__ = ["nlm", "median", "bilateral"]

_F32 = (np.dtype(np.float32),)
NLM_MAX_REACH = 40          # patch_size // 2 + search_size // 2 (kernels/nlm.cuh, kNlmMaxReach)
MEDIAN_MAX_SIZE = 255       # kernels/rank.cuh, kRankMaxSize
BILATERAL_MAX_DIAMETER = 63


def _odd(func, name, v, hi):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise fail(func, name, "an odd integer", repr(v))
    v = int(v)
    if v < 3 or v % 2 == 0 or v > hi:
        raise fail(func, name, f"an odd size in [3, {hi}]", v)
    return v


def _positive(func, name, v, allow_zero=False):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise fail(func, name, "a number", repr(v)) from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise fail(func, name, "a finite value >= 0" if allow_zero else "a finite value > 0", v)
    return v


def _extent(a):
    """[first, last) byte addresses an array's elements span."""
    p = Call.ptr(a)
    lo = hi = 0
    for n, s in zip(a.shape, a.strides):
        if n > 1:
            lo += min(0, (n - 1) * s)
            hi += max(0, (n - 1) * s)
    return p + lo, p + hi + a.itemsize


def _prepare(c: Call, img, out, check_finite):
    x = c.input("img", img, _F32, check_finite=check_finite)
    o = c.output(out, x.shape, np.float32)
    if c.backend != "reference":
        (xb, xe), (ob, oe) = _extent(x), _extent(o)
        if xb < oe and ob < xe:
            raise fail(c.func, "out", "a buffer that does not overlap img (no in-place filtering)")
    return x, o


def _gpu_launch(c: Call, area, name, grid, block, args, shared_mem=0):
    cp = _backend.cupy_module()
    with cp.cuda.ExternalStream(c.stream):
        _cupy.kernel(area, name)(grid, block, args, shared_mem=shared_mem)


def _tiles(x, o):
    """Common kernel arguments and the 32 x 8 tile grid of the CUDA launchers."""
    F, R, C = frames_of(x.shape)
    dx, do = Call.desc(x), Call.desc(o)
    args = (x, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(R), i32(C))
    return args, ((C + 31) // 32, (R + 7) // 8, F), (32, 8, 1)


def nlm(img, *, h=0.1, patch_size=7, search_size=21, sigma=0.0, out=None, backend=None,
        stream=None, check_finite=True):
    """Non-local means (Buades, Coll & Morel 2005) on a log-compressed image, by the fast
    offset-outer algorithm (Darbon et al. 2008): for each offset d of the search window the
    squared difference image is box-summed over the patch with running sums, so the cost per
    pixel does not depend on the patch size.

    w(p, d) = exp(-max(|patch(p) - patch(p + d)|^2 / patch_size^2 - 2 sigma^2, 0) / h^2),
    y[p] = sum_d w(p, d) img[p + d] / sum_d w(p, d), d in the search_size^2 window (d = 0
    weighs 1). Patches are centred patch_size x patch_size squares; borders reflect-101.

    h: smoothing strength (> 0, grey levels); sigma: noise standard deviation subtracted from the
    patch distances (>= 0; 0 = plain NLM); patch_size, search_size: odd, >= 3, with
    patch_size // 2 + search_size // 2 <= 40. The same parameters as
    ``skimage.restoration.denoise_nl_means(img, patch_size, search_size // 2, h,
    fast_mode=True, sigma=sigma)``, whose fast mode differs in three conventions: its patch is
    the (patch_size - 1)^2 square offset by half a pixel (integral-image indices) though still
    divided by patch_size^2, the pixel itself weighs 2 instead of 1, and weights below exp(-5)
    are dropped and the others use an approximate exp.
    """
    fn = "nlm"
    h = _positive(fn, "h", h)
    sigma = _positive(fn, "sigma", sigma, allow_zero=True)
    ps = _odd(fn, "patch_size", patch_size, 2 * NLM_MAX_REACH + 1)
    ss = _odd(fn, "search_size", search_size, 2 * NLM_MAX_REACH + 1)
    if ps // 2 + ss // 2 > NLM_MAX_REACH:
        raise fail(fn, "search_size", f"patch_size // 2 + search_size // 2 <= {NLM_MAX_REACH}",
                   f"{ps // 2} + {ss // 2}")
    c = Call(fn, img, backend, stream)
    x, o = _prepare(c, img, out, check_finite)
    if c.backend == "reference":
        o[...] = ref.nlm(x, ps, ss, h, sigma)
    elif c.backend == "cupy":
        hp, hs = ps // 2, ss // 2
        reach = hp + hs
        smem = 4 * ((8 + 2 * reach) * (32 + 2 * reach) + 8 * (32 + 2 * hp))
        args, grid, block = _tiles(x, o)
        # the kernel's coefficients, formed as the C++ core forms them
        inv_h2 = min(1.0 / (h * h), 1e30)
        _gpu_launch(c, "nlm", "usfast_nlm_f32", grid, block,
                    args + (i32(hp), i32(hs), f32(1.0 / (ps * ps)), f32(2 * sigma * sigma),
                            f32(inv_h2)), smem)
    else:
        c.core("nlm_f32", c.desc(x), c.desc(o), ps, ss, h, sigma)
    return c.result(o)


def median(img, *, window=3, out=None, backend=None, stream=None, check_finite=True):
    """Median filter over a window x window neighbourhood (odd, 3..255), borders replicated (the edge
    pixel repeated, as ``cv2.medianBlur``). Exact for every size: 3x3 and 5x5 by sorting
    networks on presorted columns; larger windows by Huang's sliding histogram over 256 levels,
    which finds the bin holding the median, then an exact radix selection inside that bin."""
    fn = "median"
    size = _odd(fn, "window", window, MEDIAN_MAX_SIZE)
    c = Call(fn, img, backend, stream)
    x, o = _prepare(c, img, out, check_finite)
    if c.backend == "reference":
        o[...] = ref.median(x, size)
    elif c.backend == "cupy":
        args, grid, block = _tiles(x, o)
        if size in (3, 5):
            _gpu_launch(c, "rank", f"usfast_median{size}_f32", grid, block, args)
        else:
            F, R, C = frames_of(x.shape)
            _gpu_launch(c, "rank", "usfast_median_hist_f32", ((C + 63) // 64, (R + 31) // 32, F),
                        (64, 1, 1), args + (i32(size),))
    else:
        c.core("median_f32", c.desc(x), c.desc(o), size)
    return c.result(o)


def bilateral(img, *, sigma_color=0.1, sigma_space=2.0, diameter=None, out=None, backend=None,
              stream=None, check_finite=True):
    """Bilateral filter (Tomasi & Manduchi 1998) with the conventions of
    ``cv2.bilateralFilter(img, diameter, sigma_color, sigma_space)``: the window is the disc of
    radius diameter // 2, borders reflect-101, and

    w(p, q) = exp(-(img[q] - img[p])^2 / (2 sigma_color^2) - |q - p|^2 / (2 sigma_space^2)).

    sigma_color (grey levels) and sigma_space (pixels) must be > 0 (OpenCV silently uses 1 for
    values <= 0). diameter: odd, 3..63; None = 2 * round(1.5 sigma_space) + 1 (OpenCV's rule
    for d <= 0, halves rounded to even), at least 3. The range Gaussian is evaluated exactly; OpenCV interpolates a
    4096-entry table over the image's range, and returns a constant image unchanged.
    """
    fn = "bilateral"
    sc = _positive(fn, "sigma_color", sigma_color)
    ss = _positive(fn, "sigma_space", sigma_space)
    if diameter is None:
        # cvRound rounds halves to even, as round() does
        diameter = min(2 * max(int(round(1.5 * ss)), 1) + 1, BILATERAL_MAX_DIAMETER)
    d = _odd(fn, "diameter", diameter, BILATERAL_MAX_DIAMETER)
    c = Call(fn, img, backend, stream)
    x, o = _prepare(c, img, out, check_finite)
    if c.backend == "reference":
        o[...] = ref.bilateral(x, d, sc, ss)
    elif c.backend == "cupy":
        r = d // 2
        args, grid, block = _tiles(x, o)
        cc = max(-0.5 / (sc * sc), -1e30)
        cs = max(-0.5 / (ss * ss), -1e30)
        _gpu_launch(c, "bilateral", "usfast_bilateral_f32", grid, block,
                    args + (i32(r), f32(cc), f32(cs)), 4 * (32 + 2 * r) * (8 + 2 * r))
    else:
        c.core("bilateral_f32", c.desc(x), c.desc(o), d, sc, ss)
    return c.result(o)
