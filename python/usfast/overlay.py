"""Guidance overlay: the geometry a clinician needs, as plain data and drawn on the image.

Conventions (DESIGN.md): points are ``(x, z)`` (lateral, depth); ``*_mm`` in millimetres of the
:class:`usfast.ImageGeometry`, ``*_px`` in (fractional) pixels of the image, with pixel centres
at integer positions. Angles in degrees from the probe face.

:meth:`Overlay.primitives` returns :class:`OverlayPrimitives`: plain dataclasses (serialisable to
JSON with :meth:`OverlayPrimitives.to_json`) that a vendor can draw in its own UI:

* ``needle_axis``: the visible shaft, entry point to tip.
* ``trajectory``: the ray from the tip along the needle, to the target's depth when a target
  lies ahead of the tip, otherwise to where it leaves the image (the bottom, or a side).
* ``tip``, ``entry``, ``target`` markers.
* ``distance_to_target_mm``: distance from the tip to the target measured along the path (the
  projection of target - tip on the needle direction; negative once the tip is past it).
* ``miss_distance_mm``: perpendicular distance from the target to the needle's line: how far
  the needle passes from the target if it goes on straight.
* ``angle_deg``: insertion angle; ``guide_lines`` for fixed needle-guide angles; ``ruler``: a
  depth ruler in mm; ``labels``: the texts, with where to put them.

:meth:`Overlay.render` draws them with OpenCV (anti-aliased, outlined text, the colour-blind
safe Okabe-Ito palette, sizes scaled to the image) onto an RGB uint8 copy of the image.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ._arrays import host_array
from ._errors import fail
from .estimate import NeedleEstimate
from .geometry import ImageGeometry
from .tracking import _clip_line

__all__ = ["Overlay", "OverlayPrimitives", "Segment", "Marker", "Label", "Tick", "Ruler",
           "OKABE_ITO", "PALETTE", "render", "trajectory_metrics"]

#: Okabe & Ito (2008) colour-blind-safe palette, RGB.
OKABE_ITO = {
    "black": (0, 0, 0), "orange": (230, 159, 0), "sky_blue": (86, 180, 233),
    "bluish_green": (0, 158, 115), "yellow": (240, 228, 66), "blue": (0, 114, 178),
    "vermillion": (213, 94, 0), "reddish_purple": (204, 121, 167), "white": (255, 255, 255),
}

#: Colour of each primitive (RGB); pass ``palette=`` to Overlay to change any of them.
PALETTE = {
    "needle": OKABE_ITO["orange"], "trajectory": OKABE_ITO["yellow"],
    "tip": OKABE_ITO["vermillion"], "entry": OKABE_ITO["sky_blue"],
    "target": OKABE_ITO["bluish_green"], "guide": OKABE_ITO["reddish_purple"],
    "ruler": OKABE_ITO["white"], "text": OKABE_ITO["white"], "outline": OKABE_ITO["black"],
}


def _host(func, x):
    return host_array(func, x)


# -- primitives ----------------------------------------------------------------------------
def _tup(v):
    return tuple(float(a) for a in v)


@dataclass
class Segment:
    """A line from ``p0`` to ``p1``; ``dashed`` for predictions and guides."""
    name: str
    p0_mm: tuple
    p1_mm: tuple
    p0_px: tuple
    p1_px: tuple
    color: tuple
    dashed: bool = False

    @property
    def length_mm(self):
        return math.hypot(self.p1_mm[0] - self.p0_mm[0], self.p1_mm[1] - self.p0_mm[1])


@dataclass
class Marker:
    """A point; ``shape`` is ``"dot"`` (filled disc), ``"ring"`` or ``"crosshair"``."""
    name: str
    p_mm: tuple
    p_px: tuple
    shape: str
    color: tuple


@dataclass
class Label:
    """A text whose baseline starts at ``p_px`` (left end)."""
    name: str
    text: str
    p_px: tuple
    color: tuple


@dataclass
class Tick:
    """A ruler tick at depth ``z_mm`` from ``p0_px`` to ``p1_px``; ``text`` empty for minor."""
    z_mm: float
    p0_px: tuple
    p1_px: tuple
    major: bool
    text: str


@dataclass
class Ruler:
    """Depth ruler: a spine from ``p0_px`` to ``p1_px`` and its ticks."""
    p0_px: tuple
    p1_px: tuple
    ticks: list
    color: tuple
    unit: str = "mm"


_NESTED = {"needle_axis": Segment, "trajectory": Segment, "tip": Marker, "entry": Marker,
           "target": Marker, "ruler": Ruler}
_LISTS = {"guide_lines": Segment, "labels": Label}


def _from(cls, d):
    if d is None:
        return None
    kw = {}
    for f in fields(cls):
        v = d[f.name]
        if f.name == "ticks":
            v = [_from(Tick, t) for t in v]
        elif isinstance(v, list):
            v = tuple(v)
        kw[f.name] = v
    return cls(**kw)


@dataclass
class OverlayPrimitives:
    """Everything the overlay shows for one frame (see the module docstring).

    Entries that do not apply are None (no needle: no axis, trajectory, tip, entry, angle; no
    target: no target marker and no distances). Never NaN.
    """
    shape: tuple
    found: bool
    status: str
    needle_axis: Segment | None = None
    trajectory: Segment | None = None
    tip: Marker | None = None
    entry: Marker | None = None
    target: Marker | None = None
    distance_to_target_mm: float | None = None
    miss_distance_mm: float | None = None
    angle_deg: float | None = None
    guide_lines: list = field(default_factory=list)
    ruler: Ruler | None = None
    labels: list = field(default_factory=list)

    def to_dict(self):
        return asdict(self)

    def to_json(self, **kw):
        return json.dumps(self.to_dict(), allow_nan=False, **kw)

    @classmethod
    def from_dict(cls, d):
        kw = {}
        for f in fields(cls):
            v = d[f.name]
            if f.name in _NESTED:
                v = _from(_NESTED[f.name], v)
            elif f.name in _LISTS:
                v = [_from(_LISTS[f.name], x) for x in v]
            elif f.name == "shape":
                v = tuple(v)
            kw[f.name] = v
        return cls(**kw)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


def trajectory_metrics(tip_mm, direction, target_mm):
    """``(distance_along_path_mm, miss_distance_mm)`` from a tip moving along ``direction``
    (need not be unit length) to ``target_mm``; points (x, z) in mm.

    The distance along the path is the projection of ``target - tip`` on the direction (negative
    when the target is behind the tip); the miss distance is the perpendicular distance from
    the target to the needle's line.
    """
    ux, uz = float(direction[0]), float(direction[1])
    n = math.hypot(ux, uz)
    if not n > 0:
        raise fail("trajectory_metrics", "direction", "a non-zero vector (dx, dz)",
                   (ux, uz))
    ux, uz = ux / n, uz / n
    dx, dz = target_mm[0] - tip_mm[0], target_mm[1] - tip_mm[1]
    return dx * ux + dz * uz, abs(dx * uz - dz * ux)


# -- the overlay ---------------------------------------------------------------------------
def _finite_point(func, arg, p):
    try:
        x, z = (float(a) for a in p)
    except (TypeError, ValueError):
        raise fail(func, arg, "a point (x, z) in mm", repr(p)) from None
    if not (math.isfinite(x) and math.isfinite(z)):
        raise fail(func, arg, "a finite point (x, z) in mm", (x, z))
    return (x, z)


class Overlay:
    """Guidance overlay for images of one geometry.

    geometry: :class:`usfast.ImageGeometry`; its ``shape`` is needed for :meth:`primitives`
        (or pass ``shape=``); :meth:`render` takes it from the image.
    target_mm: optional target point (x, z) in mm; must lie inside the image.
    guide_angles_deg: angles (degrees from the probe face, in (0, 90]) of a needle guide's
        fixed paths, drawn as dashed lines from ``guide_origin_mm``.
    guide_side: ``"left"`` or ``"right"``: the side the guide holds the needle on.
    guide_origin_mm: where the guide paths start; default the top corner on ``guide_side``.
    ruler: draw a depth ruler; ``ruler_step_mm`` between labelled ticks (minor ticks halfway);
        ``ruler_side``: ``"right"`` or ``"left"`` edge.
    labels: include texts (angle, distances, status).
    palette: dict overriding entries of :data:`PALETTE` (RGB).
    """

    def __init__(self, geometry, target_mm=None, guide_angles_deg=(), *, guide_side="left",
                 guide_origin_mm=None, ruler=True, ruler_step_mm=10.0, ruler_side="right",
                 labels=True, palette=None):
        f = "Overlay"
        if not isinstance(geometry, ImageGeometry):
            raise fail(f, "geometry", "an ImageGeometry", type(geometry).__name__)
        self.geometry = geometry
        try:
            angles_in = [] if guide_angles_deg is None else \
                [float(a) for a in np.atleast_1d(guide_angles_deg)]
        except (TypeError, ValueError):
            raise fail(f, "guide_angles_deg", "angles in degrees", guide_angles_deg) from None
        angles = []
        for a in angles_in:
            if not (0.0 < a <= 90.0):
                raise fail(f, "guide_angles_deg", "angles in (0, 90] degrees",
                           guide_angles_deg)
            angles.append(a)
        self.guide_angles_deg = tuple(angles)
        if guide_side not in ("left", "right"):
            raise fail(f, "guide_side", "'left' or 'right'", repr(guide_side))
        self.guide_side = guide_side
        self.guide_origin_mm = (None if guide_origin_mm is None
                                else _finite_point(f, "guide_origin_mm", guide_origin_mm))
        step = float(ruler_step_mm)
        if not (math.isfinite(step) and step > 0):
            raise fail(f, "ruler_step_mm", "a positive step in mm", ruler_step_mm)
        self.ruler, self.ruler_step_mm = bool(ruler), step
        if ruler_side not in ("left", "right"):
            raise fail(f, "ruler_side", "'left' or 'right'", repr(ruler_side))
        self.ruler_side = ruler_side
        self.labels = bool(labels)
        self.palette = dict(PALETTE)
        for k, v in (palette or {}).items():
            if k not in PALETTE:
                raise fail(f, "palette", f"keys among {sorted(PALETTE)}", repr(k))
            self.palette[k] = tuple(int(c) for c in v)
        self.target_mm = None
        self.set_target(target_mm, _func=f)

    def set_target(self, target_mm, *, _func="Overlay.set_target"):
        """Set (or clear, with None) the target point (x, z) in mm."""
        if target_mm is None:
            self.target_mm = None
            return
        p = _finite_point(_func, "target_mm", target_mm)
        if self.geometry.shape is not None:
            self._check_target(_func, p, self.geometry.shape)
        self.target_mm = p

    def _check_target(self, func, p, shape):
        x0, x1, z0, z1 = self.geometry.extent_mm(shape)
        if not (x0 <= p[0] <= x1 and z0 <= p[1] <= z1):
            raise fail(func, "target_mm", f"a target inside the image (x in [{x0:g}, {x1:g}] "
                       f"mm, z in [{z0:g}, {z1:g}] mm)", p)

    # -- geometry --------------------------------------------------------------------------
    def _px(self, p):
        (dz, dx), (z0, x0) = self.geometry.spacing_mm, self.geometry.origin_mm
        return ((p[0] - x0) / dx, (p[1] - z0) / dz)

    def _shape(self, func, shape):
        if shape is None:
            shape = self.geometry.shape
        if shape is None:
            raise fail(func, "shape", "an image shape (rows, cols), from the geometry or "
                       "passed in")
        shape = (int(shape[0]), int(shape[1]))
        if self.geometry.shape is not None and shape != self.geometry.shape:
            raise fail(func, "shape", f"the geometry's shape {self.geometry.shape}", shape)
        return shape

    def primitives(self, state, *, shape=None):
        """The overlay of one frame as :class:`OverlayPrimitives`.

        state: a :class:`usfast.NeedleState` or :class:`usfast.NeedleEstimate` (or None: no
            needle), in this overlay's geometry.
        shape: ``(rows, cols)`` of the image when the geometry carries none.
        """
        f = "Overlay.primitives"
        shape = self._shape(f, shape)
        if state is not None and not isinstance(state, NeedleEstimate):
            raise fail(f, "state", "a NeedleState, NeedleEstimate or None",
                       type(state).__name__)
        if self.target_mm is not None:
            self._check_target(f, self.target_mm, shape)
        pal = self.palette
        box = self.geometry.extent_mm(shape)
        rows, cols = shape
        sc = _scale(shape)
        found = bool(state is not None and state.found)
        status = getattr(state, "status", None) if state is not None else None
        if status is None:
            status = "detected" if found else "not found"
        prim = OverlayPrimitives(shape=(rows, cols), found=found, status=status)

        # target
        tgt = self.target_mm
        if tgt is not None:
            prim.target = Marker("target", tgt, self._px(tgt), "crosshair", pal["target"])

        # needle
        u = None
        if found:
            tip = _tup(state.tip_mm)
            entry = _tup(state.entry_mm)
            ux, uz = state.direction
            n = math.hypot(ux, uz)
            if not n > 1e-12:
                ux, uz = tip[0] - entry[0], tip[1] - entry[1]
                n = math.hypot(ux, uz)
            prim.tip = Marker("tip", tip, self._px(tip), "dot", pal["tip"])
            prim.entry = Marker("entry", entry, self._px(entry), "dot", pal["entry"])
            prim.angle_deg = float(state.angle_deg)
            if n > 1e-12:
                u = (ux / n, uz / n)
                coasting = status == "coasting"
                prim.needle_axis = Segment("needle_axis", entry, tip, self._px(entry),
                                           self._px(tip), pal["needle"], dashed=coasting)
                end = self._trajectory_end(tip, u, box)
                if end is not None:
                    prim.trajectory = Segment("trajectory", tip, end, self._px(tip),
                                              self._px(end), pal["trajectory"], dashed=True)
                if tgt is not None:
                    along, miss = trajectory_metrics(tip, u, tgt)
                    prim.distance_to_target_mm = along
                    prim.miss_distance_mm = miss

        # needle-guide lines
        for a in self.guide_angles_deg:
            seg = self._guide(a, box)
            if seg is not None:
                prim.guide_lines.append(seg)

        if self.ruler:
            prim.ruler = self._ruler(shape, box, sc)
        if self.labels:
            prim.labels = self._labels(prim, shape, sc)
        return prim

    def _trajectory_end(self, tip, u, box):
        rng = _clip_line(tip[0], tip[1], u[0], u[1], box)
        if rng is None or rng[1] <= 0.0:
            return None
        t_end = rng[1]
        tgt = self.target_mm
        if tgt is not None and u[1] > 1e-12 and tgt[1] > tip[1]:
            t_end = min(t_end, (tgt[1] - tip[1]) / u[1])
        return (tip[0] + t_end * u[0], tip[1] + t_end * u[1])

    def _guide(self, angle, box):
        a = math.radians(angle)
        left = self.guide_side == "left"
        u = (math.cos(a) if left else -math.cos(a), math.sin(a))
        if abs(u[0]) < 1e-12:
            u = (0.0, 1.0)
        o = self.guide_origin_mm or ((box[0] if left else box[1]), box[2])
        rng = _clip_line(o[0], o[1], u[0], u[1], box)
        if rng is None or rng[1] <= max(rng[0], 0.0):
            return None
        t0, t1 = max(rng[0], 0.0), rng[1]
        p0 = (o[0] + t0 * u[0], o[1] + t0 * u[1])
        p1 = (o[0] + t1 * u[0], o[1] + t1 * u[1])
        return Segment(f"guide_{angle:g}", p0, p1, self._px(p0), self._px(p1),
                       self.palette["guide"], dashed=True)

    def _ruler(self, shape, box, sc):
        rows, cols = shape
        margin = max(2.0, 4.0 * sc)
        major_len = max(6.0, 12.0 * sc)
        right = self.ruler_side == "right"
        xs = (cols - 1) - margin if right else margin
        sgn = -1.0 if right else 1.0
        z0, z1 = box[2], box[3]
        half = self.ruler_step_mm / 2.0
        ticks = []
        k = math.ceil(z0 / half - 1e-9)
        while k * half <= z1 + 1e-9:
            z = k * half
            major = k % 2 == 0
            ln = major_len if major else major_len / 2.0
            zp = self._px((0.0, z))[1]
            ticks.append(Tick(z, (xs, zp), (xs + sgn * ln, zp), major,
                              f"{z:g}" if major else ""))
            k += 1
        return Ruler((xs, 0.0), (xs, rows - 1.0), ticks, self.palette["ruler"])

    def _labels(self, prim, shape, sc):
        """Texts stacked in the bottom corner away from the ruler (deep tissue, usually free
        of the needle and of the entry point)."""
        rows, cols = shape
        col = self.palette["text"]
        texts = []
        if not prim.found:
            texts.append(("status", "NO NEEDLE"))
        elif prim.status == "coasting":
            texts.append(("status", "COASTING"))
        if prim.angle_deg is not None:
            texts.append(("angle", f"angle {prim.angle_deg:.0f} deg"))
        if prim.distance_to_target_mm is not None:
            d = prim.distance_to_target_mm
            texts.append(("distance", f"to target {d:.1f} mm" if d >= 0
                          else f"past target {-d:.1f} mm"))
            texts.append(("miss", f"miss {prim.miss_distance_mm:.1f} mm"))
        line_h = 30.0 * _sizes(shape)["font"]
        x = 6.0 * sc if self.ruler_side == "right" else cols / 2.0
        y = rows - 1 - 6.0 * sc - (len(texts) - 1) * line_h
        out = []
        for k, (name, text) in enumerate(texts):
            out.append(Label(name, text, (x, y + k * line_h), col))
        return out

    # -- drawing ---------------------------------------------------------------------------
    def render(self, image, state=None, *, primitives=None, display_range=(0.0, 1.0),
               out=None):
        """Draw the overlay onto an RGB uint8 copy of ``image``.

        image: ``(rows, cols)`` or a batch ``(frames, rows, cols)``; uint8 is shown as is,
            floating-point images are mapped from ``display_range`` (default [0, 1], the range
            of ``log_compress``) to 0-255, rounded and clipped; NaN and infinite pixels are
            drawn black.
        state: one :class:`usfast.NeedleState` / :class:`usfast.NeedleEstimate` / None, or for
            a batch one per frame (a single one is used for every frame).
        primitives: precomputed :class:`OverlayPrimitives` (one, or one per frame) instead of
            ``state``.
        out: optional uint8 array ``(..., rows, cols, 3)`` to draw into.
        Returns ``(rows, cols, 3)`` or ``(frames, rows, cols, 3)`` uint8 RGB.
        """
        import cv2

        f = "Overlay.render"
        img = _host(f, image)
        if img.ndim not in (2, 3):
            raise fail(f, "image", "a grey image (rows, cols) or a batch (frames, rows, cols)",
                       img.shape)
        if not (img.dtype == np.uint8 or np.issubdtype(img.dtype, np.floating)):
            raise fail(f, "image", "uint8 or floating-point pixels", img.dtype)
        if min(img.shape) < 1:
            raise fail(f, "image", "a non-empty image", img.shape)
        self.geometry.check_image(f, "image", img.shape)
        shape = img.shape[-2:]
        batch = img.ndim == 3
        n = img.shape[0] if batch else 1
        frames = img if batch else img[None]
        try:
            lo, hi = (float(v) for v in display_range)
        except (TypeError, ValueError):
            raise fail(f, "display_range", "(low, high)", display_range) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise fail(f, "display_range", "finite (low, high) with high > low", display_range)

        def per_frame(arg, name, kinds):
            if arg is None or isinstance(arg, kinds):
                return [arg] * n
            seq = list(arg)
            if not batch or len(seq) != n:
                raise fail(f, name, f"one value or a sequence of {n} (one per frame)",
                           f"{len(seq)} values")
            return seq

        if primitives is not None:
            prims = per_frame(primitives, "primitives", OverlayPrimitives)
            for p in prims:
                if not isinstance(p, OverlayPrimitives) or tuple(p.shape) != tuple(shape):
                    raise fail(f, "primitives", f"OverlayPrimitives for shape {tuple(shape)}",
                               getattr(p, "shape", type(p).__name__))
        else:
            states = per_frame(state, "state", NeedleEstimate)
            prims = [self.primitives(s, shape=shape) for s in states]

        oshape = (*img.shape, 3)
        if out is None:
            out = np.empty(oshape, np.uint8)
        elif (not isinstance(out, np.ndarray) or out.shape != oshape or out.dtype != np.uint8
              or not out.flags.c_contiguous):
            raise fail(f, "out", f"a C-contiguous uint8 array of shape {oshape}",
                       getattr(out, "shape", type(out).__name__))
        outs = out if batch else out[None]
        for k in range(n):
            gray = _to_uint8(frames[k], lo, hi)
            cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB, dst=outs[k])
            _draw(cv2, outs[k], prims[k], self.palette)
        return out


def render(image, state=None, *, geometry, target_mm=None, guide_angles_deg=(), **kw):
    """One-off :meth:`Overlay.render`: ``Overlay(geometry, target_mm, guide_angles_deg)``
    drawn on ``image``; other keywords go to :meth:`Overlay.render`."""
    return Overlay(geometry, target_mm, guide_angles_deg).render(image, state, **kw)


# -- drawing helpers -----------------------------------------------------------------------
_SHIFT = 4
_ONE = 1 << _SHIFT


def _scale(shape):
    return max(min(shape) / 512.0, 0.5)


def _to_uint8(frame, lo, hi):
    """Display mapping: uint8 as is; floats (x - lo) * 255 / (hi - lo), rounded, clipped to
    0..255, non-finite values 0. Two passes with OpenCV (a third when lo != 0)."""
    import cv2

    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    if frame.dtype not in (np.float32, np.float64):
        frame = frame.astype(np.float32)
    a = np.ascontiguousarray(frame)
    if lo != 0.0:
        a = np.subtract(a, lo, dtype=a.dtype)
    # x <= 0 (and NaN) -> 0, then scale with saturation (inf -> 0 as well)
    a = cv2.threshold(a, 0.0, 0.0, cv2.THRESH_TOZERO)[1]
    return cv2.convertScaleAbs(a, alpha=255.0 / (hi - lo))


def _fx(p):
    return (int(round(p[0] * _ONE)), int(round(p[1] * _ONE)))


def _sizes(shape):
    s = _scale(shape)
    return {"thick": max(1, int(round(2.0 * s))), "radius": max(3.0, 6.0 * s),
            "dash": max(6.0, 12.0 * s), "gap": max(4.0, 8.0 * s),
            "font": max(0.4, 0.6 * s), "font_thick": max(1, int(round(1.2 * s)))}


def _line(cv2, img, p0, p1, color, thick, dashed=False, dash=10.0, gap=6.0):
    if not dashed:
        cv2.line(img, _fx(p0), _fx(p1), color, thick, cv2.LINE_AA, _SHIFT)
        return
    L = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    if L <= 0:
        return
    # all dashes in one call: each dash a 2-point open polyline
    t0 = np.arange(0.0, L, dash + gap)
    t1 = np.minimum(t0 + dash, L)
    ts = np.stack([t0, t1], axis=1)[..., None]                       # (n, 2, 1)
    d = np.array([p1[0] - p0[0], p1[1] - p0[1]]) / L
    pts = np.rint((np.array(p0) + ts * d) * _ONE).astype(np.int32)   # (n, 2, 2)
    cv2.polylines(img, list(pts), False, color, thick, cv2.LINE_AA, _SHIFT)


def _text(cv2, img, text, p, color, outline, sz):
    org = (int(round(p[0])), int(round(p[1])))
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, text, org, font, sz["font"], outline, sz["font_thick"] + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, sz["font"], color, sz["font_thick"], cv2.LINE_AA)


def _marker(cv2, img, m, sz, outline):
    r = sz["radius"]
    c = _fx(m.p_px)
    col = tuple(int(v) for v in m.color)
    if m.shape == "dot":
        cv2.circle(img, c, int(round((r + 1) * _ONE)), outline, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(img, c, int(round(r * _ONE)), col, -1, cv2.LINE_AA, _SHIFT)
    elif m.shape == "ring":
        cv2.circle(img, c, int(round(r * _ONE)), col, sz["thick"], cv2.LINE_AA, _SHIFT)
    else:  # crosshair
        R = 1.6 * r
        x, z = m.p_px
        cv2.circle(img, c, int(round(R * _ONE)), col, sz["thick"], cv2.LINE_AA, _SHIFT)
        for a, b in (((x - 2 * R, z), (x - 0.5 * R, z)), ((x + 0.5 * R, z), (x + 2 * R, z)),
                     ((x, z - 2 * R), (x, z - 0.5 * R)), ((x, z + 0.5 * R), (x, z + 2 * R))):
            cv2.line(img, _fx(a), _fx(b), col, sz["thick"], cv2.LINE_AA, _SHIFT)


def _draw(cv2, img, prim, pal):
    sz = _sizes(prim.shape)
    outline = tuple(int(v) for v in pal["outline"])
    th = sz["thick"]

    def seg(s, thick=th):
        _line(cv2, img, s.p0_px, s.p1_px, tuple(int(v) for v in s.color), thick, s.dashed,
              sz["dash"], sz["gap"])

    for g in prim.guide_lines:
        seg(g, max(1, th - 1))
    if prim.ruler is not None:
        r = prim.ruler
        col = tuple(int(v) for v in r.color)
        _line(cv2, img, r.p0_px, r.p1_px, col, max(1, th - 1))
        for t in r.ticks:
            _line(cv2, img, t.p0_px, t.p1_px, col, max(1, th - 1))
            if t.text:
                right = t.p1_px[0] < t.p0_px[0]
                w = cv2.getTextSize(t.text, cv2.FONT_HERSHEY_SIMPLEX, sz["font"],
                                    sz["font_thick"])[0]
                x = t.p1_px[0] - w[0] - 3 if right else t.p1_px[0] + 3
                y = min(max(t.p1_px[1] + w[1] / 2, w[1] + 2), prim.shape[0] - 3)
                _text(cv2, img, t.text, (x, y), col, outline, sz)
        if r.unit and r.ticks:
            right = r.ticks[0].p1_px[0] < r.ticks[0].p0_px[0]
            w = cv2.getTextSize(r.unit, cv2.FONT_HERSHEY_SIMPLEX, sz["font"],
                                sz["font_thick"])[0]
            x = r.p0_px[0] - w[0] - 3 if right else r.p0_px[0] + 3
            _text(cv2, img, r.unit, (x, prim.shape[0] - 3 - 2 * w[1]), col, outline, sz)
    if prim.trajectory is not None:
        seg(prim.trajectory)
    if prim.needle_axis is not None:
        seg(prim.needle_axis, th + 1)
    if prim.target is not None:
        _marker(cv2, img, prim.target, sz, outline)
    if prim.entry is not None:
        _marker(cv2, img, prim.entry, sz, outline)
    if prim.tip is not None:
        _marker(cv2, img, prim.tip, sz, outline)
    for lab in prim.labels:
        _text(cv2, img, lab.text, lab.p_px, tuple(int(v) for v in lab.color), outline, sz)
