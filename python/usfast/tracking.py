"""Needle tracking across frames: a Kalman filter on the needle axis and an interacting
multiple-model filter on its tip.

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
* Tip filter, state ``(s, v)``: an interacting multiple-model (IMM) filter with two models, so
  that a needle that rests or moves steadily is smoothed while one that starts, stops or
  reverses at once is followed within a frame or two:

  - *steady*: constant velocity with a small white acceleration (``q_accel_mm_s2``);
  - *manoeuvre*: the velocity forgets itself over ``manoeuvre_tau_s`` and may take any value
    of spread ``manoeuvre_speed_mm_s`` (an Ornstein-Uhlenbeck velocity: the tip may move
    fast, but only as far as that speed allows).

  The models switch as a Markov chain (``manoeuvre_start_hz``, ``manoeuvre_end_hz``); each
  frame mixes their estimates, predicts each, weighs them by how well they explain the
  detection, and reports the mixture.
* Time step from the timestamps (or ``frame_interval_s`` when none are given).
* Measurement noise scales with ``1 / confidence``; the axis measurement covariance carries the
  lever arm between the detected shaft's midpoint and ``c``. The detector's noise at
  confidence 1 is learnt online, starting from the ``meas_sigma_*`` values (which count as
  two samples) and never falling below 1/20 of them: the angle and shaft offset from the
  innovations (less their predicted part, with a forgetting window of
  ``noise_window_frames``), the tip from how far each tip lies from the line through its
  neighbours in time (a robust median over the window, blind to the few frames where the
  needle starts or stops). A precise detector is thus followed closely, a noisy one smoothed.
* Gating: Mahalanobis distance of the innovation against the chi-square 99 % quantile (2 degrees
  of freedom for the axis, 1 for the tip, on the model that allows more). A gated-out
  detection counts as a miss. Inside the gate a tip is weighed against the chance that it is a
  bad tip (``tip_outlier_prob``, spread over ``tip_outlier_range_mm``), as in a probabilistic
  data association filter: a single implausible tip barely moves the estimate and does not
  switch the models.
* Coasting: a miss keeps the prediction (status ``"coasting"``) for up to ``max_coast`` frames,
  then the track is ``"lost"`` and ``found`` is False. While coasting the tip's velocity
  decays (``coast_velocity_tau_s``): nothing says the needle keeps moving.
* Re-acquisition: when lost, a detection consistent with the last axis resumes the track at
  once (its tip stays unconfirmed until a next detection agrees with it within
  ``candidate_tip_tol_mm``; one that does not replaces it); otherwise ``acquire_frames``
  mutually consistent detections start a new one, whose tip is unconfirmed in the same way
  when the last two of them place it more than half ``candidate_tip_tol_mm`` apart (one may
  be a bad tip: a track started on one held it for three frames).
* Tip along an accepted axis: a gated-out tip adds noise (``q_accel_miss_mm_s2``) and damps
  the velocity (``tip_miss_velocity_factor``). A tip that jumps back further than the needle
  can move at ``max_speed_mm_s`` since the tip was last seen is the tip leaving the slice
  (partial out-of-plane): the tip is *held* while the visible end stays short of it, for up
  to ``max_tip_hold`` frames. Other jumps that persist replace the tip: ``tip_reset_ahead``
  consistent frames beyond the prediction (the shaft cannot show past its tip: the tip is back
  in the slice, or advanced fast), ``tip_reset_after`` short of it.
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

# online detector-noise estimate: weight of the given sigmas (in samples), and the largest
# sample taken, as a multiple of the current estimate
NOISE_PRIOR_WEIGHT = 2.0
NOISE_SAMPLE_CLIP = 9.0
NOISE_MIN_SAMPLES = 5
# a visible end that jumped back out of reach and is seen again within this distance of where
# it jumped to (mm) is the tip out of the slice: the tip is held
HOLD_CONFIRM_MM = 1.0
CHI2_1DOF_MEDIAN = 0.45493642311957283    # median of chi-square, 1 degree of freedom

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


def _mix(w0, w1, a, b):
    """The moment-matched mixture [s, v, d, e, f] (position, velocity and the covariance's
    ss, sv, vv) of two tip models a and b weighed w0 and w1."""
    s = w0 * a[0] + w1 * b[0]
    v = w0 * a[1] + w1 * b[1]
    ds0, dv0, ds1, dv1 = a[0] - s, a[1] - v, b[0] - s, b[1] - v
    return [s, v, w0 * (a[2] + ds0 * ds0) + w1 * (b[2] + ds1 * ds1),
            w0 * (a[3] + ds0 * dv0) + w1 * (b[3] + ds1 * dv1),
            w0 * (a[4] + dv0 * dv0) + w1 * (b[4] + dv1 * dv1)]


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
        short of the predicted tip (and within reach), that re-initialise the tip.
    tip_reset_ahead: the same for tip detections beyond the predicted tip (the tip coming
        back into the slice, a fast advance).
    max_tip_hold: frames the tip is held while the visible end lies short of it after a jump
        no needle can make (the tip out of the slice); after that a short tip within reach is
        taken.
    frame_interval_s: time step assumed when ``t`` is not given.
    meas_sigma_angle_deg, meas_sigma_offset_mm, meas_sigma_tip_mm: detector noise (1 sigma) at
        confidence 1 (axis angle, perpendicular offset of the shaft, tip along the axis); the
        variances are divided by the detection's confidence. The starting point of the
        online estimate (see ``noise_window_frames``).
    noise_window_frames: frames over which the detector noise is learnt online; 0 keeps the
        ``meas_sigma_*`` values fixed.
    q_angle_deg, q_offset_mm: axis random walk, per square root of a second.
    q_accel_mm_s2: white-acceleration density of the steady tip model (mm/s^2 per square root
        of Hz).
    manoeuvre_speed_mm_s, manoeuvre_tau_s: the manoeuvre tip model: spread of the velocity and
        the time over which it forgets itself.
    manoeuvre_start_hz, manoeuvre_end_hz: rates of switching from the steady model to the
        manoeuvre model and back.
    tip_outlier_prob, tip_outlier_range_mm: prior probability that a detection's tip is wrong
        although its axis is right, and the range over which such tips spread.
    coast_velocity_tau_s: time constant of the decay of the tip velocity while coasting.
    init_speed_sigma_mm_s: prior uncertainty of the tip velocity of a new track.
    max_speed_mm_s: bound on the tip speed along the axis.
    q_accel_miss_mm_s2: extra white-acceleration density added to the tip when a tip
        detection along an accepted axis is gated out.
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
                 max_tip_hold=10,
                 frame_interval_s=0.05,
                 meas_sigma_angle_deg=1.0, meas_sigma_offset_mm=0.2, meas_sigma_tip_mm=0.5,
                 q_angle_deg=3.0, q_offset_mm=1.0, q_accel_mm_s2=2.0,
                 manoeuvre_speed_mm_s=20.0, manoeuvre_tau_s=0.1, manoeuvre_start_hz=1.0,
                 manoeuvre_end_hz=4.0,
                 noise_window_frames=20, coast_velocity_tau_s=0.1, tip_outlier_prob=0.1,
                 tip_outlier_range_mm=10.0,
                 init_speed_sigma_mm_s=10.0, max_speed_mm_s=20.0, q_accel_miss_mm_s2=15.0,
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
                            ("tip_reset_ahead", tip_reset_ahead, 1),
                            ("max_tip_hold", max_tip_hold, 1)):
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
        self.max_tip_hold = int(max_tip_hold)

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
        self._man_v2 = pos("manoeuvre_speed_mm_s", manoeuvre_speed_mm_s) ** 2
        self._man_tau = pos("manoeuvre_tau_s", manoeuvre_tau_s)
        self._rate_up = pos("manoeuvre_start_hz", manoeuvre_start_hz)
        self._rate_down = pos("manoeuvre_end_hz", manoeuvre_end_hz)
        try:
            nw = float(noise_window_frames)
        except (TypeError, ValueError):
            nw = -1.0
        if not (nw == 0.0 or 1.0 <= nw < math.inf):
            raise fail(f, "noise_window_frames", "0 (fixed noise) or a window >= 1 frame",
                       repr(noise_window_frames))
        self._forget = 1.0 - 1.0 / nw if nw > 0 else 0.0
        self._noise_window = max(int(round(nw)), 1)
        self._adapt = nw > 0
        # the online noise estimates never fall below 1/20 of the given sigmas
        self._rmin_th, self._rmin_perp, self._rmin_tip = (
            r / 400.0 for r in (self._r_th, self._r_perp, self._r_tip))
        self._coast_tau = pos("coast_velocity_tau_s", coast_velocity_tau_s)
        po = float(tip_outlier_prob)
        if not (0.0 <= po < 1.0):
            raise fail(f, "tip_outlier_prob", "a probability in [0, 1)", tip_outlier_prob)
        self._p_out = po
        self._out_range = pos("tip_outlier_range_mm", tip_outlier_range_mm)
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
        self._pt = [0.0, 0.0, 0.0]    # tip covariance [d, e, f] (the models' mixture)
        self._tm = [[0.0] * 5, [0.0] * 5]   # per model [s, v, d, e, f]: steady, manoeuvre
        self._mu = [1.0, 0.0]               # model probabilities
        # detector noise at confidence 1 (variances), estimated online from the innovations:
        # [sum, weight] with forgetting, the given sigmas counting as NOISE_PRIOR_WEIGHT samples
        self._rn = {k: [NOISE_PRIOR_WEIGHT * r, NOISE_PRIOR_WEIGHT]
                    for k, r in (("th", self._r_th), ("perp", self._r_perp))}
        self._rn_th, self._rn_perp, self._rn_tip = self._r_th, self._r_perp, self._r_tip
        self._t = None
        self._frames_since = 0
        self._conf = 0.0
        self._length = 0.0
        self._cands = []              # consistent gated-out / acquisition detections
        self._cand_gap = 0
        self._tip_cands = []                # consistent gated-out tips: (s, ahead)
        self._hold = 0                      # frames the tip has been held out of the slice
        self._tip_tentative = False         # the tip is one unconfirmed detection's
        self._tip_seen = (0.0, 0.0, 0.0)    # where and when a tip was last accepted
        self._tip_hist = []                 # the last three tips on the axis (x, z, t, conf)
        self._tip_res = []                  # tip-noise samples
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
        r_th, r_perp = self._rn_th * w, self._rn_perp * w
        return dth, rho, (r_th, -lever * r_th, lever * lever * r_th + r_perp)

    # -- filter ----------------------------------------------------------------------------
    def _predict(self, dt):
        self._last_dt = dt
        if dt <= 0.0:
            return
        pa = self._pa
        pa[0] += self._q_th * dt
        pa[2] += self._q_rho * dt
        # tip: interacting multiple models. Mix the two models' estimates by the probability
        # of switching during dt, then predict each with its own motion model.
        p_up = 1.0 - math.exp(-self._rate_up * dt)
        p_down = 1.0 - math.exp(-self._rate_down * dt)
        m0, m1 = self._mu
        c0 = (1.0 - p_up) * m0 + p_down * m1
        c1 = 1.0 - c0
        a, b = self._tm
        dt2, dt3 = dt * dt, dt * dt * dt
        out = []
        for j, cj, w0 in ((0, c0, (1.0 - p_up) * m0), (1, c1, p_up * m0)):
            w0 = w0 / cj if cj > 1e-12 else 0.5
            s, v, d, e, f_ = _mix(w0, 1.0 - w0, a, b)
            if j == 0:
                # steady: constant velocity, white acceleration q_accel_mm_s2
                q = self._q_acc
                out.append([s + v * dt, v, d + 2.0 * dt * e + dt2 * f_ + q * dt3 / 3.0,
                            e + dt * f_ + q * dt2 / 2.0, f_ + q * dt])
            else:
                # manoeuvre: the velocity forgets itself over manoeuvre_tau_s and takes any
                # value of spread manoeuvre_speed_mm_s (Ornstein-Uhlenbeck velocity)
                tau, sv2 = self._man_tau, self._man_v2
                al = math.exp(-dt / tau)
                g = tau * (1.0 - al)              # position gained per unit velocity
                qss = 2.0 * sv2 * tau * (dt - 2.0 * g + 0.5 * tau * (1.0 - al * al))
                qsv = sv2 * tau * (1.0 - al) ** 2
                qvv = sv2 * (1.0 - al * al)
                out.append([s + g * v, al * v, d + 2.0 * g * e + g * g * f_ + max(qss, 0.0),
                            al * (e + g * f_) + qsv, al * al * f_ + qvv])
        self._tm = out
        self._mu = [min(max(c0, 1e-6), 1.0 - 1e-6), min(max(c1, 1e-6), 1.0 - 1e-6)]
        self._combine_tip()

    def _combine_tip(self):
        """The reported tip (s, v, covariance): the models' mixture."""
        (m0, m1), (a, b) = self._mu, self._tm
        self._s, self._v, *pt = _mix(m0, m1, a, b)
        self._pt = pt

    def _set_tip(self, s, v, d, e, f_, mu1=0.5):
        """Both tip models at one state (a new track, a reset tip)."""
        self._tm = [[s, v, d, e, f_], [s, v, d, e, f_]]
        self._mu = [1.0 - mu1, mu1]
        self._combine_tip()

    def _adapt_noise(self, key, sample, conf, floor):
        """One step of the online detector-noise estimate (a variance at confidence 1):
        ``sample`` is the squared innovation less its predicted part. Returns the estimate."""
        acc = self._rn[key]
        old = acc[0] / acc[1]
        if not self._adapt:
            return old
        lam = self._forget
        # clipped, so that one outlier moves the estimate little
        x = min(max(sample * conf, 0.0), NOISE_SAMPLE_CLIP * old)
        acc[0] = lam * acc[0] + x
        acc[1] = lam * acc[1] + 1.0
        return max(acc[0] / acc[1], floor)

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

    def _learn_axis_noise(self, m, y):
        """Update the detector's angle and shaft-offset noise from this innovation."""
        if not self._adapt:
            return
        a, b, c = self._pa
        th, rho = self._th, self._rho
        sn, cs = math.sin(th), math.cos(th)
        X, Z = m.midx - self._cx, m.midz - self._cz
        lever = cs * X + sn * Z
        off = -sn * X + cs * Z - rho
        self._rn_th = self._adapt_noise("th", y[0] * y[0] - a, m.conf, self._rmin_th)
        self._rn_perp = self._adapt_noise(
            "perp", off * off - (lever * lever * a + 2.0 * lever * b + c), m.conf,
            self._rmin_perp)

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
        ds = (math.cos(self._th) * (tipx - self._cx) + math.sin(self._th) * (tipz - self._cz)
              - self._s)
        for mdl in self._tm:
            mdl[0] += ds
        self._s += ds

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
        return c * (m.tipx - self._cx) + s * (m.tipz - self._cz), self._rn_tip / m.conf

    def _update_tip(self, m):
        """Gate and fold the tip; returns True when used."""
        sm, r = self._tip_meas(m)
        y = sm - self._s
        if self._tip_tentative:
            if abs(y) > self._cand_tip:
                return self._reset_tip(m, sm, r)    # still unconfirmed: the newer one
            self._tip_tentative = False
        if self._hold:
            # The tip is held where it was while the visible end lies well short of it (the
            # tip out of the slice). A detection back near the held tip, or beyond it, ends
            # the hold; after max_tip_hold frames a reachable short tip is taken after all
            # (the needle was withdrawn meanwhile).
            if y < -self._cand_tip:
                self._hold += 1
                if self._hold > self.max_tip_hold and self._reachable(m):
                    return self._reset_tip(m, sm, r)
                self._tip_miss()
                return False
            self._hold = 0
        tc = self._tip_cands
        if (tc and tc[-1][1] is None and y < -self._cand_tip
                and abs(sm - tc[-1][0]) <= HOLD_CONFIRM_MM):
            # the visible end is still where it jumped to last frame: hold (below)
            self._hold = 1
            tc.clear()
            self._tip_miss()
            return False
        # gate on the model that allows the most (a detection either model can explain); a
        # tip short of the prediction must also be reachable from where it was last seen
        reach = y >= 0.0 or self._reachable(m)
        if (reach and min((sm - mdl[0]) ** 2 / (mdl[2] + r) for mdl in self._tm)
                <= CHI2_99_1DOF):
            self._learn_tip_noise(m)
            sm, r = self._tip_meas(m)
            # Inside the gate the detection is the tip with probability beta (against a bad
            # tip, prior tip_outlier_prob, anywhere within tip_outlier_range_mm): each model
            # moves by beta times its Kalman step, and the models are weighed by the
            # likelihood of the detection under either hypothesis.
            eps = self._p_out
            clutter = eps / min(max(m.length, 1.0), self._out_range)
            lam = []
            for mdl in self._tm:
                s, v, d, e, f_ = mdl
                yj = sm - s
                S = d + r
                g = (1.0 - eps) * math.exp(-0.5 * min(yj * yj / S, 700.0)) / math.sqrt(
                    2.0 * _PI * S)
                lj = g + clutter
                beta = g / lj
                k0, k1 = d / S, e / S
                mdl[0] = s + beta * k0 * yj
                mdl[1] = self._clip_speed(v + beta * k1 * yj)
                spread = beta * (1.0 - beta) * yj * yj
                mdl[2] = max(d - beta * k0 * d + spread * k0 * k0, 1e-12)
                mdl[3] = e - beta * k0 * e + spread * k0 * k1
                mdl[4] = max(f_ - beta * k1 * e + spread * k1 * k1, 1e-12)
                lam.append(lj)
            w0, w1 = self._mu[0] * lam[0], self._mu[1] * lam[1]
            tot = w0 + w1
            if tot > 0.0 and math.isfinite(tot):
                m1 = min(max(w1 / tot, 1e-6), 1.0 - 1e-6)
                self._mu = [1.0 - m1, m1]
            self._combine_tip()
            self._tip_cands = []
            self._tip_seen = (m.tipx, m.tipz, m.t)
            return True
        # A tip far from the prediction along an accepted axis: an outlier, a manoeuvre the
        # models lag behind, or the tip leaving / re-entering the slice.
        self._tip_miss()
        if not reach:
            # A visible end further back than the needle can have moved since the tip was
            # last seen, on two frames running: the tip has left the slice, not the needle;
            # hold it. (One such frame is an outlier until the next says otherwise.)
            if tc and tc[-1][1] is None:
                self._hold = 1
                tc.clear()
            else:
                tc[:] = [(sm, None)]
            return False
        # A jump that persists replaces the tip: tip_reset_ahead consistent frames beyond
        # the prediction (the shaft cannot show past its tip: the tip is back in the slice,
        # or advanced fast), tip_reset_after short of it (stopped, or withdrawn).
        ahead = y > 0.0
        if tc and (abs(sm - tc[-1][0]) > self._cand_tip or tc[-1][1] != ahead):
            tc.clear()
        tc.append((sm, ahead))
        if len(tc) >= (self.tip_reset_ahead if ahead else self.tip_reset_after):
            return self._reset_tip(m, sm, r)
        return False

    def _tip_miss(self):
        """A frame without a usable tip: widen the tip's uncertainty and stop extrapolating
        its velocity at full speed (the motion model disagrees with the image)."""
        dt = self._last_dt
        q = self._q_miss
        for mdl in self._tm:
            mdl[1] *= self._miss_v
            mdl[2] += q * dt ** 3 / 3.0
            mdl[3] += q * dt * dt / 2.0
            mdl[4] += q * dt
        self._combine_tip()
        self._tip_hist.clear()

    def _reset_tip(self, m, sm, r):
        self._set_tip(sm, 0.0, r, 0.0, self._v0)
        self._tip_seen = (m.tipx, m.tipz, m.t)
        self._tip_cands = []
        self._hold = 0
        return True

    def _learn_tip_noise(self, m):
        """Detector tip noise from the tips of successive detections on the axis: how far
        each lies from the line through its neighbours in time (the needle moves smoothly
        over three frames; a stop or start spoils one or two samples, which the median of
        the last ``noise_window_frames`` ignores)."""
        h = self._tip_hist
        h.append((m.tipx, m.tipz, m.t, m.conf))
        if len(h) > 3:
            del h[0]
        if not self._adapt or len(h) < 3:
            return
        (x0, z0, t0, c0), (x1, z1, t1, c1), (x2, z2, t2, c2) = h
        span = t2 - t0
        if not (span > 0.0):
            return
        a, b = (t2 - t1) / span, (t1 - t0) / span
        ux, uz = math.cos(self._th), math.sin(self._th)
        along = (x1 - a * x0 - b * x2) * ux + (z1 - a * z0 - b * z2) * uz
        # var(along) = R (1 + a^2 + b^2) at equal confidences
        res = self._tip_res
        res.append(along * along / (1.0 + a * a + b * b) * (c0 + c1 + c2) / 3.0)
        if len(res) > self._noise_window:
            del res[0]
        n = len(res)
        est = sorted(res)[n // 2] / CHI2_1DOF_MEDIAN
        if n < NOISE_MIN_SAMPLES:
            est = (NOISE_PRIOR_WEIGHT * self._r_tip + n * est) / (NOISE_PRIOR_WEIGHT + n)
        self._rn_tip = max(est, self._rmin_tip)

    def _reachable(self, m):
        """Whether the detected tip is within reach (``max_speed_mm_s``, plus the candidate
        tolerance) of where the tip was last seen."""
        x, z, t = self._tip_seen
        return math.hypot(m.tipx - x, m.tipz - z) <= self._vmax * (m.t - t) + self._cand_tip

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
        pts = [(c * (k.tipx - self._cx) + s * (k.tipz - self._cz), k.t) for k in cands]
        self._set_tip(pts[-1][0], self._speed_from(pts), self._rn_tip / m.conf, 0.0, self._v0)
        self._active, self._stale = True, False
        self._tip_seen = (m.tipx, m.tipz, m.t)
        self._conf = m.conf
        self._length = m.length
        self._cands = []
        self._tip_cands = []
        self._hold = 0
        # back on the axis it was lost on from one detection: the axis is confirmed by the
        # track's past, the tip is not (it may be a bad tip, and the filter would then hold on
        # to it against the next, good ones); nor is it when the last two detections' tips
        # disagree by more than half the candidate tolerance (one of them may be a bad tip)
        self._tip_tentative = len(cands) == 1 or (
            abs(pts[-1][0] - pts[-2][0]) > 0.5 * self._cand_tip)

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
                    self._learn_axis_noise(m, g[1])
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
            self._tip_hist.clear()
            self._hold = 0            # a hold needs the shaft seen throughout
            if self._active and dt > 0.0:
                # coasting: nothing says the needle keeps moving; let its speed decay
                k = math.exp(-dt / self._coast_tau)
                for mdl in self._tm:      # v <- k v, with its covariance
                    mdl[1] *= k
                    mdl[3] *= k
                    mdl[4] *= k * k
                self._combine_tip()
            if self._active and self._frames_since > self.max_coast:
                self._active, self._stale = False, True
                self._tip_cands = []
                self._hold = 0
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
