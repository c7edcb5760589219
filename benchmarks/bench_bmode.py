"""B-mode formation and scan conversion beside the peers a user would otherwise pick:
scipy.signal.hilbert + NumPy log compression, cv2.remap, scipy.ndimage.map_coordinates.

Run: ``pytest benchmarks/bench_bmode.py --benchmark-only`` or ``python benchmarks/bench_bmode.py``
for the table in RESULTS.md (4096 samples x 256 lines RF, 1024x1024 output).
"""
import time

import numpy as np
import pytest

import usfast as us

FS, F0 = 40e6, 5e6


def make_rf(samples=4096, lines=256, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples)[:, None] / FS
    carrier = np.cos(2 * np.pi * F0 * t + rng.uniform(0, 6.28, lines))
    env = np.abs(rng.standard_normal((samples, lines)) + 1j * rng.standard_normal((samples, lines)))
    return (carrier * env * 1000).astype(np.float32)


def numpy_envelope_log(rf, dr=60.0):
    from scipy.signal import hilbert
    env = np.abs(hilbert(rf, axis=0))
    db = 20 * np.log10(np.maximum(env / env.max(), 1e-30))
    return ((np.clip(db, -dr, 0) + dr) / dr).astype(np.float32)


@pytest.fixture(scope="module")
def rf():
    return make_rf()


@pytest.fixture(scope="module")
def converter():
    probe = us.ProbeGeometry.curvilinear(n_elements=256, radius_mm=40, sector_deg=60,
                                         end_depth_mm=100)
    return us.ScanConverter(probe, (1024, 256), out_shape=(1024, 1024))


@pytest.mark.benchmark(group="envelope+log 4096x256")
def test_usfast_envelope_log(benchmark, rf):
    out = np.empty(rf.shape, np.float32)
    env = np.empty(rf.shape, np.float32)
    benchmark(lambda: us.log_compress(us.envelope(rf, out=env, check_finite=False),
                                      reference=1000.0, out=out, check_finite=False))


@pytest.mark.benchmark(group="envelope+log 4096x256")
def test_usfast_envelope_log_fused(benchmark, rf):
    out = np.empty(rf.shape, np.float32)
    benchmark(lambda: us.envelope_log(rf, reference=1000.0, out=out, check_finite=False))


@pytest.mark.benchmark(group="envelope+log 4096x256")
def test_scipy_hilbert_envelope_log(benchmark, rf):
    benchmark(numpy_envelope_log, rf)


@pytest.mark.benchmark(group="bmode fused 4096x256 dec4")
def test_usfast_bmode(benchmark, rf):
    out = np.empty((1024, 256), np.float32)
    benchmark(lambda: us.bmode(rf, FS, F0, decimation=4, reference=1000.0, out=out,
                               check_finite=False))


@pytest.mark.benchmark(group="scan conversion 1024x256 -> 1024x1024")
def test_usfast_scan(benchmark, converter):
    env = np.random.default_rng(1).random((1024, 256)).astype(np.float32)
    out = np.empty((1024, 1024), np.float32)
    benchmark(lambda: converter(env, out=out, check_finite=False))


@pytest.mark.benchmark(group="scan conversion 1024x256 -> 1024x1024")
def test_cv2_remap(benchmark, converter):
    cv2 = pytest.importorskip("cv2")
    env = np.random.default_rng(1).random((1024, 256)).astype(np.float32)
    m0 = np.ascontiguousarray(converter.map[..., 0])
    m1 = np.ascontiguousarray(converter.map[..., 1])
    benchmark(lambda: cv2.remap(env, m1, m0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))


@pytest.mark.benchmark(group="scan conversion 1024x256 -> 1024x1024")
def test_scipy_map_coordinates(benchmark, converter):
    from scipy.ndimage import map_coordinates
    env = np.random.default_rng(1).random((1024, 256)).astype(np.float32)
    m = converter.map
    benchmark.pedantic(map_coordinates, args=(env, [m[..., 0], m[..., 1]]),
                       kwargs=dict(order=1), rounds=5)


@pytest.mark.benchmark(group="per-call overhead 64x64")
def test_call_overhead(benchmark):
    x = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    out = np.empty_like(x)
    benchmark(lambda: us.log_compress(x, reference=1.0, out=out, check_finite=False))


@pytest.mark.benchmark(group="per-call overhead 64x64")
def test_binding_overhead(benchmark):
    from usfast import _arrays, _backend
    x = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    core = _backend.core()
    d = _arrays.desc(x)
    benchmark(lambda: core.noop(d))


def _median_ms(fn, n=20):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def table():
    rf = make_rf()
    probe = us.ProbeGeometry.curvilinear(n_elements=256, radius_mm=40, sector_deg=60,
                                         end_depth_mm=100)
    sc = us.ScanConverter(probe, (1024, 256), out_shape=(1024, 1024))
    env = np.random.default_rng(1).random((1024, 256)).astype(np.float32)
    o1 = np.empty(rf.shape, np.float32)
    o2 = np.empty(rf.shape, np.float32)
    ob = np.empty((1024, 256), np.float32)
    os_ = np.empty((1024, 1024), np.float32)
    import cv2
    from scipy.ndimage import map_coordinates
    m0 = np.ascontiguousarray(sc.map[..., 0])
    m1 = np.ascontiguousarray(sc.map[..., 1])
    x64 = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    o64 = np.empty_like(x64)
    rows = {
        "usfast envelope+log (4096x256)": _median_ms(lambda: us.log_compress(
            us.envelope(rf, out=o1, check_finite=False), reference=1000.0, out=o2,
            check_finite=False)),
        "usfast envelope_log, one pass (4096x256)": _median_ms(lambda: us.envelope_log(
            rf, reference=1000.0, out=o2, check_finite=False)),
        "scipy hilbert + numpy log (4096x256)": _median_ms(lambda: numpy_envelope_log(rf), 5),
        "usfast bmode fused, dec 4 (4096x256 -> 1024x256)": _median_ms(lambda: us.bmode(
            rf, FS, F0, decimation=4, reference=1000.0, out=ob, check_finite=False)),
        "usfast scan convert (1024x256 -> 1024x1024)": _median_ms(
            lambda: sc(env, out=os_, check_finite=False)),
        "cv2.remap INTER_LINEAR, same maps": _median_ms(
            lambda: cv2.remap(env, m1, m0, cv2.INTER_LINEAR)),
        "scipy map_coordinates order=1": _median_ms(
            lambda: map_coordinates(env, [sc.map[..., 0], sc.map[..., 1]], order=1), 3),
        "usfast log_compress 64x64 (per-call overhead)": _median_ms(
            lambda: us.log_compress(x64, reference=1.0, out=o64, check_finite=False), 2000),
    }
    for k, v in rows.items():
        print(f"| {k} | {v:.3f} ms |")
    peer = rows["scipy hilbert + numpy log (4096x256)"]
    for k in ("usfast envelope+log (4096x256)", "usfast envelope_log, one pass (4096x256)"):
        print(f"{k}: {peer / rows[k]:.1f}x faster than scipy hilbert + numpy log")
    return rows


if __name__ == "__main__":
    table()
