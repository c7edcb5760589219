"""Needle enhancement kernels against their float64 reference on every backend, the ridge filter
against scikit-image's Frangi, and bad input. Accuracy on simulated insertions is in
test_needle_accuracy.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

import usfast as us
from usfast import _backend, _cupy
from usfast import needle as nd
from usfast._dispatch import Call
from usfast.reference import needle as ref

from conftest import ODD_SIZES, assert_matches, poisoned, strided_view, to_numpy

GEOM = us.ImageGeometry(spacing_mm=(0.08, 0.08), origin_mm=(0.0, -20.0))


def _dev(x, backend):
    if backend in ("cuda", "cupy"):
        return _backend.cupy_module().asarray(x)
    return x


def _orient_diff(a, b):
    return np.abs((np.asarray(a, np.float64) - np.asarray(b, np.float64) + 90.0) % 180.0 - 90.0)


def synthetic(shape=(160, 200), angle_deg=35.0, tip=(120.0, 110.0), seed=0, contrast=0.35,
              side="left", fascia_row=None):
    """A display-like image: Rayleigh speckle, a bright line from the border to ``tip`` (x, z)
    at ``angle_deg`` (pixels square), optionally a brighter horizontal layer."""
    rng = np.random.default_rng(seed)
    R, C = shape
    sp = np.abs(rng.standard_normal((R, C)) + 1j * rng.standard_normal((R, C))) / math.sqrt(2)
    img = 0.35 + 0.08 * np.log(sp + 1e-3)
    zz, xx = np.mgrid[0:R, 0:C].astype(np.float64)
    a = math.radians(angle_deg)
    sx = 1.0 if side == "left" else -1.0
    u = np.array([sx * math.cos(a), math.sin(a)])
    rx, rz = xx - tip[0], zz - tip[1]
    s = rx * u[0] + rz * u[1]            # along, 0 at the tip, negative towards the entry
    d = -rx * u[1] + rz * u[0]           # across
    line = np.exp(-0.5 * (d / 1.5) ** 2) * (0.5 - 0.5 * np.tanh(s / 1.0))
    img = img + contrast * line
    if fascia_row is not None:
        img = img + 0.45 * np.exp(-0.5 * ((zz - fascia_row) / 1.5) ** 2)
    return np.clip(img, 0, 1).astype(np.float32)


# ---- kernels against the reference --------------------------------------------------------------
@pytest.mark.parametrize("shape", ODD_SIZES + [(61, 77)])
@pytest.mark.parametrize("measure", ["frangi", "strength"])
def test_ridge_matches_reference(backend, rng, shape, measure):
    x = rng.random(shape).astype(np.float32)
    r, o = us.ridge(_dev(x, backend), scales=(1.0, 2.5), measure=measure, backend=backend)
    rr, oo = us.ridge(x, scales=(1.0, 2.5), measure=measure, backend="reference")
    assert_matches("ridge", r, rr, atol=1e-5 * max(1.0, float(np.abs(rr).max())))
    # orientation is only defined where there is a ridge (not in degenerate, near-constant
    # images, where float rounding picks it)
    if min(shape) >= 8:
        sel = rr > 0.2 * rr.max()
        assert np.all(_orient_diff(to_numpy(o), oo)[sel] < 0.05)


def test_ridge_strided_uint8_and_out(backend, rng):
    x8 = (rng.random((3, 41, 53)) * 255).astype(np.uint8)
    xs = strided_view(x8)
    want_r, want_o = us.ridge(x8.astype(np.float32) / 255, scales=(1.5,), measure="strength",
                              backend="reference")
    xp = _backend.cupy_module() if backend in ("cuda", "cupy") else np
    out = (poisoned(x8.shape, np.float32, xp), poisoned(x8.shape, np.float32, xp))
    x_in = xs if backend == "cpu" else _dev(np.ascontiguousarray(xs), backend)
    got_r, got_o = us.ridge(x_in, scales=(1.5,), measure="strength", out=out, backend=backend)
    assert got_r is out[0] and got_o is out[1]
    assert np.all(np.isfinite(to_numpy(got_r))) and np.all(np.isfinite(to_numpy(got_o)))
    assert_matches("ridge", got_r, want_r)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (23, 31)])
def test_oriented_line_filter_matches_reference(backend, rng, shape):
    x = rng.random(shape).astype(np.float32)
    kw = dict(geometry=us.ImageGeometry((0.1, 0.15), (0.0, 0.0)), angles_deg=(-60, -20, 15, 45),
              length_mm=0.9, offset_mm=0.3)
    r, a = us.oriented_line_filter(_dev(x, backend), backend=backend, **kw)
    rr, aa = us.oriented_line_filter(x, backend="reference", **kw)
    assert_matches("oriented_line_filter", r, rr)
    # the winning orientation may differ only where two bank entries (nearly) tie
    assert np.mean(to_numpy(a) == aa) > 0.98


def test_oriented_line_filter_finds_the_line(backend):
    img = synthetic((96, 120), angle_deg=40.0, tip=(90.0, 70.0))
    r, a = us.oriented_line_filter(_dev(img, backend), geometry=GEOM, side="left", step_deg=5.0,
                                   length_mm=2.0, backend=backend)
    r, a = to_numpy(r), to_numpy(a)
    # on the shaft the best orientation is the needle's (within the bank step)
    zz, xx = 50, int(90 - (70 - 50) / math.tan(math.radians(40)))
    assert abs(a[zz, xx] - 40.0) <= 5.0
    assert r[zz, xx] > np.percentile(r, 99)


@pytest.mark.parametrize("temporal", [False, True])
def test_needle_enhance_matches_reference(backend, rng, temporal):
    x = rng.random((70, 90)).astype(np.float32)
    bg = rng.random((70, 90)).astype(np.float32) if temporal else None
    kw = dict(geometry=us.ImageGeometry((0.08, 0.1), (0, 0)), angle_range_deg=(20, 70),
              decimate=2)
    r, o = us.needle_enhance(_dev(x, backend), background=None if bg is None else _dev(bg, backend),
                             backend=backend, **kw)
    rr, oo = us.needle_enhance(x, background=bg, backend="reference", **kw)
    assert r.shape == (35, 45)
    assert_matches("ridge", r, rr, atol=1e-5 * max(1.0, float(np.abs(rr).max())))


def _call(backend, x):
    return Call("test", _dev(x, backend), backend)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 1), (57, 83)])
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_box_decimate_matches_reference(backend, rng, shape, factor):
    for dt, sc in ((np.float32, 1.0), (np.uint8, 1 / 255)):
        x = (rng.random(shape) * (255 if dt == np.uint8 else 1)).astype(dt)
        c = _call(backend, x)
        got = nd._decimate(c, _dev(x, backend), factor, sc)
        assert_matches("ridge", got, ref.box_decimate(x, factor, sc))


def test_band_sample_matches_reference(backend, rng):
    x = rng.random((50, 70)).astype(np.float32)
    p = np.array([[3.2, -2.0, 0.6, 0.8]])
    c = _call(backend, x)
    got = nd._band(c, _dev(x, backend), p, 80, 9, 0.7, 0.5, 1.0)
    assert_matches("ridge", got[0], ref.band_sample(x, p, 80, 9, 0.7, 0.5))


@pytest.mark.parametrize("shape", [(1, 1), (9, 14), (61, 77)])
def test_hough_matches_reference(backend, rng, shape):
    resp = rng.random(shape).astype(np.float32)
    ori = rng.uniform(-90, 90, shape).astype(np.float32)
    g = nd._HoughGrid(shape, tol_deg=5.0)
    prior = (rng.random(g.A) > 0.3).astype(np.float32)
    roi = (0, shape[0], 1, max(shape[1] - 2, 1))
    c = _call(backend, resp)
    got = nd._hough(c, _dev(resp, backend), _dev(ori, backend), g, prior, 0.4, roi)
    want = ref.hough_lines(resp, ori, g.cs, prior, g.A, g.NR, g.theta0, g.dtheta, g.rho0, g.drho,
                           g.tol, 0.4, roi)
    assert_matches("hough", got, want)
    assert abs(float(to_numpy(got).sum()) - float(want.sum())) <= 1e-4 * max(1.0, want.sum())


def test_hough_peak_is_the_line():
    """A synthetic ridge map of one line: the accumulator peaks at its angle and offset."""
    R, C = 101, 121
    zz, xx = np.mgrid[0:R, 0:C].astype(np.float64)
    th = math.radians(30.0)
    cx, cz = (C - 1) / 2, (R - 1) / 2
    rho = -(xx - cx) * math.sin(th) + (zz - cz) * math.cos(th)
    resp = np.exp(-0.5 * ((rho - 7.0) / 0.8) ** 2).astype(np.float32)
    ori = np.full((R, C), 30.0, np.float32)
    g = nd._HoughGrid((R, C))
    acc = nd._hough(Call("t", resp, "cpu"), resp, ori, g, np.ones(g.A, np.float32), 0.1,
                    (0, R, 0, C))
    ia, ir = np.unravel_index(np.argmax(acc), acc.shape)
    assert abs(g.theta[ia] - 30.0) <= 1.0
    assert abs(g.rho0 + ir * g.drho - 7.0) <= 1.0


# ---- the ridge filter against scikit-image ----------------------------------------------------
def test_ridge_agrees_with_skimage_frangi_on_where_ridges_are():
    skf = pytest.importorskip("skimage.filters")
    img = synthetic((128, 160), angle_deg=30.0, tip=(140.0, 100.0), seed=3, contrast=0.5)
    img[40:44, 10:150] += 0.4  # a second, horizontal ridge
    img = np.clip(img, 0, 1).astype(np.float32)
    scales = (1.5, 2.5)
    ours, _ = us.ridge(img, scales=scales, measure="frangi")
    theirs = skf.frangi(img.astype(np.float64), sigmas=scales, black_ridges=False)
    # where ridges are: the strongest 3 % of each map overlap, and both peak on the same rows
    # of a cross-section through each ridge
    a = ours > np.percentile(ours, 97)
    b = theirs > np.percentile(theirs, 97)
    dice = 2 * np.sum(a & b) / (a.sum() + b.sum())
    assert dice > 0.6, dice
    col = 60
    assert abs(int(np.argmax(ours[32:50, col])) - int(np.argmax(theirs[32:50, col]))) <= 1
    corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    assert corr > 0.7, corr


def test_ridge_orientation_of_a_line():
    img = synthetic((120, 140), angle_deg=35.0, tip=(120.0, 100.0), seed=1, contrast=0.6)
    r, o = us.ridge(img, scales=(1.5,), measure="strength")
    sel = r > np.percentile(r, 99.5)
    assert np.median(_orient_diff(o[sel], 35.0)) < 3.0


# ---- NVRTC: the cupy path's sources compile without a GPU -------------------------------------
@pytest.mark.parametrize("area", ["ridge", "linefilter", "hough"])
def test_kernels_compile_with_nvrtc(area):
    try:
        from cupy.cuda import nvrtc  # noqa: F401
    except Exception as e:  # pragma: no cover
        pytest.skip(f"NVRTC not available: {e}")
    try:
        ptx = _cupy.compile_to_ptx(area)
    except RuntimeError as e:
        if "NVRTC failed" in str(e):
            raise
        pytest.skip(f"NVRTC not usable here: {e}")
    assert ".entry" in ptx


# ---- locate_needle basics ---------------------------------------------------------------------
@pytest.mark.parametrize("side", ["left", "right"])
def test_locate_synthetic_needle(side):
    tip = (120.0, 110.0) if side == "left" else (80.0, 110.0)
    img = synthetic((160, 200), angle_deg=35.0, tip=tip, side=side, fascia_row=40)
    g = us.ImageGeometry((0.08, 0.08), (0.0, -8.0), img.shape)
    e = us.locate_needle(img, geometry=g)
    assert e.found and e.confidence > 0.5
    assert abs(e.angle_deg - 35.0) < 1.0
    assert np.hypot(*(np.array(e.tip_px) - tip)) < 4.0
    assert (e.direction[0] > 0) == (side == "left") and e.direction[1] > 0
    np.testing.assert_allclose(e.tip_mm, g.px_to_mm(e.tip_px))
    # the entry point lies on the image border, on the needle's side or the top
    ex, ez = e.entry_px
    assert min(abs(ex - (0 if side == "left" else 199)), abs(ez)) < 1e-6


def test_locate_anisotropic_pixels_angle_in_mm():
    img = synthetic((160, 200), angle_deg=35.0, tip=(130.0, 110.0))
    # the same pixels, said to be 0.1 mm deep and 0.05 mm wide: tan(angle_mm) = 2 tan(35)
    g = us.ImageGeometry((0.1, 0.05), (0.0, 0.0), img.shape)
    e = us.locate_needle(img, geometry=g)
    assert e.found
    want = math.degrees(math.atan(2 * math.tan(math.radians(35.0))))
    assert abs(e.angle_deg - want) < 1.0
    dx, dz = e.direction
    assert abs(math.hypot(dx, dz) - 1) < 1e-9 and abs(math.degrees(math.atan2(dz, dx)) - want) < 1


def test_locate_uint8_envelope_and_db_scales():
    img = synthetic((160, 200), angle_deg=45.0, tip=(110.0, 100.0), seed=4)
    g = us.ImageGeometry((0.08, 0.08), (0.0, 0.0), img.shape)
    a = us.locate_needle(img, geometry=g)
    b = us.locate_needle((img * 255 + 0.5).astype(np.uint8), geometry=g)
    env = (10 ** ((img - 1) * 60 / 20)).astype(np.float32)
    c = us.locate_needle(env, geometry=g, scale="envelope", dynamic_range_db=60)
    d = us.locate_needle(((img - 1) * 60).astype(np.float32), geometry=g, scale="db",
                         dynamic_range_db=60)
    for e in (a, b, c, d):
        assert e.found
        assert np.hypot(*(np.array(e.tip_px) - a.tip_px)) < 1.5
        assert abs(e.angle_deg - a.angle_deg) < 0.3


def test_locate_needle_free_and_tiny_images_are_not_found():
    g = us.ImageGeometry((0.08, 0.08), (0.0, 0.0))
    rng = np.random.default_rng(0)
    for img in (np.zeros((64, 64), np.float32), np.ones((5, 7), np.float32),
                np.zeros((1, 1), np.float32), rng.random((3, 200)).astype(np.float32),
                synthetic((160, 200), contrast=0.0, fascia_row=80)):
        e = us.locate_needle(img, geometry=g)
        assert not e.found
        for v in (*e.tip_px, *e.tip_mm, *e.entry_px, e.angle_deg, e.confidence):
            assert math.isfinite(v)
        assert 0.0 <= e.confidence <= 1.0


def test_locate_horizontal_layer_is_not_a_needle():
    img = synthetic((160, 200), contrast=0.0, fascia_row=80, seed=2)
    img2 = img.copy()
    img2[60:63, :] = 0.95  # a brighter, sharper layer
    for im in (img, img2):
        e = us.locate_needle(im, geometry=GEOM)
        assert not e.found


def test_locate_uses_priors():
    img = synthetic((160, 200), angle_deg=35.0, tip=(120.0, 110.0))
    g = us.ImageGeometry((0.08, 0.08), (0.0, 0.0), img.shape)
    assert us.locate_needle(img, geometry=g, side="left").found
    assert not us.locate_needle(img, geometry=g, side="right").found
    assert us.locate_needle(img, geometry=g, angle_range_deg=(30, 40)).found
    assert not us.locate_needle(img, geometry=g, angle_range_deg=(50, 80)).found
    x0, z0 = g.px_to_mm((100.0, 90.0))
    assert us.locate_needle(img, geometry=g, roi=(x0, x0 + 4, z0, z0 + 4)).found
    # an ROI away from the needle: nothing there
    assert not us.locate_needle(img, geometry=g, roi=(1.0, 4.0, 9.0, 12.0)).found


def test_locate_on_gpu_backends_matches_cpu(backend):
    img = synthetic((160, 200), angle_deg=35.0, tip=(120.0, 110.0))
    g = us.ImageGeometry((0.08, 0.08), (0.0, 0.0), img.shape)
    a = us.locate_needle(img, geometry=g, backend="cpu")
    b = us.locate_needle(_dev(img, backend), geometry=g, backend=backend)
    assert a.found and b.found
    assert np.hypot(*(np.array(a.tip_px) - b.tip_px)) < 0.5
    assert abs(a.angle_deg - b.angle_deg) < 0.05


# ---- bad input --------------------------------------------------------------------------------
def _err(fn, arg, *a, **kw):
    with pytest.raises(us.InputError, match=rf"\({arg}\)"):
        fn(*a, **kw)


def test_bad_input_names_the_argument():
    img = synthetic((64, 80))
    g = us.ImageGeometry((0.08, 0.08), (0.0, 0.0), img.shape)
    loc = us.locate_needle
    _err(loc, "img", img[0], geometry=g)                          # 1-D
    _err(loc, "img", img[None], geometry=g)                       # 3-D: one frame at a time
    _err(loc, "img", np.zeros((0, 5), np.float32), geometry=g)    # empty
    bad = img.copy()
    bad[3, 4] = np.nan
    _err(loc, "img", bad, geometry=g)
    _err(loc, "img", img.astype(np.int32), geometry=g)
    _err(loc, "geometry", img, geometry=None)
    _err(loc, "geometry", img, geometry=(0.08, 0.08))
    _err(loc, "geometry", img, geometry=us.ImageGeometry((0.08, 0.08), (0, 0), (65, 80)))
    for ar in ((0, 45), (10, 90), (50, 20), (-5, 30), (10, float("nan")), (10,), "wide"):
        _err(loc, "angle_range_deg", img, geometry=g, angle_range_deg=ar)
    _err(loc, "side", img, geometry=g, side="top")
    _err(loc, "roi", img, geometry=g, roi=(100.0, 120.0, 50.0, 60.0))   # outside the image
    _err(loc, "roi", img, geometry=g, roi=(1.0, 0.0, 1.0, 2.0))         # empty
    _err(loc, "roi", img, geometry=g, roi=(1.0, 2.0))
    _err(loc, "scale", img, geometry=g, scale="linear")
    _err(us.ridge, "img", np.zeros((2, 2, 2, 2), np.float32))
    _err(us.ridge, "scales", img, scales=(0.0,))
    _err(us.ridge, "scales", img, scales=())
    _err(us.ridge, "measure", img, measure="sato")
    _err(us.oriented_line_filter, "geometry", img)
    _err(us.oriented_line_filter, "angle_range_deg", img, geometry=g, angle_range_deg=(0, 90))
    _err(us.oriented_line_filter, "angles_deg", img, geometry=g, angles_deg=[float("inf")])
    _err(us.oriented_line_filter, "length_mm", img, geometry=g, length_mm=-1)
    _err(us.needle_enhance, "geometry", img)
    _err(us.needle_enhance, "angle_range_deg", img, geometry=g, angle_range_deg=(45, 95))
    _err(us.needle_enhance, "background", img, geometry=g, background=img[:10])
    _err(us.needle_enhance, "decimate", img, geometry=g, decimate=0)


# ---- the tip's blur correction: the speckle's correlation length ------------------------------
def _log_speckle(sigma_px, rows=400, cols=24, seed=0):
    """Fully developed speckle along the rows: complex Gaussian scatterers through a Gaussian
    amplitude PSF of width sigma_px, log-compressed to a 60 dB display."""
    from scipy.ndimage import gaussian_filter1d
    rng = np.random.default_rng(seed)
    f = [gaussian_filter1d(rng.standard_normal((rows, cols)), sigma_px, axis=0, truncate=5.0)
         for _ in range(2)]
    a = np.hypot(*f)
    db = 20.0 * np.log10(a / np.sqrt(np.mean(a * a)))
    return np.clip((db + 60.0) / 60.0, 0.0, 1.0)


@pytest.mark.parametrize("sigma_px", [1.5, 2.0, 3.0])
def test_speckle_width_reads_the_psf(sigma_px):
    """_speckle_width (what the tip's blur correction scales by) reads 0.65 of the PSF's
    amplitude width on log-compressed speckle (measured 0.63-0.65 at these widths), as its
    docstring says; it is not a fixed number."""
    w = np.array([nd._speckle_width([_log_speckle(sigma_px, seed=k)], 8) for k in range(4)])
    assert np.all(np.abs(w / sigma_px - 0.65) <= 0.06), w / sigma_px


def test_speckle_width_is_none_on_smoothed_speckle():
    """Speckle a filter has smoothed (a 15-pixel running mean) gives no width, so no shift;
    zeros (outside a sector) are left out rather than read as speckle."""
    from scipy.ndimage import uniform_filter1d
    sp = _log_speckle(1.5)
    assert nd._speckle_width([uniform_filter1d(sp, 15, axis=0)], 5) is None
    padded = np.concatenate((np.zeros((200, sp.shape[1])), sp))
    assert nd._speckle_width([padded], 8) == pytest.approx(nd._speckle_width([sp], 8))
    assert nd._speckle_width([np.zeros((200, 8))], 8) is None


def test_accumulator_peaks_leave_room_for_other_angles():
    """Layered tissue: five strong parallel lines at 15 deg and a weaker one (0.6 of the
    strongest) at 50 deg. At most two of the four lines examined lie within 6 deg of one
    another's angle, so the 50 deg line is examined; it would have been fifth."""
    A, NR = 180, 200
    acc = np.zeros((A, NR))
    th0 = -90.0
    for k, v in enumerate((1.0, 0.95, 0.9, 0.85, 0.8)):
        acc[15 - int(th0), 20 + 30 * k] = v
    acc[50 - int(th0), 100] = 0.6
    prior = np.ones(A, np.float32)
    peaks = nd._peaks(acc, prior, 4, 0.5)
    angles = [round(ia + th0) for ia, ir, v in peaks]
    assert angles.count(15) == 2 and 50 in angles, peaks
    assert [v for *_, v in peaks][:2] == [1.0, 0.95]
    # without other angles present the limit gives no more lines than there are
    acc[50 - int(th0), 100] = 0.0
    assert len(nd._peaks(acc, prior, 4, 0.5)) == 2
