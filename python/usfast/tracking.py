"""Needle tracking across frames: a small Kalman filter on the needle axis and on its tip.

Conventions (DESIGN.md): points are ``(x, z)`` (lateral, depth) in millimetres of the tracker's
:class:`usfast.ImageGeometry`; angles in degrees; time in seconds.

Model
-----
The needle axis is a line in the image plane, parametrised in mm as the angle ``theta`` of its
direction ``u = (cos theta, sin theta)`` (pointing into the tissue, so ``theta`` is in
``[0, pi]``) and its signed perpendicular offset ``rho = n . (p - c)`` from a fixed reference
point ``c`` (the image centre), with normal ``n = (-sin theta, cos theta)``. The tip lies on
the axis at signed position ``s = u . (tip - c)`` and moves along it with velocity ``v``.

* Axis filter, state ``(theta, rho)``: random walk (probe motion, bending, tremor).
* Tip filter, state ``(s, v)``: constant velocity with white acceleration.
* Time step from the timestamps (or ``frame_interval_s`` when none are given).
* Measurement noise scales with ``1 / confidence``; the axis measurement covariance carries the
  lever arm between the detected shaft's midpoint and ``c``.
* Gating: Mahalanobis distance of the innovation against the chi-square 99 % quantile (2 degrees
  of freedom for the axis, 1 for the tip). A gated-out detection counts as a miss.
* Coasting: a miss keeps the prediction (status ``"coasting"``) for up to ``max_coast`` frames,
  then the track is ``"lost"`` and ``found`` is False.
* Re-acquisition: when lost, a detection consistent with the last axis resumes the track at
  once; otherwise ``acquire_frames`` mutually consistent detections start a new one.
* Tip along an accepted axis: a gated-out tip adds manoeuvre noise (``q_accel_miss_mm_s2``)
  and damps the velocity, so starts, stops and withdrawals are followed. A tip seen short of
  the prediction (a faint tip, the distal shaft out of plane) replaces it only after
  ``tip_reset_after`` consistent frames *and* once the jump is reachable at
  ``max_speed_mm_s`` from where the tip was last seen: until then the tip is held. A tip seen
  beyond the prediction (the shaft cannot show past its tip) is taken after
  ``tip_reset_ahead`` consistent frames.
* Reset: while tracking, ``reset_after`` consecutive mutually consistent gated-out detections
  (a large jump that persists, e.g. the probe moved) restart the filter on them. The default of
  6 frames means a distractor (a bright fascia line) that the detector reports during a drop-out
  of up to 5 frames never captures the track. Restrict ``angle_range_deg`` / ``side`` to reject
  such distractors outright.
* The reported tip is constrained to the tracked axis and to the image; the entry point is
  where the axis enters the image. Nothing reported is ever NaN.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ._errors import BackendUnavailable, fail
from .estimate import NeedleEstimate
from .geometry import ImageGeometry

__all__ = ["NeedleTracker", "NeedleState", "CHI2_99_1DOF", "CHI2_99_2DOF"]

#: chi-square 99 % quantiles used for gating (1 and 2 degrees of freedom).
CHI2_99_1DOF = 6.634896601021214
CHI2_99_2DOF = 9.210340371976182

STATUSES = ("tracking", "coasting", "lost")

_PI = math.pi
_HALF_PI = 0.5 * math.pi


@dataclass
class NeedleState(NeedleEstimate):
    """A :class:`usfast.NeedleEstimate` from the tracker, plus the track's own fields.

    status: ``"tracking"`` (this frame's detection was used), ``"coasting"`` (prediction only,
        through a short drop-out or a rejected detection) or ``"lost"`` (``found`` is False and
        every coordinate is 0).
    velocity_mm_s: tip velocity along the axis; positive when the needle advances into tissue,
        negative when it is withdrawn.
    frames_since_detection: frames since a detection was last accepted (0 while tracking).
    t: timestamp of the frame in seconds.
    tip_sigma_mm: standard deviation of the tip position along the axis.
    angle_sigma_deg: standard deviation of the axis angle.
    accepted: whether this frame's detection was used by the filter.

    ``found`` is True while tracking or coasting. Serialise with :meth:`to_dict` (plain JSON
    types, no NaN) and read back with :meth:`from_dict`.
    """

    status: str = "lost"
    velocity_mm_s: float = 0.0
    frames_since_detection: int = 0
    t: float = 0.0
    tip_sigma_mm: float = 0.0
    angle_sigma_deg: float = 0.0
    accepted: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.status not in STATUSES:
            raise ValueError(f"NeedleState(status): expected one of {STATUSES}; "
                             f"got {self.status!r}")
        for name in ("velocity_mm_s", "t", "tip_sigma_mm", "angle_sigma_deg"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ValueError(f"NeedleState({name}): non-finite value {v}")
            setattr(self, name, v)
        self.frames_since_detection = int(self.frames_since_detection)
        self.accepted = bool(self.accepted)

    def to_dict(self):
        d = asdict(self)
        d.pop("extra", None)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names})


def _wrap_pi(a):
    """Angle difference wrapped to ``[-pi, pi)``."""
    return (a + _PI) % (2.0 * _PI) - _PI


def _clip_line(px, pz, ux, uz, box):
    """Parameter range ``[t0, t1]`` where ``p + t*u`` lies inside ``box`` (x0, x1, z0, z1).

    Returns None when the line misses the box. ``u`` need not be unit length but must not be 0.
    """
    t0, t1 = -math.inf, math.inf
    for p, d, lo, hi in ((px, ux, box[0], box[1]), (pz, uz, box[2], box[3])):
        if abs(d) < 1e-12:
            if p < lo - 1e-9 or p > hi + 1e-9:
                return None
            continue
        a, b = (lo - p) / d, (hi - p) / d
        if a > b:
            a, b = b, a
        t0, t1 = max(t0, a), min(t1, b)
    if t0 > t1:
        return None
    return t0, t1


class _Meas:
    """One detection expressed in the tracker's parametrisation (plain floats)."""

    __slots__ = ("th", "ux", "uz", "tipx", "tipz", "midx", "midz", "length", "conf", "angle",
                 "t")

    def __init__(self, th, ux, uz, tipx, tipz, midx, midz, length, conf, angle, t):
        self.th, self.ux, self.uz = th, ux, uz
        self.tipx, self.tipz = tipx, tipz
        self.midx, self.midz = midx, midz
        self.length, self.conf, self.angle, self.t = length, conf, angle, t


class NeedleTracker:
    """Track one needle through a sequence of frames.

    geometry: :class:`usfast.ImageGeometry` of the frames. Its ``shape`` (rows, cols) is needed
        for the image rectangle; :meth:`update` takes it from the first image when missing.
    angle_range_deg: optional ``(lo, hi)`` insertion angles (degrees from the probe face, 0-90)
        outside which a detection is ignored (e.g. ``(15, 80)`` rejects horizontal fascia).
    side: optional ``"left"`` or ``"right"``: the side of the image the needle enters from
        (``"left"``: it moves right as it goes deeper). Detections from the other side are
        ignored.
    max_coast: frames a track survives without an accepted detection before it is lost.
    acquire_frames: consistent detections needed to start a track when none is held.
    reset_after: consecutive consistent gated-out detections that replace the track (> 5 so a
        5-frame drop-out filled with a distractor does not).
    tip_reset_after: consecutive consistent tip detections gated out along an accepted axis,
        short of the predicted tip, that re-initialise the tip.
    tip_reset_ahead: the same for tip detections beyond the predicted tip (the tip coming
        back into the slice, a fast advance).
    frame_interval_s: time step assumed when ``t`` is not given.
    meas_sigma_angle_deg, meas_sigma_offset_mm, meas_sigma_tip_mm: detector noise (1 sigma) at
        confidence 1 (axis angle, perpendicular offset of the shaft, tip along the axis); the
        variances are divided by the detection's confidence.
    q_angle_deg, q_offset_mm: axis random walk, per square root of a second.
    q_accel_mm_s2: tip white-acceleration density (mm/s^2 per square root of Hz).
    init_speed_sigma_mm_s: prior uncertainty of the tip velocity of a new track.
    max_speed_mm_s: bound on the tip speed along the axis.
    q_accel_miss_mm_s2: extra white-acceleration density added to the tip when a tip
        detection along an accepted axis is gated out (so a sudden start, stop or withdrawal
        is followed within frames).
    tip_miss_velocity_factor: factor on the tip velocity on such a frame (the motion model
        disagrees with the image, so it is not extrapolated at full speed).
    min_confidence: detections below it are ignored.
    coast_decay: factor applied to the reported confidence per coasting frame.
    candidate_angle_tol_deg, candidate_offset_tol_mm, candidate_tip_tol_mm: how close
        successive detections must be (angle; perpendicular offset of the shaft; tip
        position) to count as the same needle when acquiring or resetting a track.
    detector: callable ``detector(image, geometry=...) -> NeedleEstimate`` used by
        :meth:`update` (default: ``usfast.locate_needle``).
    detector_kwargs: extra keyword arguments for the detector.
    """

    def __init__(self, geometry, *, angle_range_deg=None, side=None, max_coast=10,
                 acquire_frames=2, reset_after=6, tip_reset_after=4, tip_reset_ahead=2,
                 frame_interval_s=0.05,
                 meas_sigma_angle_deg=1.0, meas_sigma_offset_mm=0.2, meas_sigma_tip_mm=0.5,
                 q_angle_deg=3.0, q_offset_mm=1.0, q_accel_mm_s2=5.0,
                 init_speed_sigma_mm_s=10.0, max_speed_mm_s=30.0, q_accel_miss_mm_s2=15.0,
                 tip_miss_velocity_factor=0.5, min_confidence=0.05, coast_decay=0.85,
                 candidate_angle_tol_deg=5.0, candidate_offset_tol_mm=2.0,
                 candidate_tip_tol_mm=2.5, detector=None, detector_kwargs=None):
        f = "NeedleTracker"
        if not isinstance(geometry, ImageGeometry):
            raise fail(f, "geometry", "an ImageGeometry", type(geometry).__name__)
        self.geometry = geometry
        if angle_range_deg is not None:
            try:
                lo, hi = (float(a) for a in angle_range_deg)
            except (TypeError, ValueError):
                raise fail(f, "angle_range_deg", "(lo, hi) in degrees", angle_range_deg) from None
            if not (0.0 <= lo < hi <= 90.0):
                raise fail(f, "angle_range_deg", "0 <= lo < hi <= 90 degrees", angle_range_deg)
            angle_range_deg = (lo, hi)
        self.angle_range_deg = angle_range_deg
        if side not in (None, "left", "right"):
            raise fail(f, "side", "None, 'left' or 'right'", repr(side))
        self.side = side
        for name, v, lo in (("max_coast", max_coast, 0), ("acquire_frames", acquire_frames, 1),
                            ("reset_after", reset_after, 1),
                            ("tip_reset_after", tip_reset_after, 1),
                            ("tip_reset_ahead", tip_reset_ahead, 1)):
            try:
                ok = int(v) == v and v >= lo
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise fail(f, name, f"an integer >= {lo}", repr(v))
        self.max_coast = int(max_coast)
        self.acquire_frames = int(acquire_frames)
        self.reset_after = int(reset_after)
        self.tip_reset_after = int(tip_reset_after)
        self.tip_reset_ahead = int(tip_reset_ahead)

        def pos(name, v):
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise fail(f, name, "a positive number", repr(v)) from None
            if not (math.isfinite(v) and v > 0):
                raise fail(f, name, "a positive finite number", v)
            return v

        self.frame_interval_s = pos("frame_interval_s", frame_interval_s)
        self._r_th = math.radians(pos("meas_sigma_angle_deg", meas_sigma_angle_deg)) ** 2
        self._r_perp = pos("meas_sigma_offset_mm", meas_sigma_offset_mm) ** 2
        self._r_tip = pos("meas_sigma_tip_mm", meas_sigma_tip_mm) ** 2
        self._q_th = math.radians(pos("q_angle_deg", q_angle_deg)) ** 2
        self._q_rho = pos("q_offset_mm", q_offset_mm) ** 2
        self._q_acc = pos("q_accel_mm_s2", q_accel_mm_s2) ** 2
        self._v0 = pos("init_speed_sigma_mm_s", init_speed_sigma_mm_s) ** 2
        self._vmax = pos("max_speed_mm_s", max_speed_mm_s)
        self._miss_v = float(tip_miss_velocity_factor)
        if not (0.0 <= self._miss_v <= 1.0):
            raise fail(f, "tip_miss_velocity_factor", "a factor in [0, 1]",
                       tip_miss_velocity_factor)
        self._q_miss = pos("q_accel_miss_mm_s2", q_accel_miss_mm_s2) ** 2
        mc = float(min_confidence)
        if not (0.0 <= mc < 1.0):
            raise fail(f, "min_confidence", "a value in [0, 1)", min_confidence)
        self.min_confidence = mc
        cd = float(coast_decay)
        if not (0.0 < cd <= 1.0):
            raise fail(f, "coast_decay", "a value in (0, 1]", coast_decay)
        self.coast_decay = cd
        self._cand_th = math.radians(pos("candidate_angle_tol_deg", candidate_angle_tol_deg))
        self._cand_off = pos("candidate_offset_tol_mm", candidate_offset_tol_mm)
        self._cand_tip = pos("candidate_tip_tol_mm", candidate_tip_tol_mm)
        if detector is not None and not callable(detector):
            raise fail(f, "detector", "a callable detector(image, geometry=...)", repr(detector))
        self._detector = detector
        self._detector_kwargs = dict(detector_kwargs or {})
        self._detector_ready = None
        self._box = None
        self._cx = self._cz = 0.0
        if geometry.shape is not None:
            self._set_shape(geometry.shape)
        self.reset()

    # -- public ----------------------------------------------------------------------------
    def reset(self):
        """Forget the track and the clock."""
        self._active = False          # a track is held (tracking or coasting)
        self._stale = False           # a lost track's axis is kept for quick re-acquisition
        self._th = self._rho = 0.0
        self._pa = [0.0, 0.0, 0.0]    # axis covariance [a, b, c] = [[a, b], [b, c]]
        self._s = self._v = 0.0
        self._pt = [0.0, 0.0, 0.0]    # tip covariance [d, e, f]
        self._t = None
        self._frames_since = 0
        self._conf = 0.0
        self._length = 0.0
        self._cands = []              # consistent gated-out / acquisition detections
        self._cand_gap = 0
        self._tip_cands = []
        self._tip_seen = (0.0, 0.0, 0.0)    # where and when a tip was last accepted
        self._last_dt = 0.0
        self._state = None

    @property
    def state(self):
        """The last :class:`NeedleState` returned (None before the first update)."""
        return self._state

    def update(self, image, t=None):
        """Run the detector on ``image`` ``(rows, cols)`` and fold its result into the track.

        t: timestamp in seconds (never decreasing); ``None`` advances by ``frame_interval_s``.
        Returns a :class:`NeedleState`.
        """
        f = "NeedleTracker.update"
        shape = getattr(image, "shape", None)
        if shape is None:
            image = np.asarray(image)
            shape = image.shape
        if len(shape) != 2:
            raise fail(f, "image", "a 2-D image (rows, cols)", tuple(shape))
        if self._box is None:
            self._set_shape(shape)
        else:
            self.geometry.check_image(f, "image", shape)
            if tuple(shape) != self._shape:
                raise fail(f, "image", f"an image of shape {self._shape} like the earlier "
                           "frames", tuple(shape))
        t, dt = self._clock(f, t)
        est = self._detect(image)
        if not isinstance(est, NeedleEstimate):
            raise TypeError(f"{f}: the detector returned {type(est).__name__}, "
                            "expected a NeedleEstimate")
        return self._step(est, t, dt)

    def update_estimate(self, estimate, t=None):
        """Fold one detection (a :class:`NeedleEstimate` in this tracker's geometry) into the
        track. Use this with a detector of your own; ``found=False`` is a drop-out.

        t: timestamp in seconds (never decreasing); ``None`` advances by ``frame_interval_s``.
        Returns a :class:`NeedleState`.
        """
        f = "NeedleTracker.update_estimate"
        if not isinstance(estimate, NeedleEstimate):
            raise fail(f, "estimate", "a NeedleEstimate", type(estimate).__name__)
        if self._box is None:
            raise fail(f, "geometry", "an ImageGeometry with a shape (rows, cols) (or call "
                       "update(image) first)", self.geometry)
        t, dt = self._clock(f, t)
        return self._step(estimate, t, dt)

    # -- set-up ----------------------------------------------------------------------------
    def _set_shape(self, shape):
        shape = (int(shape[0]), int(shape[1]))
        if self.geometry.shape is None:
            self.geometry = self.geometry.with_shape(shape)
        self._shape = shape
        x0, x1, z0, z1 = self.geometry.extent_mm(shape)
        self._box = (x0, x1, z0, z1)
        self._cx, self._cz = 0.5 * (x0 + x1), 0.5 * (z0 + z1)

    def _clock(self, f, t):
        if t is None:
            t = 0.0 if self._t is None else self._t + self.frame_interval_s
            return t, (0.0 if self._t is None else self.frame_interval_s)
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise fail(f, "t", "a timestamp in seconds", repr(t)) from None
        if not math.isfinite(t):
            raise fail(f, "t", "a finite timestamp in seconds", t)
        if self._t is None:
            return t, 0.0
        if t < self._t:
            raise fail(f, "t", f"timestamps that do not go backwards (previous {self._t!r} s)",
                       t)
        return t, t - self._t

    def _detect(self, image):
        if self._detector is None:
            fn = None
            try:
                from . import needle as _needle  # the detector module, imported on first use
                fn = getattr(_needle, "locate_needle", None)
            except ImportError:
                pass
            if fn is None:
                import usfast
                fn = getattr(usfast, "locate_needle", None)
            if fn is None:
                raise BackendUnavailable("NeedleTracker.update: usfast.locate_needle is not "
                                         "available; pass detector= or use update_estimate()")
            self._detector = fn
        if self._detector_ready is None:
            kw = dict(self._detector_kwargs)
            try:
                params = inspect.signature(self._detector).parameters
                any_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
                for name, val in (("angle_range_deg", self.angle_range_deg),
                                  ("side", self.side)):
                    if val is not None and name not in kw and (any_kw or name in params):
                        kw[name] = val
            except (TypeError, ValueError):
                pass
            self._detector_ready = kw
        return self._detector(image, geometry=self.geometry, **self._detector_ready)

    # -- measurement -----------------------------------------------------------------------
    def _measure(self, est, t):
        """Detection -> _Meas, or None when it is absent or outside the priors."""
        if not est.found:
            return None
        conf = est.confidence
        if not (conf >= self.min_confidence):
            return None
        conf = min(max(conf, 1e-3), 1.0)
        tipx, tipz = est.tip_mm
        ux, uz = est.direction
        nrm = math.hypot(ux, uz)
        if not (nrm > 1e-9) or not math.isfinite(nrm):
            ux, uz = tipx - est.entry_mm[0], tipz - est.entry_mm[1]
            nrm = math.hypot(ux, uz)
            if not (nrm > 1e-9) or not math.isfinite(nrm):
                return None
        ux, uz = ux / nrm, uz / nrm
        if uz < 0.0:
            ux, uz = -ux, -uz
        angle = math.degrees(math.atan2(uz, abs(ux)))
        if self.angle_range_deg is not None:
            lo, hi = self.angle_range_deg
            if not (lo <= angle <= hi):
                return None
        if self.side is not None and abs(ux) > 1e-6:
            if (self.side == "left") != (ux > 0.0):
                return None
        length = est.visible_length_mm
        if not (length > 0.0):
            length = math.hypot(tipx - est.entry_mm[0], tipz - est.entry_mm[1])
        length = min(max(length, 1.0), 1e4)
        midx, midz = tipx - 0.5 * length * ux, tipz - 0.5 * length * uz
        if not all(math.isfinite(a) for a in (tipx, tipz, midx, midz)):
            return None
        th = math.atan2(uz, ux)
        return _Meas(th, ux, uz, tipx, tipz, midx, midz, length, conf, angle, t)

    def _axis_meas(self, m):
        """(theta, rho) of a detection aligned to the track, and its covariance [a, b, c]."""
        th = m.th
        dth = _wrap_pi(th - self._th)
        flip = abs(dth) > _HALF_PI
        if flip:           # the same line pointing the other way (near-horizontal needles)
            th = th - math.copysign(_PI, dth)
            dth = _wrap_pi(th - self._th)
        s, c = math.sin(th), math.cos(th)
        rho = -s * (m.midx - self._cx) + c * (m.midz - self._cz)
        lever = c * (m.midx - self._cx) + s * (m.midz - self._cz)
        w = 1.0 / m.conf
        r_th, r_perp = self._r_th * w, self._r_perp * w
        return dth, rho, (r_th, -lever * r_th, lever * lever * r_th + r_perp)

    # -- filter ----------------------------------------------------------------------------
    def _predict(self, dt):
        self._last_dt = dt
        if dt <= 0.0:
            return
        pa = self._pa
        pa[0] += self._q_th * dt
        pa[2] += self._q_rho * dt
        d, e, f_ = self._pt
        q = self._q_acc
        self._s += self._v * dt
        self._pt = [d + 2.0 * dt * e + dt * dt * f_ + q * dt ** 3 / 3.0,
                    e + dt * f_ + q * dt * dt / 2.0,
                    f_ + q * dt]

    def _axis_gate(self, m):
        dth, rho, r = self._axis_meas(m)
        y0, y1 = dth, rho - self._rho
        pa = self._pa
        s0, s1, s2 = pa[0] + r[0], pa[1] + r[1], pa[2] + r[2]
        det = s0 * s2 - s1 * s1
        if not (det > 0.0):
            return None
        d2 = (s2 * y0 * y0 - 2.0 * s1 * y0 * y1 + s0 * y1 * y1) / det
        return d2, (y0, y1), (s0, s1, s2, det)

    def _tip_point(self):
        s, c = math.sin(self._th), math.cos(self._th)
        return (self._cx - s * self._rho + c * self._s, self._cz + c * self._rho + s * self._s)

    def _update_axis(self, y, S):
        y0, y1 = y
        s0, s1, s2, det = S
        a, b, c = self._pa
        # K = P S^-1, with S^-1 = [[s2, -s1], [-s1, s0]] / det
        k00 = (a * s2 - b * s1) / det
        k01 = (-a * s1 + b * s0) / det
        k10 = (b * s2 - c * s1) / det
        k11 = (-b * s1 + c * s0) / det
        tipx, tipz = self._tip_point()
        th = self._th + k00 * y0 + k01 * y1
        self._rho += k10 * y0 + k11 * y1
        # P = (I - K) P, symmetrised
        na = (1.0 - k00) * a - k01 * b
        nb1 = (1.0 - k00) * b - k01 * c
        nb2 = -k10 * a + (1.0 - k11) * b
        nc = -k10 * b + (1.0 - k11) * c
        self._pa = [max(na, 1e-12), 0.5 * (nb1 + nb2), max(nc, 1e-12)]
        self._set_theta(th)
        # keep the tip where it was, projected on the new axis
        self._s = (math.cos(self._th) * (tipx - self._cx) + math.sin(self._th) * (tipz - self._cz))

    def _set_theta(self, th):
        # the needle points into the tissue: theta in [0, pi]
        if th < 0.0 or th > _PI:
            old_s, old_c = math.sin(self._th), math.cos(self._th)
            th = min(max(th, 0.0), _PI)
            # keep the line through the same point near the shaft when clamping
            px = self._cx - old_s * self._rho
            pz = self._cz + old_c * self._rho
            self._rho = -math.sin(th) * (px - self._cx) + math.cos(th) * (pz - self._cz)
        self._th = th

    def _tip_meas(self, m):
        c, s = math.cos(self._th), math.sin(self._th)
        return c * (m.tipx - self._cx) + s * (m.tipz - self._cz), self._r_tip / m.conf

    def _update_tip(self, m):
        """Gate and fold the tip; returns True when used."""
        sm, r = self._tip_meas(m)
        d, e, f_ = self._pt
        y = sm - self._s
        S = d + r
        if y * y / S <= CHI2_99_1DOF:
            k0, k1 = d / S, e / S
            self._s += k0 * y
            self._v = self._clip_speed(self._v + k1 * y)
            self._pt = [max(d - k0 * d, 1e-12), e - k0 * e, max(f_ - k1 * e, 1e-12)]
            self._tip_cands = []
            self._tip_seen = (m.tipx, m.tipz, m.t)
            return True
        # A tip far from the prediction along an accepted axis: an outlier, or a manoeuvre
        # (start, stop, withdrawal) the model lags behind, or the tip leaving / re-entering
        # the slice. Widen the tip's uncertainty and stop extrapolating the velocity, so a
        # manoeuvre is followed; reset the tip if the jump persists. A tip seen short of the
        # prediction (the commoner detector error: a faint tip, the distal shaft out of plane)
        # needs tip_reset_after consistent frames and must be reachable at max_speed_mm_s from
        # where the tip was last seen: a visible end that jumps back 15 mm in a frame is the
        # tip leaving the slice, not the needle moving, and the tip is held until the jump
        # becomes possible. A tip seen beyond the prediction (the shaft cannot show past its
        # tip: the tip is back in the slice, or advanced fast) needs tip_reset_ahead frames.
        dt = self._last_dt
        q = self._q_miss
        self._pt = [d + q * dt ** 3 / 3.0, e + q * dt * dt / 2.0, f_ + q * dt]
        self._v *= self._miss_v
        ahead = y > 0.0
        tc = self._tip_cands
        if tc and (abs(sm - tc[-1][0]) > self._cand_tip or tc[-1][3] != ahead):
            tc.clear()
        tc.append((sm, m.t, r, ahead))
        if len(tc) >= (self.tip_reset_ahead if ahead else self.tip_reset_after):
            x, z, t = self._tip_seen
            if ahead or (math.hypot(m.tipx - x, m.tipz - z)
                         <= self._vmax * (m.t - t) + self._cand_tip):
                self._s = sm
                self._v = 0.0
                self._pt = [r, 0.0, self._v0]
                self._tip_seen = (m.tipx, m.tipz, m.t)
                tc.clear()
                return True
        return False

    def _clip_speed(self, v):
        return min(max(v, -self._vmax), self._vmax)

    def _speed_from(self, pts):
        """Velocity along the axis: least-squares slope of 3 or more (s, t) pairs, clipped to
        twice the prior speed sigma; 0 when undetermined."""
        n = len(pts)
        if n < 3:
            return 0.0
        tm = sum(t for _, t in pts) / n
        sm = sum(s for s, _ in pts) / n
        stt = sum((t - tm) ** 2 for _, t in pts)
        if stt <= 1e-9:
            return 0.0
        v = sum((t - tm) * (s - sm) for s, t in pts) / stt
        lim = min(2.0 * math.sqrt(self._v0), self._vmax)
        return min(max(v, -lim), lim)

    def _start_track(self, cands):
        """Initialise the filter from the last of ``cands`` (consistent detections)."""
        m = cands[-1]
        self._th = m.th
        s, c = math.sin(m.th), math.cos(m.th)
        self._rho = -s * (m.midx - self._cx) + c * (m.midz - self._cz)
        _, _, r = self._axis_meas(m)
        self._pa = [2.0 * r[0], 2.0 * r[1], 2.0 * r[2]]
        self._s = c * (m.tipx - self._cx) + s * (m.tipz - self._cz)
        pts = [(c * (k.tipx - self._cx) + s * (k.tipz - self._cz), k.t) for k in cands]
        self._v = self._speed_from(pts)
        self._pt = [self._r_tip / m.conf, 0.0, self._v0]
        self._active, self._stale = True, False
        self._tip_seen = (m.tipx, m.tipz, m.t)
        self._conf = m.conf
        self._length = m.length
        self._cands = []
        self._tip_cands = []

    def _consistent(self, a, b):
        dth = _wrap_pi(b.th - a.th)
        if abs(dth) > _HALF_PI:
            dth = _wrap_pi(dth - math.copysign(_PI, dth))
        if abs(dth) > self._cand_th:
            return False
        # perpendicular distance of b's shaft midpoint from a's axis
        off = -a.uz * (b.midx - a.midx) + a.ux * (b.midz - a.midz)
        if abs(off) > self._cand_off:
            return False
        return math.hypot(b.tipx - a.tipx, b.tipz - a.tipz) <= self._cand_tip

    def _push_candidate(self, m):
        c = self._cands
        if c and (self._cand_gap > 2 or not self._consistent(c[-1], m)):
            c.clear()
        c.append(m)
        self._cand_gap = 0
        del c[:-max(self.reset_after, self.acquire_frames)]
        return len(c)

    def _step(self, est, t, dt):
        self._t = t
        m = self._measure(est, t)
        accepted = False
        if self._cands:
            self._cand_gap += 1
        if self._active:
            self._predict(dt)
            if m is not None:
                g = self._axis_gate(m)
                if g is not None and g[0] <= CHI2_99_2DOF:
                    self._update_axis(g[1], g[2])
                    self._update_tip(m)
                    self._cands = []
                    accepted = True
                elif self._push_candidate(m) >= self.reset_after:
                    self._start_track(self._cands)
                    accepted = True
        elif m is not None:
            g = self._axis_gate(m) if self._stale else None
            if g is not None and g[0] <= CHI2_99_2DOF:
                # the needle is back on the axis it was lost on
                self._start_track([m])
                accepted = True
            elif self._push_candidate(m) >= self.acquire_frames:
                self._start_track(self._cands)
                accepted = True
        if accepted:
            self._frames_since = 0
            self._conf = 0.6 * self._conf + 0.4 * m.conf
            self._length = 0.7 * self._length + 0.3 * m.length
        else:
            self._frames_since += 1
            if self._active and self._frames_since > self.max_coast:
                self._active, self._stale = False, True
                self._tip_cands = []
        self._state = self._report(est, accepted)
        return self._state

    # -- output ----------------------------------------------------------------------------
    def _report(self, est, accepted):
        t = self._t
        if not self._active:
            conf = est.confidence if math.isfinite(est.confidence) else 0.0
            return NeedleState(found=False, confidence=min(max(conf, 0.0), 1.0), status="lost",
                               frames_since_detection=self._frames_since, t=t)
        th = self._th
        ux, uz = math.cos(th), math.sin(th)
        sn = math.sin(th)
        qx, qz = self._cx - sn * self._rho, self._cz + ux * self._rho
        rng = _clip_line(qx, qz, ux, uz, self._box)
        s = self._s
        if rng is not None:
            s = min(max(s, rng[0]), rng[1])
            t_entry = rng[0]
        else:
            t_entry = s
        tip = (qx + s * ux, qz + s * uz)
        entry = (qx + t_entry * ux, qz + t_entry * uz)
        visible = min(self._length, s - t_entry) if self._length > 0 else s - t_entry
        (dz, dx), (z0, x0) = self.geometry.spacing_mm, self.geometry.origin_mm
        tip_px = ((tip[0] - x0) / dx, (tip[1] - z0) / dz)
        entry_px = ((entry[0] - x0) / dx, (entry[1] - z0) / dz)
        conf = self._conf
        status = "tracking"
        if not accepted:
            status = "coasting"
            conf *= self.coast_decay ** self._frames_since
        vals = (tip[0], tip[1], entry[0], entry[1], ux, uz, self._v, visible, conf,
                self._pa[0], self._pt[0])
        if not all(math.isfinite(v) for v in vals + tip_px + entry_px):
            # cannot happen with finite input; never hand out NaN
            self.reset()
            self._t = t
            return NeedleState(found=False, status="lost", t=t)
        return NeedleState(
            found=True, tip_px=tip_px, tip_mm=tip, entry_px=entry_px, entry_mm=entry,
            angle_deg=math.degrees(math.atan2(uz, abs(ux))), direction=(ux, uz),
            visible_length_mm=max(visible, 0.0), confidence=min(max(conf, 0.0), 1.0),
            status=status, velocity_mm_s=self._v, frames_since_detection=self._frames_since,
            t=t, tip_sigma_mm=math.sqrt(max(self._pt[0], 0.0)),
            angle_sigma_deg=math.degrees(math.sqrt(max(self._pa[0], 0.0))),
            accepted=accepted)
