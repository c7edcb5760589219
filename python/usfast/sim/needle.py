"""The needle: a straight specular shaft with comet tail, shadow and tip, and its ground truth.

Geometry (mm, points ``(x, z)``): the needle comes from the ``side`` of the image ("left": the
hub is to the left, the needle points right and down) at ``angle_deg`` to the probe face
(lateral axis), strictly between 0 and 90 degrees, and ends at ``tip_mm``. The shaft runs back
from the tip without end (the hub is outside the image).

The drawn line is the echo of the shaft's reflecting (upper) surface, and it is the ground truth:
``tip`` is the physical tip; ``entry`` is where the shaft axis crosses the border of the field
of view; the *visible* part is the part of the shaft inside both the field of view and the
elevational slice (``visible_mm`` = distances back from the tip that bound the in-plane part,
``(0, inf)`` for a needle fully in plane). Nothing outside the visible part is drawn.

Appearance comes from a :class:`usfast.sim.Look`: brightness ``needle_db`` times
``Look.needle_gain(incidence)`` where the incidence is the angle between shaft and the
beam-perpendicular (the needle angle for a linear probe; it varies along the needle for a
curvilinear one), a comet tail of reverberations spaced by the needle diameter below the shaft,
a shadow below it, a bright or fading tip and a slight texture along the shaft. The comet tail
is scaled by the specular share of the echo (:meth:`Look.needle_specular_fraction`), so steep
needles ring less.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from . import _check as ck
from ._specular import Specular

__all__ = ["Needle"]

SIDES = ("left", "right")
_FAR = 1e4  # mm: "the hub is far away"


def _clip_ray(tip, u, rect):
    """Range [t_lo, t_hi] of t >= 0 with tip - t*u inside rect (x0, x1, z0, z1); None if empty."""
    x0, x1, z0, z1 = rect
    t_lo, t_hi = 0.0, _FAR
    for p, dirn, lo, hi in ((tip[0], -u[0], x0, x1), (tip[1], -u[1], z0, z1)):
        if abs(dirn) < 1e-12:
            if p < lo or p > hi:
                return None
            continue
        ta, tb = (lo - p) / dirn, (hi - p) / dirn
        if ta > tb:
            ta, tb = tb, ta
        t_lo, t_hi = max(t_lo, ta), min(t_hi, tb)
    if t_hi < t_lo:
        return None
    return t_lo, t_hi


@dataclass(frozen=True)
class Needle:
    """A needle in the image plane (see the module docstring).

    tip_mm: (x, z) of the tip. angle_deg: angle to the probe face, in (0, 90).
    side: "left" or "right", where the needle comes from. diameter_mm: outer diameter (sets the
    comet-tail spacing and the shadow onset; 18 G = 1.27, 22 G = 0.72, 25 G = 0.51).
    visible_mm: (near, far) distances back from the tip bounding the in-plane part of the shaft.
    elevation_gain: amplitude factor from the elevational beam profile (1 = in the plane).
    phase: phase (rad) of the coherent echo. texture_seed: seed of the texture along the shaft.
    """

    tip_mm: tuple
    angle_deg: float
    side: str = "left"
    diameter_mm: float = 0.72
    visible_mm: tuple = (0.0, math.inf)
    elevation_gain: float = 1.0
    phase: float = 0.0
    texture_seed: int = 0

    def __post_init__(self):
        f = "Needle"
        s = object.__setattr__
        s(self, "tip_mm", ck.point(f, "tip_mm", self.tip_mm))
        s(self, "angle_deg", ck.angle(f, "angle_deg", self.angle_deg))
        ck.choice(f, "side", self.side, SIDES)
        s(self, "diameter_mm", ck.positive(f, "diameter_mm", self.diameter_mm))
        try:
            a, b = (float(v) for v in self.visible_mm)
        except (TypeError, ValueError):
            raise ck.fail(f, "visible_mm", "(near, far) distances back from the tip",
                          repr(self.visible_mm)) from None
        if not (math.isfinite(a) and a >= 0 and b >= a) or math.isnan(b):
            raise ck.fail(f, "visible_mm", "(near, far) with 0 <= near <= far",
                          self.visible_mm)
        s(self, "visible_mm", (a, b))
        s(self, "elevation_gain", ck.in_range(f, "elevation_gain", self.elevation_gain, 0.0,
                                              1.0))
        s(self, "phase", ck.number(f, "phase", self.phase))
        s(self, "texture_seed", ck.seed(f, "texture_seed", self.texture_seed))

    def replace(self, **changes) -> "Needle":
        return replace(self, **changes)

    @property
    def direction(self):
        """Unit vector (dx, dz) along the shaft, pointing into the tissue (towards the tip)."""
        a = math.radians(self.angle_deg)
        sx = 1.0 if self.side == "left" else -1.0
        return np.array([sx * math.cos(a), math.sin(a)])

    def point_back(self, t_mm):
        """Point (x, z) on the shaft ``t_mm`` back from the tip."""
        return np.asarray(self.tip_mm) - float(t_mm) * self.direction

    # -- where it is seen ------------------------------------------------------------------
    def _intervals(self, rect):
        """(fov, vis): distance-back intervals inside the rectangle and inside view and plane."""
        fov = _clip_ray(np.asarray(self.tip_mm), self.direction, rect)
        if fov is None:
            return None, None
        a = max(self.visible_mm[0], fov[0])
        b = min(self.visible_mm[1], fov[1])
        return fov, ((a, b) if b > a else None)

    def truth(self, geometry) -> dict:
        """Ground truth on an :class:`usfast.ImageGeometry` (with a shape): a dict with
        ``tip_mm``/``tip_px``, ``entry_mm``/``entry_px`` (NaN if the shaft misses the image),
        ``angle_deg``, ``side``, ``visible`` (anything drawn), ``visible_length_mm``,
        ``vis0_*`` (visible end nearer the entry) and ``vis1_*`` (visible end nearer the tip),
        ``tip_visible`` and ``inserted_mm`` (length of the shaft inside the image)."""
        rect = _rect(geometry)
        fov, vis = self._intervals(rect)
        tip = np.asarray(self.tip_mm, dtype=np.float64)
        nan2 = np.array([np.nan, np.nan])
        entry = self.point_back(fov[1]) if fov is not None else nan2
        if vis is not None:
            v0, v1 = self.point_back(vis[1]), self.point_back(vis[0])
            vlen = vis[1] - vis[0]
        else:
            v0 = v1 = nan2
            vlen = 0.0
        tip_vis = vis is not None and vis[0] <= 1e-9
        def pt(p):
            return (float(p[0]), float(p[1]))

        out = {"tip_mm": pt(tip), "tip_px": pt(geometry.mm_to_px(tip)),
               "entry_mm": pt(entry), "entry_px": pt(geometry.mm_to_px(entry)),
               "vis0_mm": pt(v0), "vis0_px": pt(geometry.mm_to_px(v0)),
               "vis1_mm": pt(v1), "vis1_px": pt(geometry.mm_to_px(v1)),
               "angle_deg": self.angle_deg, "side": self.side, "visible": vis is not None,
               "visible_length_mm": float(vlen), "tip_visible": bool(tip_vis),
               "inserted_mm": float(fov[1] - fov[0]) if fov is not None else 0.0}
        return out

    # -- how it is drawn -------------------------------------------------------------------
    def specular(self, look, rect, *, margin_mm=5.0):
        """The :class:`Specular` segment drawn for this needle in the rectangle ``rect`` =
        (x_min, x_max, z_min, z_max) mm, or None when no part of it is visible there."""
        fov, vis = self._intervals(rect)
        if vis is None:
            return None
        near = self.visible_mm[0]
        far = min(self.visible_mm[1], fov[1] + margin_mm)
        if far <= near:
            return None
        p_front = self.point_back(near)
        p_back = self.point_back(far)
        r = np.random.default_rng(np.random.SeedSequence([self.texture_seed, 11]))
        lam = r.uniform(1.5, 6.0, 3)
        ph = r.uniform(0, 2 * math.pi, 3)
        length = far - near
        m = look.shaft_texture
        g_tip = 10.0 ** (look.tip_db / 20.0)
        fade = look.tip_db < 0
        fade_mm = look.tip_fade_mm

        def along(s):
            dtip = near + (length - s)      # distance back from the physical tip
            f = 1.0
            if m > 0:
                w = sum(np.sin(2 * math.pi * dtip / lam[k] + ph[k]) for k in range(3))
                f = np.maximum(1.0 + m * w / math.sqrt(1.5), 0.2)
            if fade:
                f = f * (g_tip + (1.0 - g_tip) * np.clip(dtip / fade_mm, 0.0, 1.0))
            return f

        blob = (g_tip - 0.5) if (look.tip_db > 0 and near == 0.0) else 0.0
        return Specular(p_back, p_front, 10.0 ** (look.needle_db / 20.0) * self.elevation_gain,
                        phase=self.phase, gain_fn=look.needle_gain, along=along, blob=blob,
                        tail_count=look.tail_count, tail_decay=look.tail_decay,
                        tail_spacing_mm=self.diameter_mm,
                        tail_fn=look.needle_specular_fraction)

    def visible_segment(self, rect):
        """Ends (p_vis0, p_vis1) in mm of the part visible in ``rect``, or None."""
        fov, vis = self._intervals(rect)
        if vis is None:
            return None
        return self.point_back(vis[1]), self.point_back(vis[0])


def _rect(geometry):
    if geometry.shape is None:
        raise ck.fail("Needle.truth", "geometry", "an ImageGeometry with a shape", geometry)
    return geometry.extent_mm()

