"""Tests for usfast.overlay: geometry against hand-computed cases, JSON round trip, and
rendered pixels where the primitives say they are.

Geometry used throughout: 0.1 mm pixels, 500 rows x 400 columns, x from -20 to 19.9 mm and
z from 0 to 49.9 mm (pixel centres), so x_px = (x + 20) * 10 and z_px = z * 10.
"""
import json
import math

import numpy as np
import pytest

from usfast import ImageGeometry, InputError, NeedleEstimate
from usfast.overlay import (OKABE_ITO, PALETTE, Overlay, OverlayPrimitives, render,
                            trajectory_metrics)
from usfast.tracking import NeedleState

G = ImageGeometry(spacing_mm=(0.1, 0.1), origin_mm=(0.0, -20.0), shape=(500, 400))
R2 = math.sqrt(0.5)
GREY = 0.5                      # float 0.5 -> uint8 128
GREY_U8 = (128, 128, 128)


def est(tip, angle_deg, *, from_left=True, entry=None, status=None):
    a = math.radians(angle_deg)
    u = (math.cos(a) if from_left else -math.cos(a), math.sin(a))
    if entry is None:
        x_edge = -20.0 if from_left else 19.9
        k = (tip[0] - x_edge) / u[0]
        entry = (x_edge, tip[1] - k * u[1])
    kw = dict(found=True, tip_mm=tip, entry_mm=entry, angle_deg=angle_deg, direction=u,
              tip_px=tuple(G.mm_to_px(tip)), entry_px=tuple(G.mm_to_px(entry)),
              confidence=0.9)
    if status is not None:
        return NeedleState(status=status, **kw)
    return NeedleEstimate(**kw)


# -- geometry: hand-computed cases ---------------------------------------------------------
def test_trajectory_metrics_hand_computed():
    # 45 degrees, tip (0, 10), target (5, 20): d = (5, 10)
    # along = (5 + 10) / sqrt 2 = 10.6066, miss = |5 - 10| / sqrt 2 = 3.5355
    along, miss = trajectory_metrics((0, 10), (R2, R2), (5, 20))
    assert along == pytest.approx(15 * R2, abs=1e-12)
    assert miss == pytest.approx(5 * R2, abs=1e-12)
    # direction need not be unit length
    assert trajectory_metrics((0, 10), (3, 3), (5, 20)) == pytest.approx((15 * R2, 5 * R2))
    # target on the line, 10 mm ahead
    assert trajectory_metrics((0, 0), (0.6, 0.8), (6, 8)) == pytest.approx((10.0, 0.0))
    # target behind the tip: negative along the path
    assert trajectory_metrics((0, 10), (R2, R2), (-5, 5)) == pytest.approx((-10 * R2, 0.0))
    with pytest.raises(InputError, match=r"trajectory_metrics\(direction\)"):
        trajectory_metrics((0, 0), (0, 0), (1, 1))


def test_trajectory_ends_at_target_depth():
    # tip (0, 10) at 45 degrees, target (5, 20): path reaches z = 20 at (10, 20)
    p = Overlay(G, target_mm=(5.0, 20.0)).primitives(est((0.0, 10.0), 45.0))
    assert p.trajectory.p0_mm == pytest.approx((0.0, 10.0))
    assert p.trajectory.p1_mm == pytest.approx((10.0, 20.0), abs=1e-9)
    assert p.trajectory.p1_px == pytest.approx((300.0, 200.0), abs=1e-6)
    assert p.distance_to_target_mm == pytest.approx(15 * R2)
    assert p.miss_distance_mm == pytest.approx(5 * R2)
    assert p.target.p_px == pytest.approx((250.0, 200.0))


def test_trajectory_leaves_through_the_side_before_the_target_depth():
    # 45 degrees from (0, 10): the right edge x = 19.9 comes at z = 29.9, before z = 30
    p = Overlay(G, target_mm=(10.0, 30.0)).primitives(est((0.0, 10.0), 45.0))
    assert p.trajectory.p1_mm == pytest.approx((19.9, 29.9), abs=1e-9)
    # d = (10, 20): along = 30 / sqrt 2, miss = 10 / sqrt 2
    assert p.distance_to_target_mm == pytest.approx(30 * R2)
    assert p.miss_distance_mm == pytest.approx(10 * R2)


def test_trajectory_to_the_bottom_without_target():
    # 70 degrees from (0, 10): bottom (z = 49.9) at x = 39.9 / tan 70 = 14.5224
    p = Overlay(G).primitives(est((0.0, 10.0), 70.0))
    assert p.trajectory.p1_mm == pytest.approx((39.9 / math.tan(math.radians(70)), 49.9))
    assert p.trajectory.p1_px[1] == pytest.approx(499.0)
    assert p.target is None and p.distance_to_target_mm is None and p.miss_distance_mm is None


def test_needle_from_the_right_hand_computed():
    # direction (-cos 30, sin 30); tip (0, 10); target (-10, 20): d = (-10, 10)
    # along = 8.6603 + 5 = 13.6603; miss = |(-10)(0.5) - 10(-0.8660)| = 3.6603
    # the path reaches z = 20 after 20 mm: (-17.3205, 20)
    p = Overlay(G, target_mm=(-10.0, 20.0)).primitives(est((0.0, 10.0), 30.0,
                                                           from_left=False))
    c = math.cos(math.radians(30))
    assert p.distance_to_target_mm == pytest.approx(10 * c + 5)
    assert p.miss_distance_mm == pytest.approx(abs(-5 + 10 * c))
    assert p.trajectory.p1_mm == pytest.approx((-20 * c, 20.0))
    assert p.angle_deg == pytest.approx(30.0)


def test_target_behind_the_tip():
    p = Overlay(G, target_mm=(-5.0, 5.0)).primitives(est((0.0, 10.0), 45.0))
    assert p.distance_to_target_mm == pytest.approx(-10 * R2)
    assert p.miss_distance_mm == pytest.approx(0.0, abs=1e-12)
    assert p.trajectory.p1_mm == pytest.approx((19.9, 29.9))     # on to the image edge
    assert any("past target 7.1 mm" == lab.text for lab in p.labels)


def test_axis_entry_tip_and_labels():
    s = est((0.0, 25.0), 45.0, entry=(-20.0, 5.0))
    p = Overlay(G, target_mm=(5.0, 35.0)).primitives(s)
    assert p.needle_axis.p0_mm == (-20.0, 5.0) and p.needle_axis.p1_mm == (0.0, 25.0)
    assert p.needle_axis.p0_px == pytest.approx((0.0, 50.0))
    assert p.needle_axis.p1_px == pytest.approx((200.0, 250.0))
    assert p.needle_axis.length_mm == pytest.approx(20 * math.sqrt(2))
    assert p.tip.p_mm == (0.0, 25.0) and p.entry.p_mm == (-20.0, 5.0)
    assert p.angle_deg == 45.0
    texts = {lab.name: lab.text for lab in p.labels}
    # d = (5, 10): along = 15 / sqrt 2 = 10.6, miss = 5 / sqrt 2 = 3.5
    assert texts == {"angle": "angle 45 deg", "distance": "to target 10.6 mm",
                     "miss": "miss 3.5 mm"}
    assert p.needle_axis.color == PALETTE["needle"] == OKABE_ITO["orange"]


def test_guide_lines_hand_computed():
    p = Overlay(G, guide_angles_deg=(45, 60)).primitives(None)
    g45, g60 = p.guide_lines
    # from the top-left corner (-20, 0); 45 degrees meets x = 19.9 at z = 39.9
    assert g45.p0_mm == pytest.approx((-20.0, 0.0)) and g45.p1_mm == pytest.approx((19.9, 39.9))
    # 60 degrees meets the bottom z = 49.9 at x = -20 + 49.9 / tan 60 = 8.8094
    assert g60.p1_mm == pytest.approx((-20.0 + 49.9 / math.tan(math.radians(60)), 49.9))
    assert g45.dashed and g45.color == PALETTE["guide"]
    # right-hand guide from a given origin: 45 degrees from (10, 0) going left: (-20, 30)
    q = Overlay(G, guide_angles_deg=(45,), guide_side="right",
                guide_origin_mm=(10.0, 0.0)).primitives(None)
    assert q.guide_lines[0].p0_mm == pytest.approx((10.0, 0.0))
    assert q.guide_lines[0].p1_mm == pytest.approx((-20.0, 30.0))


def test_depth_ruler_ticks():
    p = Overlay(G, ruler_step_mm=10.0).primitives(None)
    ticks = p.ruler.ticks
    assert [t.z_mm for t in ticks] == pytest.approx([0, 5, 10, 15, 20, 25, 30, 35, 40, 45])
    assert [t.text for t in ticks if t.major] == ["0", "10", "20", "30", "40"]
    assert all(t.text == "" for t in ticks if not t.major)
    t20 = ticks[4]
    assert t20.p0_px[1] == pytest.approx(200.0) and t20.p1_px[1] == pytest.approx(200.0)
    assert t20.p0_px[0] > t20.p1_px[0] > 350           # on the right edge, pointing inwards
    assert p.ruler.unit == "mm"


def test_not_found_has_no_needle_primitives():
    for s in (None, NeedleEstimate(found=False), NeedleState(found=False, status="lost")):
        p = Overlay(G, target_mm=(0.0, 30.0)).primitives(s)
        assert not p.found
        assert p.needle_axis is p.trajectory is p.tip is p.entry is None
        assert p.distance_to_target_mm is None and p.angle_deg is None
        assert p.target is not None
        assert [lab.text for lab in p.labels] == ["NO NEEDLE"]


def test_coasting_axis_is_dashed():
    p = Overlay(G).primitives(est((0.0, 25.0), 45.0, status="coasting"))
    assert p.needle_axis.dashed and p.status == "coasting"
    assert p.labels[0].text == "COASTING"
    assert not Overlay(G).primitives(est((0.0, 25.0), 45.0, status="tracking")).needle_axis.dashed


def test_json_round_trip():
    ov = Overlay(G, target_mm=(5.0, 35.0), guide_angles_deg=(30, 45, 60))
    for s in (est((0.0, 25.0), 45.0, status="tracking"), None):
        p = ov.primitives(s)
        text = p.to_json()
        json.loads(text)                                  # plain JSON, no NaN
        back = OverlayPrimitives.from_json(text)
        assert back == p
        assert back.to_json() == text


# -- rendering -----------------------------------------------------------------------------
def grey_image(shape=(500, 400)):
    return np.full(shape, GREY, np.float32)


def _px(img, p):
    return tuple(int(v) for v in img[int(round(p[1])), int(round(p[0]))])


def close(c1, c2, tol=12):
    return all(abs(a - b) <= tol for a, b in zip(c1, c2))


def blend_of(c, col, bg=GREY_U8, tol=6):
    """Whether c is an anti-aliasing mix a*col + (1 - a)*bg (0 <= a <= 1) within tol."""
    c, col, bg = (np.array(v, float) for v in (c, col, bg))
    d = col - bg
    a = np.clip(np.dot(c - bg, d) / np.dot(d, d), 0.0, 1.0)
    return bool(np.all(np.abs(bg + a * d - c) <= tol))


def test_rendered_pixels_are_where_the_primitives_say():
    s = est((0.0, 25.0), 45.0, entry=(-20.0, 5.0), status="tracking")
    ov = Overlay(G, target_mm=(10.0, 40.0))
    p = ov.primitives(s)
    rgb = ov.render(grey_image(), s)
    assert rgb.shape == (500, 400, 3) and rgb.dtype == np.uint8
    # along the shaft, away from the two markers: the needle colour
    a0, a1 = np.array(p.needle_axis.p0_px), np.array(p.needle_axis.p1_px)
    for f in np.linspace(0.2, 0.8, 13):
        assert close(_px(rgb, a0 + f * (a1 - a0)), PALETTE["needle"]), f
    # the tip marker is a filled disc in the tip colour
    assert _px(rgb, p.tip.p_px) == PALETTE["tip"]
    assert _px(rgb, p.entry.p_px) == PALETTE["entry"]
    # the dashed trajectory: yellow on a good share of its length, nowhere else colour
    t0, t1 = np.array(p.trajectory.p0_px), np.array(p.trajectory.p1_px)
    samples = [_px(rgb, t0 + f * (t1 - t0)) for f in np.linspace(0.1, 0.95, 60)]
    share = np.mean([close(c, PALETTE["trajectory"]) for c in samples])
    assert share > 0.4
    assert all(blend_of(c, PALETTE["trajectory"]) for c in samples)
    # the target crosshair ring passes 1.6 * radius to the right of the target
    tx, tz = p.target.p_px
    ring = [_px(rgb, (tx + r, tz)) for r in np.arange(5, 12, 0.5)]
    assert any(close(c, PALETTE["target"]) for c in ring)
    # the ruler tick at 20 mm depth is white
    t20 = next(t for t in p.ruler.ticks if t.z_mm == 20)
    mid = (0.5 * (t20.p0_px[0] + t20.p1_px[0]), t20.p0_px[1])
    assert close(_px(rgb, mid), PALETTE["ruler"], 40)
    # far from every primitive the image is untouched grey
    far = rgb[60:200, 250:340]
    assert np.all(far == np.array(GREY_U8, np.uint8))
    # and the labels are drawn (text pixels in the bottom-left corner)
    corner = rgb[430:, :180]
    assert np.any(np.all(corner == np.array(PALETTE["text"], np.uint8), axis=-1))


def test_uint8_float_and_display_range_agree():
    s = est((0.0, 25.0), 45.0)
    ov = Overlay(G)
    a = ov.render(grey_image(), s)
    b = ov.render(np.full((500, 400), 128, np.uint8), s)
    c = ov.render(np.full((500, 400), 0.5 * 1000.0, np.float64), s,
                  display_range=(0.0, 1000.0))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    # clipping and non-finite pixels
    img = grey_image()
    img[0, :6] = [-3.0, 7.0, np.nan, np.inf, -np.inf, 0.2]
    d = Overlay(G, ruler=False, labels=False).render(img, None)
    assert tuple(d[0, 0]) == (0, 0, 0) and tuple(d[0, 1]) == (255, 255, 255)
    assert tuple(d[0, 2]) == tuple(d[0, 3]) == tuple(d[0, 4]) == (0, 0, 0)   # non-finite
    assert tuple(d[0, 5]) == (51, 51, 51)                                     # 0.2 * 255
    # the input is not modified
    assert img[0, 1] == 7.0


def test_batches_and_out():
    ov = Overlay(G, target_mm=(5.0, 35.0), guide_angles_deg=(45,))
    states = [est((0.0, 20.0), 40.0, status="tracking"), NeedleState(found=False),
              est((-5.0, 25.0), 50.0, status="coasting")]
    frames = np.stack([grey_image()] * 3)
    batch = ov.render(frames, states)
    assert batch.shape == (3, 500, 400, 3) and batch.dtype == np.uint8
    for k in range(3):
        assert np.array_equal(batch[k], ov.render(frames[k], states[k]))
    same = ov.render(frames, states[0])                    # one state for every frame
    assert np.array_equal(same[2], batch[0])
    out = np.zeros_like(batch)
    assert ov.render(frames, states, out=out) is out and np.array_equal(out, batch)
    prims = [ov.primitives(s) for s in states]
    assert np.array_equal(ov.render(frames, primitives=prims), batch)
    with pytest.raises(InputError, match=r"render\(state\): expected one value or a "
                                         r"sequence of 3"):
        ov.render(frames, states[:2])
    with pytest.raises(InputError, match=r"render\(out\)"):
        ov.render(frames, states, out=np.zeros((3, 500, 400), np.uint8))


def test_sizes_scale_with_the_image():
    def needle_pixels(shape, spacing):
        g = ImageGeometry(spacing_mm=(spacing, spacing), origin_mm=(0.0, -20.0), shape=shape)
        ov = Overlay(g, ruler=False, labels=False)
        s = NeedleEstimate(found=True, tip_mm=(0.0, 25.0), entry_mm=(-20.0, 5.0),
                           direction=(R2, R2), angle_deg=45.0)
        rgb = ov.render(np.zeros(shape, np.float32), s)
        length_px = 20 * math.sqrt(2) / spacing
        return np.all(rgb == np.array(PALETTE["needle"], np.uint8), axis=-1).sum() / length_px

    small = needle_pixels((200, 160), 0.25)           # same field of view, 2.5x fewer pixels
    large = needle_pixels((1000, 800), 0.05)
    assert large > 1.5 * small                        # thicker lines on the larger image


def test_module_level_render():
    s = est((0.0, 25.0), 45.0)
    a = render(grey_image(), s, geometry=G, target_mm=(5, 35))
    b = Overlay(G, target_mm=(5, 35)).render(grey_image(), s)
    assert np.array_equal(a, b)


def test_geometry_without_shape():
    g = ImageGeometry(spacing_mm=(0.1, 0.1), origin_mm=(0.0, -20.0))
    ov = Overlay(g, target_mm=(5.0, 35.0))
    rgb = ov.render(grey_image(), est((0.0, 25.0), 45.0))
    assert rgb.shape == (500, 400, 3)
    with pytest.raises(InputError, match=r"primitives\(shape\)"):
        ov.primitives(None)
    with pytest.raises(InputError, match=r"target_mm\): expected a target inside the image"):
        ov.render(np.zeros((100, 100), np.float32), None)     # target outside a small image


# -- bad input -----------------------------------------------------------------------------
def test_bad_input():
    with pytest.raises(InputError, match=r"Overlay\(target_mm\): expected a target inside the "
                                         r"image \(x in \[-20, 19.9\] mm, z in \[0, 49.9\] mm\)"
                                         r"; got \(0.0, 60.0\)"):
        Overlay(G, target_mm=(0.0, 60.0))
    ov = Overlay(G)
    with pytest.raises(InputError, match=r"set_target\(target_mm\): expected a target inside"):
        ov.set_target((-25.0, 10.0))
    with pytest.raises(InputError, match=r"target_mm\): expected a finite point"):
        ov.set_target((float("nan"), 10.0))
    with pytest.raises(InputError, match=r"render\(image\): expected an image of shape "
                                         r"\(500, 400\)"):
        ov.render(np.zeros((400, 500), np.float32), None)
    with pytest.raises(InputError, match=r"render\(image\): expected uint8 or floating"):
        ov.render(np.zeros((500, 400), np.int16), None)
    with pytest.raises(InputError, match=r"render\(image\): expected a grey image"):
        ov.render(np.zeros((1, 500, 400, 3), np.uint8), None)
    with pytest.raises(InputError, match=r"primitives\(state\): expected a NeedleState"):
        ov.primitives({"found": True})
    with pytest.raises(InputError, match=r"guide_angles_deg"):
        Overlay(G, guide_angles_deg=(0,))
    with pytest.raises(InputError, match=r"Overlay\(geometry\)"):
        Overlay((0.1, 0.1))
    with pytest.raises(InputError, match=r"display_range"):
        ov.render(grey_image(), None, display_range=(1.0, 1.0))


def test_gpu_like_input_is_brought_to_the_host():
    class FakeDeviceArray:
        """Stands in for a CuPy array: has __cuda_array_interface__ and get()."""
        __cuda_array_interface__ = {}

        def __init__(self, a):
            self.a = a

        def get(self):
            return self.a

    s = est((0.0, 25.0), 45.0)
    ov = Overlay(G)
    assert np.array_equal(ov.render(FakeDeviceArray(grey_image()), s),
                          ov.render(grey_image(), s))
