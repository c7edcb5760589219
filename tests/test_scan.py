"""Scan conversion against scipy.ndimage.map_coordinates(order=1) and the reference."""
import math

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

import usfast as us
from conftest import assert_matches, poisoned, strided_view, to_numpy
from test_bmode import on

PROBES = {
    "linear": us.ProbeGeometry.linear(n_elements=64, pitch_mm=0.3, end_depth_mm=30),
    "curvilinear": us.ProbeGeometry.curvilinear(n_elements=96, radius_mm=40, sector_deg=60,
                                                end_depth_mm=80),
    "phased": us.ProbeGeometry.phased(n_lines=80, sector_deg=90, start_depth_mm=2,
                                      end_depth_mm=60),
}


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_matches_map_coordinates(backend, kind, rng):
    g = PROBES[kind]
    sc = us.ScanConverter(g, (301, g.n_lines), out_shape=(157, 203))
    env = rng.random((301, g.n_lines)).astype(np.float32)
    out = poisoned((157, 203), np.float32)
    got = to_numpy(sc(on(backend, env), out=on(backend, out) if backend != "cpu" else out,
                      backend=backend))
    m = sc.map.astype(np.float64)
    want = map_coordinates(env.astype(np.float64), [m[..., 0], m[..., 1]], order=1,
                           mode="constant", cval=0.0)
    want[~sc.mask] = 0
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.all(got[~sc.mask] == 0)
    assert_matches("scan_convert", got, sc(env, backend="reference"))


def test_uint8_batch_and_strided(backend, rng):
    g = PROBES["curvilinear"]
    sc = us.ScanConverter(g, (120, g.n_lines), pixel_mm=0.5)
    x8 = (rng.random((3, 120, g.n_lines)) * 255).astype(np.uint8)
    want = sc(x8, backend="reference")
    got = sc(on(backend, x8), backend=backend)
    assert to_numpy(got).dtype == np.uint8
    assert_matches("scan_convert_u8", got, want)
    xf = rng.random((2, 120, g.n_lines)).astype(np.float32)
    v = strided_view(xf)
    assert_matches("scan_convert", sc(on(backend, v) if backend != "cpu" else v, backend=backend),
                   sc(xf, backend="reference"))


def test_geometry_places_points_where_the_probe_says():
    """A bright sample at a known (depth, angle) lands at the right mm position."""
    g = PROBES["curvilinear"]
    ns = 400
    sc = us.ScanConverter(g, (ns, g.n_lines), pixel_mm=0.2)
    env = np.zeros((ns, g.n_lines), np.float32)
    s, l = 250, 20
    env[s, l] = 1.0
    img = sc(env).astype(np.float64)
    rr, cc = np.mgrid[:img.shape[0], :img.shape[1]]
    c, r = (img * cc).sum() / img.sum(), (img * rr).sum() / img.sum()  # blob centroid
    x_mm, z_mm = sc.image_geometry.px_to_mm([c, r])
    depth = g.start_depth_mm + s * (g.end_depth_mm - g.start_depth_mm) / (ns - 1)
    th = math.radians(-g.sector_deg / 2 + l * g.sector_deg / (g.n_lines - 1))
    want = ((g.radius_mm + depth) * math.sin(th), (g.radius_mm + depth) * math.cos(th) - g.radius_mm)
    assert math.hypot(x_mm - want[0], z_mm - want[1]) < 0.1  # half a pixel


def test_linear_geometry_is_exact():
    g = PROBES["linear"]
    sc = us.ScanConverter(g, (301, g.n_lines), pixel_mm=0.1)
    ig = sc.image_geometry
    assert ig.spacing_mm == (0.1, 0.1)
    assert sc.mask.mean() > 0.97
    x0, x1, z0, z1 = ig.extent_mm()
    assert abs(z0 - 0) < 1e-9 and abs(z1 - 30) < 0.1
    assert abs(x0 + x1) < 1e-9 and abs(x1 - 9.45) < 0.1


BAD = [
    (lambda: us.ScanConverter(PROBES["linear"], (100, 10), pixel_mm=0.1), "in_shape"),
    (lambda: us.ScanConverter(PROBES["linear"], (100, 64)), "out_shape"),
    (lambda: us.ScanConverter(PROBES["linear"], (100, 64), pixel_mm=-1), "pixel_mm"),
    (lambda: us.ScanConverter("probe", (100, 64), pixel_mm=0.1), "geometry"),
    (lambda: us.ProbeGeometry.curvilinear(n_elements=64, radius_mm=-5), "radius_mm"),
    (lambda: us.ProbeGeometry.curvilinear(n_elements=64, sector_deg=180), "sector_deg"),
    (lambda: us.ProbeGeometry.phased(sector_deg=0), "sector_deg"),
    (lambda: us.ProbeGeometry.linear(n_elements=64, end_depth_mm=-1), "end_depth_mm"),
    (lambda: us.ScanConverter(PROBES["linear"], (100, 64), pixel_mm=0.1)(
        np.zeros((99, 64), np.float32)), "data"),
    (lambda: us.ScanConverter(PROBES["linear"], (100, 64), pixel_mm=0.1)(
        np.zeros((100, 64), np.float32), out=np.zeros((3, 3), np.float32)), "out"),
]


@pytest.mark.parametrize("call,arg", BAD)
def test_bad_input(call, arg):
    with pytest.raises(us.InputError, match=arg):
        call()
