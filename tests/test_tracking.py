"""Tests for usfast.tracking: the needle tracker on synthetic detection sequences.

The sequences are made here (true trajectory + detector noise + drop-outs + outliers +
distractors), so these tests do not depend on the detector or the simulator.

Scene: a 40 x 50 mm linear-probe image (0.1 mm pixels, x from -20 to 19.9 mm, z from 0 to
49.9 mm). The needle enters at the left edge at about 2 mm depth at 35 degrees. A bright
horizontal fascia line lies at 14 mm depth; a detector that loses the needle may report it.
"""
import json
import math
import time

import numpy as np
import pytest

from usfast import ImageGeometry, InputError, NeedleEstimate
from usfast.tracking import CHI2_99_1DOF, CHI2_99_2DOF, NeedleState, NeedleTracker

GEOM = ImageGeometry(spacing_mm=(0.1, 0.1), origin_mm=(0.0, -20.0), shape=(500, 400))
X_LEFT = -20.0
FASCIA_Z = 14.0
FPS = 20.0


# -- synthetic sequences -------------------------------------------------------------------
def needle_estimate(tip, angle_deg, *, from_left=True, conf=0.8, geom=GEOM):
    """A detection of a straight needle with its tip at ``tip`` (mm) and the given angle; the
    entry point is where the line meets the image's left (or right) edge."""
    a = math.radians(angle_deg)
    u = (math.cos(a), math.sin(a)) if from_left else (-math.cos(a), math.sin(a))
    x_edge = X_LEFT if from_left else X_LEFT + 39.9
    k = (tip[0] - x_edge) / u[0]
    entry = (x_edge, tip[1] - k * u[1])
    if entry[1] < 0:                        # enters through the top instead
        k = tip[1] / u[1]
        entry = (tip[0] - k * u[0], 0.0)
    length = math.hypot(tip[0] - entry[0], tip[1] - entry[1])
    tip_px = tuple(geom.mm_to_px(tip))
    entry_px = tuple(geom.mm_to_px(entry))
    return NeedleEstimate(found=True, tip_px=tip_px, tip_mm=tuple(tip), entry_px=entry_px,
                          entry_mm=entry, angle_deg=angle_deg, direction=u,
                          visible_length_mm=length, confidence=conf)


def fascia_estimate(rng):
    """The distractor: the fascia line at FASCIA_Z (about 2 degrees), reported as a needle."""
    tilt = rng.uniform(1.0, 3.0)
    return needle_estimate((rng.uniform(8.0, 12.0), FASCIA_Z + 0.5), tilt,
                           conf=rng.uniform(0.6, 0.9))


def missing(conf=0.1):
    return NeedleEstimate(found=False, confidence=conf)


def speed_profile(t):
    """Insertion speed (mm/s) along the shaft: hold, advance, pause, advance, withdraw,
    pause, re-advance."""
    knots = [(0.0, 0.0), (1.0, 4.0), (4.0, 0.0), (5.0, 3.0), (8.0, -4.0), (9.5, 0.0),
             (10.5, 3.0)]
    v = 0.0
    for t0, vk in knots:
        if t >= t0:
            v = vk
    return v


def true_track(duration_s, *, fine_dt=1e-3, ramp_s=0.3, depth0=10.0):
    """Tip depth along the shaft L(t) (smoothed speed profile: hand motion has no steps)."""
    ts = np.arange(0.0, duration_s + 1.0, fine_dt)
    v = np.array([speed_profile(t) for t in ts])
    k = int(ramp_s / fine_dt)
    v = np.convolve(v, np.ones(k) / k, mode="full")[:len(ts)]
    L = depth0 + np.cumsum(v) * fine_dt
    return ts, L, v


def make_sequence(seed, *, n=240, dropouts=((50, 3), (120, 4), (200, 2)),
                  fascia_dropout=(150, 5), fascia_outliers=(80, 175), jump_prob=0.05,
                  tip_sigma=0.5, perp_sigma=0.15, angle_sigma=0.8, angle0=35.0, entry_z=2.0):
    """Frames of (t, detection, true_tip_mm, true_angle_deg, kind).

    kind: "needle" (a noisy detection), "jump" (tip 3-6 mm short along the shaft), "none"
    (drop-out, found=False), "fascia" (the detector reports the fascia line instead).
    Truth includes hand tremor (9 Hz, 0.1 mm along the shaft, 0.3 degrees) and probe tremor
    (7 Hz, 0.1 mm in depth).
    """
    rng = np.random.default_rng(seed)
    ts_fine, L_fine, _ = true_track(n / FPS)
    frames = []
    t = 0.0
    drop = {i for s, m in dropouts for i in range(s, s + m)}
    fas = set(range(fascia_dropout[0], fascia_dropout[0] + fascia_dropout[1])) \
        if fascia_dropout else set()
    fas |= set(fascia_outliers)
    for i in range(n):
        t = i / FPS + rng.uniform(-0.003, 0.003)
        L = np.interp(t, ts_fine, L_fine) + 0.1 * math.sin(2 * math.pi * 9.0 * t)
        ang = angle0 + 0.3 * math.sin(2 * math.pi * 9.0 * t + 1.0)
        ez = entry_z + 0.1 * math.sin(2 * math.pi * 7.0 * t)
        a = math.radians(ang)
        tip = (X_LEFT + L * math.cos(a), ez + L * math.sin(a))
        if i in drop:
            kind, det = "none", missing()
        elif i in fas:
            kind, det = "fascia", fascia_estimate(rng)
        else:
            along = rng.normal(0.0, tip_sigma)
            kind = "needle"
            if rng.random() < jump_prob:
                along, kind = -rng.uniform(3.0, 6.0), "jump"
            perp = rng.normal(0.0, perp_sigma)
            ma = math.radians(ang + rng.normal(0.0, angle_sigma))
            u = (math.cos(a), math.sin(a))
            dtip = (tip[0] + along * u[0] - perp * u[1], tip[1] + along * u[1] + perp * u[0])
            det = needle_estimate(dtip, math.degrees(ma), conf=rng.uniform(0.55, 0.95))
        frames.append((t, det, tip, ang, kind))
    return frames


def run(tracker, frames):
    return [tracker.update_estimate(det, t=t) for t, det, *_ in frames]


def tip_err(state_or_est, tip):
    return math.hypot(state_or_est.tip_mm[0] - tip[0], state_or_est.tip_mm[1] - tip[1])


def rmse(errs):
    return float(np.sqrt(np.mean(np.square(errs))))
