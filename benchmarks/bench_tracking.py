"""Tracking and overlay latency: NeedleTracker.update / update_estimate per frame (the cost on
top of the detector; the target is <= 1 ms on the CPU), Overlay.primitives and Overlay.render
per frame at 256..1024 (2048 with USFAST_BENCH_FULL=1), Streamer.send.

Run: ``pytest benchmarks/bench_tracking.py --benchmark-only`` or
``python benchmarks/bench_tracking.py`` for a short table.
"""
import math
import os
import time

import numpy as np
import pytest

from usfast import ImageGeometry, NeedleEstimate
from usfast.overlay import Overlay
from usfast.tracking import NeedleTracker

FULL = bool(os.environ.get("USFAST_BENCH_FULL"))
SIZES = [256, 512, 1024, 2048] if FULL else [256, 512, 1024]
FPS = 20.0


def geometry(n, width_mm=40.0):
    d = width_mm / n
    return ImageGeometry(spacing_mm=(d, d), origin_mm=(0.0, -width_mm / 2), shape=(n, n))


def detections(geom, n=400, seed=0):
    """A needle at 35 degrees from the left edge advancing at 3 mm/s, with detector noise and
    a drop-out every 40 frames: (t, NeedleEstimate) pairs."""
    rng = np.random.default_rng(seed)
    x0 = geom.origin_mm[1]
    a = math.radians(35.0)
    u = (math.cos(a), math.sin(a))
    out = []
    for i in range(n):
        t = i / FPS
        L = 10.0 + 3.0 * (t % 6.0) + rng.normal(0, 0.4)
        entry = (x0, 2.0 + rng.normal(0, 0.1))
        tip = (entry[0] + L * u[0], entry[1] + L * u[1])
        if i % 40 in (20, 21):
            est = NeedleEstimate(found=False, confidence=0.1)
        else:
            est = NeedleEstimate(found=True, tip_mm=tip, entry_mm=entry, direction=u,
                                 tip_px=tuple(geom.mm_to_px(tip)),
                                 entry_px=tuple(geom.mm_to_px(entry)), angle_deg=35.0,
                                 visible_length_mm=L, confidence=rng.uniform(0.6, 0.95))
        out.append((t, est))
    return out


class Cycle:
    """Feeds the same sequence forever with increasing timestamps."""

    def __init__(self, seq):
        self.seq, self.i = seq, 0
        self.period = len(seq) / FPS

    def next(self):
        t, est = self.seq[self.i % len(self.seq)]
        t += self.period * (self.i // len(self.seq))
        self.i += 1
        return t, est


@pytest.mark.benchmark(group="tracker per frame")
def test_tracker_update_estimate(benchmark):
    g = geometry(512)
    tr = NeedleTracker(g)
    cyc = Cycle(detections(g))

    def step():
        t, est = cyc.next()
        tr.update_estimate(est, t=t)
    benchmark(step)


@pytest.mark.benchmark(group="tracker per frame")
def test_tracker_update_image_free_detector(benchmark):
    """update(image) with a detector that costs nothing: the tracker's own overhead."""
    g = geometry(512)
    cyc = Cycle(detections(g))
    box = {}

    def detector(image, geometry):
        return box["est"]
    tr = NeedleTracker(g, detector=detector)
    img = np.zeros((512, 512), np.float32)

    def step():
        t, box["est"] = cyc.next()
        tr.update(img, t=t)
    benchmark(step)


def _locate():
    try:
        from usfast.needle import locate_needle
    except ImportError:
        import usfast
        locate_needle = getattr(usfast, "locate_needle", None)
    if locate_needle is None:
        pytest.skip("usfast.locate_needle is not available")
    return locate_needle


def _needle_image(n=512):
    import cv2
    g = geometry(n)
    rng = np.random.default_rng(0)
    img = (0.25 * rng.rayleigh(1.0, size=(n, n))).clip(0, 1).astype(np.float32)
    a = math.radians(35.0)
    p0 = g.mm_to_px((-20.0, 2.0))
    p1 = g.mm_to_px((-20.0 + 25 * math.cos(a), 2.0 + 25 * math.sin(a)))
    cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1.0, 3)
    return g, img


@pytest.mark.benchmark(group="tracker with locate_needle 512")
def test_locate_needle_alone(benchmark):
    locate = _locate()
    g, img = _needle_image()
    benchmark(lambda: locate(img, geometry=g))


@pytest.mark.benchmark(group="tracker with locate_needle 512")
def test_tracker_update_with_locate_needle(benchmark):
    _locate()
    g, img = _needle_image()
    tr = NeedleTracker(g)
    clock = [0.0]

    def step():
        clock[0] += 1 / FPS
        tr.update(img, t=clock[0])
    benchmark(step)


def _state(g):
    tr = NeedleTracker(g)
    for t, est in detections(g)[:15]:
        s = tr.update_estimate(est, t=t)
    return s


@pytest.mark.parametrize("n", SIZES)
def test_overlay_render(benchmark, n):
    benchmark.group = f"overlay render {n}x{n}"
    g = geometry(n)
    ov = Overlay(g, target_mm=(5.0, 30.0), guide_angles_deg=(30, 45, 60))
    s = _state(g)
    img = np.random.default_rng(0).random((n, n), dtype=np.float32)
    out = np.empty((n, n, 3), np.uint8)
    benchmark(lambda: ov.render(img, s, out=out))


@pytest.mark.parametrize("n", SIZES)
def test_overlay_render_uint8(benchmark, n):
    benchmark.group = f"overlay render {n}x{n}"
    g = geometry(n)
    ov = Overlay(g, target_mm=(5.0, 30.0), guide_angles_deg=(30, 45, 60))
    s = _state(g)
    img = np.random.default_rng(0).integers(0, 256, (n, n), dtype=np.uint8)
    out = np.empty((n, n, 3), np.uint8)
    benchmark(lambda: ov.render(img, s, out=out))


@pytest.mark.benchmark(group="overlay primitives")
def test_overlay_primitives(benchmark):
    g = geometry(512)
    ov = Overlay(g, target_mm=(5.0, 30.0), guide_angles_deg=(30, 45, 60))
    s = _state(g)
    benchmark(lambda: ov.primitives(s))


@pytest.mark.benchmark(group="igtl send 512")
def test_streamer_send_with_a_client(benchmark):
    pyigtl = pytest.importorskip("pyigtl")
    from usfast.igtl import Streamer
    g = geometry(512)
    s = _state(g)
    img = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    with Streamer(port=0, geometry=g) as st:
        client = pyigtl.OpenIGTLinkClient("127.0.0.1", st.port)
        try:
            end = time.monotonic() + 5
            while st.clients == 0 and time.monotonic() < end:
                time.sleep(0.01)
            benchmark(lambda: st.send(img, s))
        finally:
            client.communication_thread_stop_requested = True


def _median(fn, n=300):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


if __name__ == "__main__":
    g = geometry(512)
    tr = NeedleTracker(g)
    cyc = Cycle(detections(g))

    def step():
        t, est = cyc.next()
        tr.update_estimate(est, t=t)
    print(f"NeedleTracker.update_estimate: {_median(step, 2000) * 1e6:8.1f} us / frame")
    for n in SIZES:
        gn = geometry(n)
        ov = Overlay(gn, target_mm=(5.0, 30.0), guide_angles_deg=(30, 45, 60))
        s = _state(gn)
        img = np.random.default_rng(0).random((n, n), dtype=np.float32)
        out = np.empty((n, n, 3), np.uint8)
        print(f"Overlay.render {n:4d}x{n:<4d} float32: "
              f"{_median(lambda: ov.render(img, s, out=out), 100) * 1e3:8.2f} ms")
