"""Frame generation time of usfast.sim (target: a 512 x 512 frame in <= 50 ms on 2 CPU cores).

pytest-benchmark:  pytest benchmarks/bench_sim.py --benchmark-only
stand-alone:       python benchmarks/bench_sim.py      (prints median / best per size)

Cases: ``render`` (one image from scratch: scatterers, echogenicity map, PSF, needle), a
sequence ``frame`` (the scatterer field is drawn once per sequence; each frame is PSF + noise +
needle + probe motion), and beam-space RF for a curvilinear probe.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import usfast
from usfast import sim

SIZES = [256, 512, 1024]


def _setup(n):
    g = sim.default_geometry((n, n), 0.08 * 512 / n)
    ph = sim.Phantom.random(1, g, layers=2, inclusions=2)
    look = sim.Look.random(1)
    nd = sim.Needle((2.0, 20.0), 35.0)
    return g, ph, look, nd


def _sequence(n):
    return sim.insertion(duration_s=10.0, fps=20, angle_deg=35.0, seed=1, shape=(n, n),
                         spacing_mm=0.08 * 512 / n)


@pytest.mark.parametrize("n", SIZES)
def test_bench_render(benchmark, n):
    g, ph, look, nd = _setup(n)
    env = benchmark(lambda: sim.render(ph, g, seed=3, look=look, needle=nd))
    assert env.shape == (n, n)


@pytest.mark.parametrize("n", SIZES)
def test_bench_sequence_frame(benchmark, n):
    seq = _sequence(n)
    seq.envelope(0)
    it = iter(range(1, 10**9))
    env = benchmark(lambda: seq.envelope(next(it) % len(seq)))
    assert env.shape == (n, n)


def test_bench_rf_curvilinear(benchmark):
    probe = usfast.ProbeGeometry.curvilinear(n_lines=128, radius_mm=40.0, sector_deg=60.0,
                                             end_depth_mm=60.0)
    ph = sim.Phantom.random(1, probe)
    fr = benchmark(lambda: sim.render_rf(ph, probe, seed=2, fs_hz=30e6))
    assert fr.rf.shape[1] == 128


def _time(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts)), 1e3 * min(ts)


def main():
    print("usfast.sim frame generation (ms): median / best")
    for n in SIZES:
        g, ph, look, nd = _setup(n)
        r = _time(lambda: sim.render(ph, g, seed=3, look=look, needle=nd), 15)
        seq = _sequence(n)
        it = iter(range(10**9))
        s = _time(lambda: seq.envelope(next(it) % len(seq)), 15)
        print(f"  {n:4d} x {n:<4d}  render {r[0]:7.1f} / {r[1]:7.1f}   "
              f"sequence frame {s[0]:7.1f} / {s[1]:7.1f}")
    probe = usfast.ProbeGeometry.curvilinear(n_lines=128, radius_mm=40.0, sector_deg=60.0,
                                             end_depth_mm=60.0)
    ph = sim.Phantom.random(1, probe)
    r = _time(lambda: sim.render_rf(ph, probe, seed=2, fs_hz=30e6), 5)
    print(f"  RF curvilinear 128 lines x {int(2 * 60 / 1.54e6 * 30e6) + 1} samples "
          f"{r[0]:7.1f} / {r[1]:7.1f}")


if __name__ == "__main__":
    main()
