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


def visible_runs_end(frames):
    """Indices where the needle is detected again after a drop-out (a run of "none" or
    "fascia" frames)."""
    out = []
    for i in range(1, len(frames)):
        if frames[i][4] in ("needle", "jump") and frames[i - 1][4] in ("none", "fascia"):
            if i >= 2 and frames[i - 2][4] in ("none", "fascia"):   # a drop-out, not one outlier
                out.append(i)
            elif frames[i - 1][4] == "none":
                out.append(i)
    return out


def straight_sequence(n, *, angle_deg=35.0, entry_z=2.0, depth0=12.0, speed=3.0, t0=0.0,
                      seed=0, tip_sigma=0.3, from_left=True):
    """A needle advancing at constant ``speed`` mm/s with mild detector noise."""
    rng = np.random.default_rng(seed)
    a = math.radians(angle_deg)
    sx = 1.0 if from_left else -1.0
    x_edge = X_LEFT if from_left else X_LEFT + 39.9
    out = []
    for i in range(n):
        t = t0 + i / FPS
        L = depth0 + speed * (t - t0)
        tip = (x_edge + sx * L * math.cos(a), entry_z + L * math.sin(a))
        along = rng.normal(0, tip_sigma)
        dtip = (tip[0] + sx * along * math.cos(a), tip[1] + along * math.sin(a))
        det = needle_estimate(dtip, angle_deg + rng.normal(0, 0.5), from_left=from_left,
                              conf=0.8)
        out.append((t, det, tip, angle_deg, "needle"))
    return out


# -- the state -----------------------------------------------------------------------------
def test_chi2_gates_are_the_99_percent_quantiles():
    scipy_stats = pytest.importorskip("scipy.stats")
    assert CHI2_99_1DOF == pytest.approx(scipy_stats.chi2.ppf(0.99, 1), rel=1e-9)
    assert CHI2_99_2DOF == pytest.approx(scipy_stats.chi2.ppf(0.99, 2), rel=1e-9)


def test_state_is_an_estimate_and_round_trips_through_json():
    tr = NeedleTracker(GEOM)
    frames = straight_sequence(10)
    states = run(tr, frames)
    s = states[-1]
    assert isinstance(s, NeedleState) and isinstance(s, NeedleEstimate)
    assert s.found and s.status == "tracking"
    text = json.dumps(s.to_dict(), allow_nan=False)
    back = NeedleState.from_dict(json.loads(text))
    assert back.to_dict() == s.to_dict()
    for key in ("velocity_mm_s", "status", "frames_since_detection", "t", "tip_sigma_mm"):
        assert key in s.to_dict()


def test_static_needle_hand_computed_tip_entry_and_angle():
    # Needle at 30 degrees from the left, tip at (0, 20) mm. Entry on the left edge x = -20:
    # z = 20 - 20 * tan(30) = 8.4530 mm. Perfect detections: the filter must sit on them.
    tip = (0.0, 20.0)
    tr = NeedleTracker(GEOM)
    for i in range(20):
        s = tr.update_estimate(needle_estimate(tip, 30.0, conf=0.9), t=i / FPS)
    assert s.status == "tracking" and s.found
    assert s.tip_mm == pytest.approx(tip, abs=1e-6)
    assert s.entry_mm == pytest.approx((-20.0, 20.0 - 20.0 * math.tan(math.radians(30))),
                                       abs=1e-6)
    assert s.angle_deg == pytest.approx(30.0, abs=1e-6)
    assert s.direction == pytest.approx((math.cos(math.radians(30)), 0.5), abs=1e-9)
    # pixel coordinates from the geometry: x_px = (x + 20) / 0.1, z_px = z / 0.1
    assert s.tip_px == pytest.approx((200.0, 200.0), abs=1e-6)
    assert s.visible_length_mm == pytest.approx(20.0 / math.cos(math.radians(30)), rel=1e-3)
    assert abs(s.velocity_mm_s) < 1e-6
    assert s.frames_since_detection == 0 and s.accepted


def test_needle_from_the_right():
    # 50 degrees from the right edge (x = 19.9): direction (-cos 50, sin 50)
    frames = straight_sequence(30, angle_deg=50.0, from_left=False, speed=2.0, tip_sigma=0.0)
    states = run(NeedleTracker(GEOM, side="right"), frames)
    s = states[-1]
    assert s.status == "tracking"
    assert s.direction[0] < 0 and s.direction[1] > 0
    assert s.angle_deg == pytest.approx(50.0, abs=0.5)
    assert tip_err(s, frames[-1][2]) < 0.2


def test_velocity_with_irregular_time_steps():
    # tip advancing at 5 mm/s along a 45-degree needle; frames 20 to 100 ms apart
    rng = np.random.default_rng(3)
    t, L = 0.0, 10.0
    a = math.radians(45.0)
    tr = NeedleTracker(GEOM)
    for i in range(80):
        dt = rng.uniform(0.02, 0.1)
        t += dt
        L += 5.0 * dt
        tip = (X_LEFT + L * math.cos(a), 1.0 + L * math.sin(a))
        s = tr.update_estimate(needle_estimate(tip, 45.0), t=t)
    assert s.velocity_mm_s == pytest.approx(5.0, abs=0.2)
    assert tip_err(s, tip) < 0.1
    assert s.t == pytest.approx(t)


# -- the proof on realistic sequences ------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_tracked_tip_rmse_beats_the_raw_detector(seed):
    """Drop-outs, tremor, withdrawal, tip jumps and fascia distractors (see make_sequence):
    the tracked tip RMSE is <= 0.5 mm and below the raw detector's, even below the raw
    detector on its good frames alone."""
    frames = make_sequence(seed)
    states = run(NeedleTracker(GEOM), frames)
    raw_all = rmse([tip_err(d, tip) for _, d, tip, _, k in frames if d.found])
    raw_needle = rmse([tip_err(d, tip) for _, d, tip, _, k in frames if k in ("needle", "jump")])
    raw_good = rmse([tip_err(d, tip) for _, d, tip, _, k in frames if k == "needle"])
    tracked = rmse([tip_err(s, f[2]) for s, f in zip(states, frames) if s.found])
    ang = rmse([s.angle_deg - f[3] for s, f in zip(states, frames) if s.found])
    assert tracked <= 0.5
    assert tracked < raw_good < raw_needle < raw_all
    assert ang < 0.8
    # the needle is reported on every frame but the first few (acquisition takes 2
    # consistent detections)
    assert all(s.found for s in states[5:])
    # never on the fascia: no reported tip within 1 mm of its depth while the truth is 3 mm off
    for s, f in zip(states, frames):
        if s.found and abs(f[2][1] - FASCIA_Z) > 3.0:
            assert abs(s.tip_mm[1] - FASCIA_Z) > 1.0


@pytest.mark.parametrize("seed", range(5))
def test_reacquisition_within_3_frames_after_each_dropout(seed):
    frames = make_sequence(seed)
    states = run(NeedleTracker(GEOM), frames)
    ends = visible_runs_end(frames)
    assert len(ends) >= 4                       # 3 found=False runs and the fascia run
    for i in ends:
        first = next(j for j in range(i, len(states)) if states[j].status == "tracking")
        assert first - i <= 2, f"re-acquired {first - i + 1} frames after frame {i}"
        assert tip_err(states[first], frames[first][2]) < 1.5


def test_no_jump_to_fascia_during_a_5_frame_dropout():
    """The needle (35 degrees, advancing at 3 mm/s) vanishes for 5 frames; on each of them the
    detector reports the fascia line at 14 mm depth, tilted 1-3 degrees, with confidence
    0.6-0.9. The tracker coasts on the needle and takes it back afterwards."""
    rng = np.random.default_rng(7)
    frames = straight_sequence(60, depth0=6.0, speed=3.0, seed=1)
    hole = range(40, 45)
    for i in hole:
        t, _, tip, ang, _ = frames[i]
        frames[i] = (t, fascia_estimate(rng), tip, ang, "fascia")
    for angle_range in (None, (15.0, 80.0)):
        states = run(NeedleTracker(GEOM, angle_range_deg=angle_range), frames)
        for i in hole:
            s, truth = states[i], frames[i][2]
            assert s.found and s.status == "coasting", (angle_range, i, s.status)
            assert s.frames_since_detection == i - hole[0] + 1
            assert s.angle_deg == pytest.approx(35.0, abs=2.0)
            assert tip_err(s, truth) < 1.5
            assert abs(s.tip_mm[1] - FASCIA_Z) > 2.0       # truth is > 3 mm off the fascia
            assert abs(truth[1] - FASCIA_Z) > 3.0
            assert 0.0 < s.confidence < states[hole[0] - 1].confidence
        assert states[hole[-1] + 1].status == "tracking"
        assert all(tip_err(s, f[2]) < 1.0 for s, f in zip(states[45:], frames[45:]))


def test_fascia_only_while_lost_is_ignored_with_an_angle_range():
    rng = np.random.default_rng(2)
    tr = NeedleTracker(GEOM, angle_range_deg=(15.0, 80.0))
    states = [tr.update_estimate(fascia_estimate(rng), t=i / FPS) for i in range(20)]
    assert not any(s.found for s in states)
    assert all(s.status == "lost" for s in states)


def test_coast_then_lost_then_reacquire_a_reinserted_needle():
    tr = NeedleTracker(GEOM, max_coast=10)
    first = straight_sequence(40, seed=2)
    states = run(tr, first)
    assert states[-1].status == "tracking"
    t_end = first[-1][0]
    gap = [tr.update_estimate(missing(0.2), t=t_end + (k + 1) / FPS) for k in range(30)]
    assert all(s.status == "coasting" and s.found for s in gap[:10])
    assert [s.frames_since_detection for s in gap[:3]] == [1, 2, 3]
    lost = gap[10:]
    assert all(s.status == "lost" and not s.found for s in lost)
    for s in lost:       # nothing stale: every coordinate 0, confidence is the detector's
        assert s.tip_mm == (0.0, 0.0) and s.entry_mm == (0.0, 0.0) and s.angle_deg == 0.0
        assert s.confidence == pytest.approx(0.2)
    # re-inserted from the other side at 50 degrees
    t0 = t_end + 31 / FPS
    second = straight_sequence(20, angle_deg=50.0, from_left=False, depth0=15.0, speed=2.0,
                               t0=t0, seed=3)
    states2 = run(tr, second)
    first_tracking = next(i for i, s in enumerate(states2) if s.status == "tracking")
    assert first_tracking <= 2                       # within 3 frames of reappearing
    assert tip_err(states2[first_tracking], second[first_tracking][2]) < 1.5
    assert states2[-1].angle_deg == pytest.approx(50.0, abs=1.0)
    assert tip_err(states2[-1], second[-1][2]) < 0.6


def _lost_on_its_axis():
    """A tracker that followed a resting needle for 30 frames, then lost it (10 misses)."""
    tr = NeedleTracker(GEOM, max_coast=5)
    frames = straight_sequence(60, speed=0.0, seed=4)
    for t, det, *_ in frames[:30]:
        tr.update_estimate(det, t=t)
    for t, *_ in frames[30:40]:
        s = tr.update_estimate(missing(), t=t)
    assert s.status == "lost"
    return tr, frames


def test_lost_needle_back_on_its_axis_is_taken_at_once():
    tr, frames = _lost_on_its_axis()
    t, det, tip, *_ = frames[40]
    s = tr.update_estimate(det, t=t)
    assert s.status == "tracking" and tip_err(s, tip) < 1.0


def test_a_bad_tip_that_brings_a_lost_needle_back_does_not_stay():
    """Back on its axis from one detection whose tip is 3.5 mm off: the axis is taken at once,
    the tip only until the next detection disagrees with it (it is one unconfirmed tip)."""
    tr, frames = _lost_on_its_axis()
    t, det, tip, *_ = frames[40]
    a = math.radians(det.angle_deg)
    bad_tip = (tip[0] + 3.5 * math.cos(a), tip[1] + 3.5 * math.sin(a))
    s = tr.update_estimate(needle_estimate(bad_tip, det.angle_deg, conf=det.confidence), t=t)
    assert s.status == "tracking"
    for t, det, tip, *_ in frames[41:43]:
        s = tr.update_estimate(det, t=t)
        assert tip_err(s, tip) < 0.5, tip_err(s, tip)


def test_a_new_track_started_on_a_bad_tip_leaves_it_at_the_next_detection():
    """A new track from two consistent detections of an advancing needle (4 mm/s), the second
    with its tip 2.4 mm short (within the 2.5 mm candidate tolerance of the first, so both
    start the track): that tip is not confirmed, and the next good detection, 2.6 mm ahead of
    it, replaces it. Before this rule the filter held the bad tip against the good ones."""
    frames = straight_sequence(6, speed=4.0, seed=5, tip_sigma=0.05)
    tr = NeedleTracker(GEOM)
    t, det, tip, *_ = frames[0]
    assert tr.update_estimate(det, t=t).status != "tracking"
    t, det, tip, *_ = frames[1]
    a = math.radians(det.angle_deg)
    short = (tip[0] - 2.4 * math.cos(a), tip[1] - 2.4 * math.sin(a))
    s = tr.update_estimate(needle_estimate(short, det.angle_deg, conf=det.confidence), t=t)
    assert s.status == "tracking" and tip_err(s, tip) > 2.0      # started on the bad tip
    for t, det, tip, *_ in frames[2:]:
        s = tr.update_estimate(det, t=t)
        assert tip_err(s, tip) < 0.3, tip_err(s, tip)


def test_a_new_track_from_agreeing_detections_keeps_its_tip_against_an_outlier():
    """The other side of that rule: two detections that agree confirm the tip, and a single
    3 mm outlier on the next frame is gated out rather than taken."""
    frames = straight_sequence(6, speed=0.0, seed=6, tip_sigma=0.05)
    tr = NeedleTracker(GEOM)
    for t, det, tip, *_ in frames[:2]:
        s = tr.update_estimate(det, t=t)
    assert s.status == "tracking"
    t, det, tip, *_ = frames[2]
    a = math.radians(det.angle_deg)
    far = (tip[0] - 3.0 * math.cos(a), tip[1] - 3.0 * math.sin(a))
    s = tr.update_estimate(needle_estimate(far, det.angle_deg, conf=det.confidence), t=t)
    assert tip_err(s, tip) < 0.5, tip_err(s, tip)


def test_large_jump_that_persists_resets_the_track():
    """The probe moves: the needle now appears 6 mm deeper at 45 degrees and stays there.
    The first reset_after - 1 detections are gated out (coasting on the old track); then the
    filter restarts on the new needle."""
    tr = NeedleTracker(GEOM, reset_after=6)
    a = straight_sequence(40, seed=5, speed=1.0)
    run(tr, a)
    b = straight_sequence(20, angle_deg=45.0, entry_z=8.0, speed=1.0, depth0=12.0,
                          t0=a[-1][0] + 1 / FPS, seed=6)
    states = run(tr, b)
    assert all(s.status == "coasting" for s in states[:5])
    assert all(s.angle_deg == pytest.approx(35.0, abs=2.0) for s in states[:5])
    assert states[5].status == "tracking" and states[5].accepted
    assert states[5].angle_deg == pytest.approx(45.0, abs=2.0)
    assert all(tip_err(s, f[2]) < 1.0 for s, f in zip(states[5:], b[5:]))


def test_single_outliers_are_gated_and_counted_as_misses():
    tr = NeedleTracker(GEOM)
    frames = straight_sequence(30, speed=2.0, tip_sigma=0.0, seed=8)
    run(tr, frames[:20])
    t, _, tip, ang, _ = frames[20]
    far = needle_estimate((tip[0] + 8.0, tip[1] - 6.0), 10.0, conf=0.95)   # way off the axis
    s = tr.update_estimate(far, t=t)
    assert s.status == "coasting" and not s.accepted and s.frames_since_detection == 1
    assert tip_err(s, tip) < 0.3
    t, _, tip, ang, _ = frames[21]
    a = math.radians(35.0)
    short = needle_estimate((tip[0] - 5 * math.cos(a), tip[1] - 5 * math.sin(a)), 35.0)
    s = tr.update_estimate(short, t=t)          # axis right, tip 5 mm short: tip gated
    assert s.status == "tracking" and tip_err(s, tip) < 0.3


def test_tip_leaving_the_slice_is_held_then_taken_back():
    """Partial out-of-plane: the needle (held still) turns in elevation so its distal 18 mm
    leave the slice for 8 frames (0.4 s); the detector's visible end jumps back 18 mm. The
    needle cannot move that far that fast (max_speed_mm_s = 20: 8 mm in 0.4 s, plus 2.5 mm
    tolerance), so the tracker holds the tip on the axis; when the tip comes back it is
    tracked at once."""
    a = math.radians(35.0)
    u = (math.cos(a), math.sin(a))
    tip = (X_LEFT + 25 * u[0], 2.0 + 25 * u[1])
    short = (tip[0] - 18 * u[0], tip[1] - 18 * u[1])
    rng = np.random.default_rng(11)

    def det(p):
        along = rng.normal(0, 0.3)
        return needle_estimate((p[0] + along * u[0], p[1] + along * u[1]), 35.0)

    tr = NeedleTracker(GEOM)
    t = 0.0
    for _ in range(30):
        s = tr.update_estimate(det(tip), t=t)
        t += 1 / FPS
    for _ in range(8):
        s = tr.update_estimate(det(short), t=t)
        t += 1 / FPS
        assert s.status == "tracking"             # the axis is still seen
        assert tip_err(s, tip) < 1.0              # the tip is held where it was
        assert abs(s.velocity_mm_s) <= 30.0
    s = tr.update_estimate(det(tip), t=t)
    assert tip_err(s, tip) < 1.0


def test_tip_seen_far_ahead_is_taken_after_two_frames():
    """A fast push: the tip is seen 8 mm beyond the prediction and stays there. A single such
    frame is gated out; the second consistent one resets the tip."""
    a = math.radians(35.0)
    u = (math.cos(a), math.sin(a))
    tip = (X_LEFT + 20 * u[0], 2.0 + 20 * u[1])
    far = (tip[0] + 8 * u[0], tip[1] + 8 * u[1])
    tr = NeedleTracker(GEOM)
    for i in range(30):
        tr.update_estimate(needle_estimate(tip, 35.0), t=i / FPS)
    s1 = tr.update_estimate(needle_estimate(far, 35.0), t=30 / FPS)
    assert tip_err(s1, tip) < 0.5
    s2 = tr.update_estimate(needle_estimate(far, 35.0), t=31 / FPS)
    assert tip_err(s2, far) < 0.5


def test_withdrawal_gives_negative_velocity():
    frames = straight_sequence(60, depth0=30.0, speed=-4.0, tip_sigma=0.2, seed=9)
    states = run(NeedleTracker(GEOM), frames)
    assert states[-1].velocity_mm_s == pytest.approx(-4.0, abs=0.7)
    assert tip_err(states[-1], frames[-1][2]) < 0.5


def test_side_prior_ignores_needles_from_the_other_side():
    frames = straight_sequence(10, angle_deg=40.0, from_left=False)
    states = run(NeedleTracker(GEOM, side="left"), frames)
    assert not any(s.found for s in states)
    states = run(NeedleTracker(GEOM, side="right"), frames)
    assert states[-1].found


def test_never_nan_on_odd_input():
    tr = NeedleTracker(GEOM)
    odd = [
        needle_estimate((0.0, 20.0), 30.0),
        NeedleEstimate(found=True, tip_mm=(0.0, 20.0), entry_mm=(0.0, 20.0),
                       direction=(0.0, 0.0), confidence=0.9),          # no direction at all
        NeedleEstimate(found=True, tip_mm=(1e6, -1e6), entry_mm=(0.0, 0.0),
                       direction=(1.0, 0.0), confidence=1.0),          # absurd tip
        NeedleEstimate(found=True, tip_mm=(0.0, 10.0), entry_mm=(-20.0, 10.0),
                       direction=(-1.0, 0.0), confidence=0.5),         # horizontal, reversed
        NeedleEstimate(found=True, tip_mm=(0.0, 30.0), entry_mm=(0.0, 0.0),
                       direction=(0.0, 1.0), confidence=0.5),          # vertical
        NeedleEstimate(found=True, tip_mm=(0.0, 30.0), entry_mm=(0.0, 0.0),
                       direction=(0.0, -3.0), confidence=0.0),         # zero confidence
        missing(),
    ]
    times = [0.0, 0.0, 0.0, 1e-9, 1e4, 1e4, 2e4]           # repeated and huge steps
    for k in range(3):
        for det, t in zip(odd, times):
            s = tr.update_estimate(det, t=t + k * 3e4)
            json.dumps(s.to_dict(), allow_nan=False)
            vals = [*s.tip_mm, *s.tip_px, *s.entry_mm, *s.entry_px, *s.direction,
                    s.angle_deg, s.confidence, s.velocity_mm_s, s.visible_length_mm]
            assert all(math.isfinite(v) for v in vals)
            assert 0.0 <= s.angle_deg <= 90.0 and 0.0 <= s.confidence <= 1.0
            if s.found:
                x0, x1, z0, z1 = GEOM.extent_mm()
                assert x0 - 1e-6 <= s.tip_mm[0] <= x1 + 1e-6
                assert z0 - 1e-6 <= s.tip_mm[1] <= z1 + 1e-6


def test_timestamps_without_t_advance_by_the_frame_interval():
    tr = NeedleTracker(GEOM, frame_interval_s=0.04)
    s = [tr.update_estimate(missing()) for _ in range(3)]
    assert [x.t for x in s] == pytest.approx([0.0, 0.04, 0.08])


# -- bad input -----------------------------------------------------------------------------
def test_timestamps_going_backwards():
    tr = NeedleTracker(GEOM)
    tr.update_estimate(missing(), t=1.0)
    tr.update_estimate(missing(), t=1.0)                  # equal is allowed
    with pytest.raises(InputError, match=r"update_estimate\(t\): expected timestamps that do "
                                         r"not go backwards.*got 0\.5"):
        tr.update_estimate(missing(), t=0.5)
    with pytest.raises(InputError, match=r"\(t\): expected a finite timestamp"):
        tr.update_estimate(missing(), t=float("nan"))
    # a rejected call leaves the clock alone
    assert tr.update_estimate(missing(), t=1.5).t == 1.5


def test_bad_arguments():
    with pytest.raises(InputError, match=r"NeedleTracker\(geometry\)"):
        NeedleTracker((0.1, 0.1))
    with pytest.raises(InputError, match=r"angle_range_deg"):
        NeedleTracker(GEOM, angle_range_deg=(50, 20))
    with pytest.raises(InputError, match=r"side"):
        NeedleTracker(GEOM, side="top")
    with pytest.raises(InputError, match=r"max_coast"):
        NeedleTracker(GEOM, max_coast=-1)
    tr = NeedleTracker(GEOM)
    with pytest.raises(InputError, match=r"update_estimate\(estimate\): expected a "
                                         r"NeedleEstimate"):
        tr.update_estimate({"found": True})
    with pytest.raises(InputError, match=r"update_estimate\(geometry\).*shape"):
        NeedleTracker(ImageGeometry((0.1, 0.1))).update_estimate(missing())


# -- update(image) with a detector ---------------------------------------------------------
class FakeDetector:
    """Stands in for locate_needle: returns prepared estimates, records its calls."""

    def __init__(self, estimates):
        self.estimates = list(estimates)
        self.calls = []

    def __call__(self, image, *, geometry, angle_range_deg=None):
        self.calls.append((image.shape, geometry, angle_range_deg))
        return self.estimates[len(self.calls) - 1]


def test_update_runs_the_detector_with_geometry_and_priors():
    frames = straight_sequence(5, tip_sigma=0.0)
    det = FakeDetector([f[1] for f in frames])
    geom = ImageGeometry(GEOM.spacing_mm, GEOM.origin_mm)          # no shape: taken from image
    tr = NeedleTracker(geom, angle_range_deg=(15, 80), side="left", detector=det)
    img = np.zeros((500, 400), np.float32)
    states = [tr.update(img, t=f[0]) for f in frames]
    assert states[-1].status == "tracking" and tip_err(states[-1], frames[-1][2]) < 0.5
    shape, g, ar = det.calls[0]
    assert shape == (500, 400) and g.shape == (500, 400) and ar == (15.0, 80.0)
    with pytest.raises(InputError, match=r"update\(image\).*\(500, 400\)"):
        tr.update(np.zeros((100, 100), np.float32), t=1.0)
    with pytest.raises(InputError, match=r"update\(image\): expected a 2-D image"):
        tr.update(np.zeros((2, 500, 400), np.float32), t=1.0)
    with pytest.raises(InputError, match=r"update\(t\).*backwards"):
        tr.update(img, t=0.0)
    assert len(det.calls) == 5                       # bad calls never reached the detector
    bad = NeedleTracker(GEOM, detector=FakeDetector([]))
    with pytest.raises(InputError, match=r"update\(image\).*\(500, 400\)"):
        bad.update(np.zeros((100, 100), np.float32))


def _median_time(fn, n):
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def test_update_latency_on_top_of_the_detector_is_below_1_ms():
    frames = make_sequence(0)
    n = len(frames)
    tr = NeedleTracker(GEOM)
    t_est = _median_time(lambda i: tr.update_estimate(frames[i][1], t=frames[i][0] + 100 *
                                                      (i // n)), n)
    # update(image): the same with a detector that costs nothing
    det = lambda image, geometry: frames[det.k % n][1]                          # noqa: E731
    det.k = 0
    img = np.zeros((500, 400), np.float32)
    tr2 = NeedleTracker(GEOM, detector=det)

    def step(i):
        det.k = i
        tr2.update(img, t=frames[i][0])
    t_img = _median_time(step, n)
    assert t_est < 1e-3 and t_img < 1e-3, (t_est, t_img)


def test_update_with_locate_needle_if_present():
    needle = pytest.importorskip("usfast.needle", reason="usfast.needle (locate_needle) is not "
                                 "available yet")
    locate = getattr(needle, "locate_needle", None)
    if locate is None:
        pytest.skip("usfast.needle has no locate_needle")
    # a bright straight needle (35 degrees, tip at (0, 16) mm) on a speckle-like background
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    img = (0.25 * rng.rayleigh(1.0, size=(500, 400))).clip(0, 1).astype(np.float32)
    tip = (0.0, 16.0)
    entry = (-20.0, 16.0 - 20.0 * math.tan(math.radians(35)))
    p0 = tuple(int(round(v)) for v in GEOM.mm_to_px(entry))
    p1 = tuple(int(round(v)) for v in GEOM.mm_to_px(tip))
    cv2.line(img, p0, p1, 1.0, 5)
    tr = NeedleTracker(GEOM)
    ts = []
    for i in range(6):
        t0 = time.perf_counter()
        s = tr.update(img, t=i / FPS)
        ts.append(time.perf_counter() - t0)
    assert isinstance(s, NeedleState)
    json.dumps(s.to_dict(), allow_nan=False)
    if s.found:
        assert tip_err(s, tip) < 3.0
    t_det = []
    for _ in range(6):
        t0 = time.perf_counter()
        locate(img, geometry=GEOM)
        t_det.append(time.perf_counter() - t0)
    assert np.median(ts) - np.median(t_det) < 1e-3 + 0.2 * np.median(t_det)
