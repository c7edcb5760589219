"""Insertion sequences with per-frame ground truth, and needle-free sequences.

A sequence is planned up front (cheap: poses and truth only) and rendered frame by frame on
demand, so iterating over it keeps memory flat; frame ``i`` is the same whether rendered first,
last or alone (its noise is seeded by ``(seed, i)``).

Motion model, in the tissue frame (the image frame of the probe's starting position):

* the needle pivots about the point where it first crosses the border of the field of view
  (the left/right edge, or the top near that side); ``l(t)`` is the shaft length beyond that
  point, so the tip is ``pivot + l(t) u(theta(t))``. It follows an event schedule of
  ``advance`` / ``pause`` / ``withdraw`` (speed chosen so the deepest point stays in view) and
  two out-of-plane events during which the length holds: ``partial`` (the needle turns in
  elevation about the pivot, so the distal shaft and the tip leave the slice) and
  ``out_of_plane`` (the probe slides in elevation until the whole needle leaves the slice).
* hand tremor: small oscillations of the angle (0.2-0.6 degrees, 6-11 Hz) and of the shaft
  position (0.03-0.12 mm), plus a slow drift of the angle.
* probe motion: slow lateral (0.2-1 mm) and axial (0.05-0.3 mm) sliding; tissue, fascia and
  needle move together in the image.
* the elevational slice has the look's thickness ``T`` (FWHM); a point of the shaft is visible
  when its elevational distance is at most ``T/2``; brightness follows the elevational profile.

Truth (a NumPy structured array, :data:`TRUTH_DTYPE`, one row per frame), points in image
pixels ``(x, z)`` = (column, row) and in mm of the sequence's geometry; each point ``p`` has
the fields ``p_x_px, p_z_px, p_x_mm, p_z_mm`` (``Sequence.truth_at(i)`` adds ``p_px``/``p_mm``
tuples):

- ``frame, t_s``: index and timestamp (``i / fps``)
- ``event``: event in progress (advance, pause, withdraw, partial, out_of_plane, none)
- ``has_needle``: False for needle-free sequences (then every coordinate is NaN)
- ``in_plane``: some part of the shaft lies in the elevational slice
- ``visible``: some part of the needle is drawn in the image (in plane and in view)
- ``tip_visible``: the tip itself is drawn
- ``tip_*``: the physical tip (even when it is out of plane or out of view)
- ``entry_*``: where the shaft axis crosses the image border
- ``vis0_*, vis1_*``: ends of the drawn part: near the entry / near the tip (NaN if none)
- ``angle_deg``: angle between needle and probe face, 0-90
- ``visible_length_mm``: length of the drawn part
- ``inserted_mm``: length of the shaft inside the image
- ``side``: "left"/"right"
- ``elevation_mm``: elevational distance of the tip from the imaging plane
- ``probe_dx_mm, _dz_mm``: probe offset from its starting position
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._errors import fail
from ..geometry import ImageGeometry
from . import _check as ck
from .look import Look
from .needle import SIDES, Needle, _clip_ray
from .phantom import Phantom
from .cartesian import CartesianEngine, default_geometry, to_bmode

__all__ = ["insertion", "needle_free", "Sequence", "Frame", "TRUTH_DTYPE", "EVENTS"]

EVENTS = ("advance", "pause", "withdraw", "partial", "out_of_plane")
_PT = ("tip", "entry", "vis0", "vis1")
TRUTH_DTYPE = np.dtype(
    [("frame", "i4"), ("t_s", "f8"), ("event", "U12"), ("has_needle", "?"),
     ("in_plane", "?"), ("visible", "?"), ("tip_visible", "?")]
    + [(f"{p}_{a}_{u}", "f8") for p in _PT for u in ("px", "mm") for a in ("x", "z")]
    + [("angle_deg", "f8"), ("visible_length_mm", "f8"), ("inserted_mm", "f8"),
       ("side", "U5"), ("elevation_mm", "f8"), ("probe_dx_mm", "f8"), ("probe_dz_mm", "f8")])


def truth_row_to_dict(row) -> dict:
    """One truth row as a plain dict, with ``tip_px``/``tip_mm``/... as (x, z) tuples added."""
    d = {name: row[name].item() for name in row.dtype.names}
    for p in _PT:
        for u in ("px", "mm"):
            d[f"{p}_{u}"] = (d[f"{p}_x_{u}"], d[f"{p}_z_{u}"])
    return d


@dataclass
class Frame:
    """One rendered frame: ``envelope`` (rows, cols) float32, its ``truth`` (dict, see
    :data:`TRUTH_DTYPE`), index, timestamp and the sequence's look."""

    index: int
    t_s: float
    envelope: np.ndarray
    truth: dict
    look: Look

    @property
    def bmode(self) -> np.ndarray:
        """Display image in [0, 1] with the look's dynamic range (see :func:`to_bmode`)."""
        return to_bmode(self.envelope, self.look.dynamic_range_db)


class Sequence:
    """A planned sequence: ``len(seq)`` frames, ``seq[i]`` / iteration render :class:`Frame` s.

    Attributes: geometry (ImageGeometry with shape), look, phantom, fps, seed, truth (structured
    array), needles (per-frame :class:`Needle` or None), offsets_mm ((F, 2) probe dx, dz).
    """

    def __init__(self, *, geometry, look, phantom, fps, seed, truth, needles, offsets_mm,
                 margin_mm):
        self.geometry, self.look, self.phantom = geometry, look, phantom
        self.fps, self.seed, self.truth = fps, seed, truth
        self.needles = needles
        self.offsets_mm = offsets_mm
        self._margin = margin_mm
        self._engine = None

    def __len__(self):
        return len(self.truth)

    def __repr__(self):
        return (f"Sequence({len(self)} frames at {self.fps:g} fps, shape "
                f"{self.geometry.shape}, seed {self.seed})")

    @property
    def engine(self) -> CartesianEngine:
        if self._engine is None:
            self._engine = CartesianEngine(self.phantom, self.geometry, self.look, self.seed,
                                           margin_mm=self._margin)
        return self._engine

    def envelope(self, i: int) -> np.ndarray:
        """Envelope of frame ``i`` (rows, cols) float32."""
        i = self._index(i)
        return self.engine.frame(offset_mm=tuple(self.offsets_mm[i]), needle=self.needles[i],
                                 noise_seed=[self.seed, 4, i])

    def truth_at(self, i: int) -> dict:
        return truth_row_to_dict(self.truth[self._index(i)])

    def __getitem__(self, i) -> Frame:
        i = self._index(i)
        return Frame(i, float(self.truth["t_s"][i]), self.envelope(i), self.truth_at(i),
                     self.look)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _index(self, i):
        try:
            i = int(i)
        except (TypeError, ValueError):
            raise fail("Sequence", "index", "an integer frame index", repr(i)) from None
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"Sequence index {i} out of range for {n} frames")
        return i

    def arrays(self, kind="bmode"):
        """``(frames, truth, geometry)``: all frames as one (F, rows, cols) float32 array of
        ``kind`` "bmode" ([0, 1], the look's dynamic range) or "envelope"."""
        ck.choice("Sequence.arrays", "kind", kind, ("bmode", "envelope"))
        out = np.empty((len(self),) + self.geometry.shape, dtype=np.float32)
        for i in range(len(self)):
            e = self.envelope(i)
            if kind == "bmode":
                to_bmode(e, self.look.dynamic_range_db, out=out[i])
            else:
                out[i] = e
        return out, self.truth, self.geometry


# -- planning ----------------------------------------------------------------------------------
def _common(func, duration_s, fps, seed, shape, spacing_mm, geometry, look, phantom, variety):
    duration_s = ck.positive(func, "duration_s", duration_s)
    fps = ck.positive(func, "fps", fps)
    seed = ck.seed(func, "seed", seed)
    n = max(int(round(duration_s * fps)), 1)
    if n > 100000:
        raise fail(func, "duration_s", "at most 100000 frames (duration_s * fps)", n)
    if geometry is None:
        geometry = default_geometry(shape, spacing_mm)
    elif not isinstance(geometry, ImageGeometry) or geometry.shape is None:
        raise fail(func, "geometry", "an ImageGeometry with a shape", geometry)
    if look is None:
        look = Look.random(seed) if variety else Look()
    elif not isinstance(look, Look):
        raise fail(func, "look", "a usfast.sim.Look", type(look).__name__)
    if phantom is None:
        phantom = Phantom.random(seed, geometry)
    elif not isinstance(phantom, Phantom):
        raise fail(func, "phantom", "a usfast.sim.Phantom", type(phantom).__name__)
    return duration_s, fps, seed, n, geometry, look, phantom


def _probe_motion(rng, t, scale):
    ax, az = rng.uniform(0.2, 1.0) * scale, rng.uniform(0.05, 0.3) * scale
    tx, tz = rng.uniform(2.0, 6.0), rng.uniform(3.0, 5.0)
    px_, pz_ = rng.uniform(0, 2 * math.pi, 2)
    dx = ax * (np.sin(2 * math.pi * t / tx + px_) - math.sin(px_))
    dz = az * (np.sin(2 * math.pi * t / tz + pz_) - math.sin(pz_))
    dx = dx + rng.normal(0.0, 0.01 * scale, t.shape)
    dz = dz + rng.normal(0.0, 0.005 * scale, t.shape)
    return np.stack([dx, dz], axis=1)


def _margin(off):
    return (float(np.max(np.abs(off[:, 0]))) + 0.1, float(np.max(np.abs(off[:, 1]))) + 0.1)


def _default_events(rng, duration):
    kinds = ["advance", "pause", "advance", "partial", "advance", "out_of_plane", "withdraw",
             "advance"]
    w = np.array([0.25, 0.08, 0.15, 0.12, 0.1, 0.1, 0.1, 0.1]) * rng.uniform(0.6, 1.4, 8)
    return list(zip(kinds, w / w.sum() * duration))


def _check_events(func, events):
    out = []
    try:
        items = list(events)
    except TypeError:
        raise fail(func, "events", "a sequence of (kind, seconds)", repr(events)) from None
    for e in items:
        try:
            k, d = e
        except (TypeError, ValueError):
            raise fail(func, "events", "a sequence of (kind, seconds)", repr(e)) from None
        ck.choice(func, "events", k, EVENTS)
        out.append((k, ck.positive(func, "events", d)))
    if not out:
        raise fail(func, "events", "at least one (kind, seconds) event", repr(events))
    return out


def insertion(duration_s=4.0, fps=20.0, angle_deg=None, side="left", seed=0, *,
              shape=(512, 512), spacing_mm=0.08, geometry=None, look=None, phantom=None,
              variety=True, events=None, entry=None, diameter_mm=None, tremor=1.0,
              probe_motion=1.0) -> Sequence:
    """Plan a needle insertion; returns a :class:`Sequence` (render frames by iterating or
    indexing; ``seq.arrays()`` gives ``(frames, truth, geometry)``).

    duration_s, fps: length and frame rate (``round(duration_s * fps)`` frames, timestamps
        ``i / fps``). angle_deg: needle angle to the probe face in (0, 90) (default: drawn in
        15-65). side: "left" or "right" (where the needle comes from). seed: non-negative int;
        the same arguments and seed give the same frames and truth.
    shape, spacing_mm or geometry: the image grid (default 512 x 512 at 0.08 mm, x centred).
    look: a :class:`Look`; default ``Look.random(seed)`` (``variety=True``) or ``Look()``.
    phantom: a :class:`Phantom`; default ``Phantom.random(seed, geometry)``.
    events: schedule ``[(kind, seconds), ...]`` with kinds in :data:`EVENTS`; the state holds
        after the last one. Default: advance, pause, advance, partial, advance, out_of_plane,
        withdraw, advance with random durations filling ``duration_s``.
    entry: "side" (the needle enters through the side edge) or "top" (through the top near
        that side); default drawn. diameter_mm: default drawn from 25, 22, 20, 18 G.
    tremor, probe_motion: scale factors of hand tremor and probe motion (0 = none).
    """
    f = "insertion"
    duration_s, fps, seed, n, geometry, look, phantom = _common(
        f, duration_s, fps, seed, shape, spacing_mm, geometry, look, phantom, variety)
    ck.choice(f, "side", side, SIDES)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 303]))
    angle = rng.uniform(15.0, 65.0) if angle_deg is None else ck.angle(f, "angle_deg",
                                                                        angle_deg)
    entry = ("side" if rng.random() < 0.6 else "top") if entry is None else \
        ck.choice(f, "entry", entry, ("side", "top"))
    diam = float(rng.choice([0.51, 0.72, 0.91, 1.27])) if diameter_mm is None else \
        ck.positive(f, "diameter_mm", diameter_mm)
    tremor = ck.nonneg(f, "tremor", tremor)
    probe_motion = ck.nonneg(f, "probe_motion", probe_motion)
    evs = _default_events(rng, duration_s) if events is None else _check_events(f, events)

    x0, x1, z0, z1 = geometry.extent_mm()
    W, H = x1 - x0, z1 - z0
    sgn = 1.0 if side == "left" else -1.0
    a = math.radians(angle)
    u = np.array([sgn * math.cos(a), math.sin(a)])
    if entry == "side":
        zp = z0 + rng.uniform(0.05, 0.3) * H * min(1.0, 1.2 * math.cos(a) + 0.2)
        pivot = np.array([x0 if side == "left" else x1, zp])
    else:
        xo = rng.uniform(0.03, 0.25) * W
        pivot = np.array([x0 + xo if side == "left" else x1 - xo, z0])
    t = np.arange(n) / fps
    off = _probe_motion(rng, t, probe_motion)
    inset = 2.5 + float(np.max(np.abs(off))) + 0.3 * tremor
    inner = (x0 + inset, x1 - inset, z0 + inset, z1 - inset)
    # the longest shaft whose tip stays inside the inset rectangle
    ray = _clip_ray(pivot + 1e4 * u, u, inner)
    l_max = (1e4 - ray[0]) if ray is not None else 0.0
    if l_max < 3.0:
        raise fail(f, "angle_deg", "an angle and entry that leave room for the needle in the "
                   "field of view", angle)
    l_target = rng.uniform(0.55, 0.9) * l_max
    l0 = rng.uniform(-2.0, 3.0)

    # schedule -> per-frame phase, unit-speed length profile, elevation episodes
    phase = np.full(n, "pause", dtype="U12")
    g = np.zeros(n)
    y_rot = np.zeros(n)
    y_off = np.zeros(n)
    half = look.elevation_mm / 2.0
    t_ev = 0.0
    g_at = 0.0
    for kind, dur in evs:
        m = (t >= t_ev) & (t < t_ev + dur)
        tau = t[m] - t_ev
        phase[m] = kind
        rate = {"advance": 1.0, "withdraw": -0.7}.get(kind, 0.0)
        g[m] = g_at + rate * tau
        if kind == "partial":
            y_rot[m] = rng.choice([-1, 1]) * rng.uniform(1.5, 3.0) * half * np.sin(
                math.pi * tau / dur)
        elif kind == "out_of_plane":
            y_off[m] = rng.choice([-1, 1]) * rng.uniform(2.0, 4.0) * half * np.sin(
                math.pi * tau / dur)
        g_at += rate * dur
        t_ev += dur
    after = t >= t_ev
    g[after] = g_at
    gmax = float(g.max())
    if gmax > 0:
        length = l0 + (l_target - l0) * g / gmax
    else:
        length = np.full(n, 0.5 * l_target)
    # tremor and drift
    f1, f2 = rng.uniform(6.0, 11.0, 2)
    p1, p2, p3 = rng.uniform(0, 2 * math.pi, 3)
    a_t = rng.uniform(0.2, 0.6) * tremor
    drift = rng.uniform(-1.0, 1.0) * tremor
    theta = angle + a_t * (0.7 * np.sin(2 * math.pi * f1 * t + p1)
                           + 0.3 * np.sin(2 * math.pi * f2 * t + p2)) \
        + drift * np.sin(math.pi * t / max(duration_s, 1e-3))
    theta = np.clip(theta, 0.5, 89.5)
    jit = rng.uniform(0.03, 0.12) * tremor * np.sin(2 * math.pi * f2 * t + p3)
    y_off = y_off + rng.uniform(-0.2, 0.2) * half + 0.05 * tremor * np.sin(
        2 * math.pi * f1 * t + p2)
    phase_n = float(rng.uniform(0, 2 * math.pi))
    tex_seed = int(rng.integers(2**31))

    truth = np.zeros(n, dtype=TRUTH_DTYPE)
    rect = geometry.extent_mm()
    needles = []
    for i in range(n):
        th = math.radians(theta[i])
        ui = np.array([sgn * math.cos(th), math.sin(th)])
        perp = np.array([-ui[1], ui[0]])
        tip = pivot + jit[i] * perp + length[i] * ui - off[i]
        # elevation along the shaft: y(t') = (y_off + y_rot) + k t', t' back from the tip
        l_ref = max(length[i], 1.0)
        a0 = y_off[i] + y_rot[i]
        k = -y_rot[i] / l_ref
        vis = _interval(a0, k, half)
        nd = Needle(tip_mm=tuple(tip), angle_deg=float(theta[i]), side=side, diameter_mm=diam,
                    visible_mm=vis if vis is not None else (0.0, 0.0), phase=phase_n,
                    texture_seed=tex_seed)
        tr = nd.truth(geometry)
        row = truth[i]
        if vis is None:
            tr["visible"] = False
            tr["tip_visible"] = False
            tr["visible_length_mm"] = 0.0
            for p in ("vis0", "vis1"):
                for u_ in ("px", "mm"):
                    tr[f"{p}_{u_}"] = (np.nan, np.nan)
        else:
            shown = nd._intervals(rect)[1]
            mid = 0.5 * (shown[0] + shown[1]) if shown is not None else vis[0]
            y_mid = a0 + k * mid
            nd = nd.replace(elevation_gain=float(np.clip(
                math.exp(-4.0 * math.log(2.0) * (y_mid / look.elevation_mm) ** 2), 0.0, 1.0)))
        needles.append(nd if tr["visible"] else None)
        _fill(row, tr)
        row["frame"], row["t_s"], row["event"] = i, t[i], phase[i]
        row["has_needle"] = True
        row["in_plane"] = vis is not None
        row["elevation_mm"] = a0
        row["probe_dx_mm"], row["probe_dz_mm"] = off[i]
    return Sequence(geometry=geometry, look=look, phantom=phantom, fps=fps, seed=seed,
                    truth=truth, needles=needles, offsets_mm=off, margin_mm=_margin(off))


def _interval(a, k, h):
    """Range of t >= 0 with |a + k t| <= h, or None."""
    if abs(k) < 1e-12:
        return (0.0, math.inf) if abs(a) <= h else None
    lo, hi = sorted(((-h - a) / k, (h - a) / k))
    lo = max(lo, 0.0)
    return (lo, hi) if hi > lo else None


def _fill(row, tr):
    for p in _PT:
        for u in ("px", "mm"):
            row[f"{p}_x_{u}"], row[f"{p}_z_{u}"] = tr[f"{p}_{u}"]
    row["visible"] = tr["visible"]
    row["tip_visible"] = tr["tip_visible"]
    row["angle_deg"] = tr["angle_deg"]
    row["visible_length_mm"] = tr["visible_length_mm"]
    row["inserted_mm"] = tr["inserted_mm"]
    row["side"] = tr["side"]


def needle_free(duration_s=2.0, fps=20.0, seed=0, *, shape=(512, 512), spacing_mm=0.08,
                geometry=None, look=None, phantom=None, variety=True, probe_motion=1.0
                ) -> Sequence:
    """A sequence with no needle (for false-positive rates): the same tissue, fascia
    distractors, look variety and probe motion as :func:`insertion`; truth rows have
    ``has_needle = in_plane = visible = False`` and NaN coordinates."""
    f = "needle_free"
    duration_s, fps, seed, n, geometry, look, phantom = _common(
        f, duration_s, fps, seed, shape, spacing_mm, geometry, look, phantom, variety)
    probe_motion = ck.nonneg(f, "probe_motion", probe_motion)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 304]))
    t = np.arange(n) / fps
    off = _probe_motion(rng, t, probe_motion)
    truth = np.zeros(n, dtype=TRUTH_DTYPE)
    for name in TRUTH_DTYPE.names:
        if TRUTH_DTYPE[name].kind == "f":
            truth[name] = np.nan
    truth["frame"] = np.arange(n)
    truth["t_s"] = t
    truth["event"] = "none"
    truth["visible_length_mm"] = 0.0
    truth["inserted_mm"] = 0.0
    truth["probe_dx_mm"], truth["probe_dz_mm"] = off[:, 0], off[:, 1]
    return Sequence(geometry=geometry, look=look, phantom=phantom, fps=fps, seed=seed,
                    truth=truth, needles=[None] * n, offsets_mm=off, margin_mm=_margin(off))
