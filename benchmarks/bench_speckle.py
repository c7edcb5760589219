"""Speckle reduction beside what a user would otherwise write: vectorised NumPy SRAD/DPAD (the
same equations, float32) and NumPy + scipy.ndimage.uniform_filter Lee, Kuan, Frost and guided
filters (plus an OpenCV boxFilter guided filter for reference), float32, 256^2 .. 2048^2.

Run: ``pytest benchmarks/bench_speckle.py --benchmark-only`` (2048^2 with USFAST_BENCH_FULL=1),
or ``python benchmarks/bench_speckle.py [--quick] [--gpu]`` for a table: median ms per call,
speed-up over the NumPy/SciPy peer, and on a GPU SRAD's time per iteration against the
memory-bandwidth floor (read + write of the image once per iteration).
"""
import argparse
import os

import numpy as np
import pytest
from scipy import ndimage as ndi

import usfast.speckle as sp
from bench_bmode import _median_ms  # benchmarks/ is on the path (script or pytest)

SIZES = [256, 512, 1024, 2048] if os.environ.get("USFAST_BENCH_FULL") else [256, 512, 1024]
ITERS = 10  # diffusion iterations per timed call
CU2 = sp.RAYLEIGH_CV ** 2


def image(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.rayleigh(1.0, (n, n)).astype(np.float32)


# ---- NumPy / SciPy peers ------------------------------------------------------------------------
def _neighbours(x):
    return (np.concatenate([x[:1], x[:-1]]), np.concatenate([x[1:], x[-1:]]),
            np.concatenate([x[:, :1], x[:, :-1]], axis=1),
            np.concatenate([x[:, 1:], x[:, -1:]], axis=1))


def numpy_srad(x, iterations=ITERS, dt=0.05, tile=32):
    """SRAD with the median-of-tiles q0, vectorised NumPy (image sides multiples of the tile)."""
    x = x.copy()
    R, C = x.shape
    for _ in range(iterations):
        t = x.reshape(R // tile, tile, C // tile, tile)
        m = t.mean(axis=(1, 3))
        q0 = float(np.median(t.var(axis=(1, 3)) / np.maximum(m * m, 1e-30)))
        n, s, w, e = _neighbours(x)
        dn, ds, dw, de = n - x, s - x, w - x, e - x
        lap = dn + ds + dw + de
        m4 = x + 0.25 * lap
        num = 0.5 * (dn * dn + ds * ds + dw * dw + de * de) - lap * lap / 16
        q2 = num / np.maximum(m4 * m4, 1e-30)
        c = np.clip(q0 * (1 + q0) / np.maximum(q2 + q0 * q0, 1e-30), 0, 1)
        cs = np.concatenate([c[1:], c[-1:]])
        ce = np.concatenate([c[:, 1:], c[:, -1:]], axis=1)
        x = x + dt * (c * dn + cs * ds + c * dw + ce * de)
    return x


def _stats(x, w):
    m = ndi.uniform_filter(x, w)
    v = np.maximum(ndi.uniform_filter(x * x, w) - m * m, 0)
    return m, v


def numpy_dpad(x, iterations=ITERS, dt=0.05, w=5):
    x = x.copy()
    for _ in range(iterations):
        m, v = _stats(x, w)
        ci2 = v / np.maximum(m * m, 1e-30)
        cn2 = float(np.median(ci2))
        c = np.clip(cn2 * (1 + ci2) / np.maximum(ci2 * (1 + cn2), 1e-30), 0, 1)
        n, s, ww, e = _neighbours(x)
        cs = np.concatenate([c[1:], c[-1:]])
        ce = np.concatenate([c[:, 1:], c[:, -1:]], axis=1)
        x = x + dt * (c * (n - x) + cs * (s - x) + c * (ww - x) + ce * (e - x))
    return x


def numpy_lee(x, w=7, cu2=CU2):
    m, v = _stats(x, w)
    k = np.clip((v - cu2 * m * m) / (v + 1e-30), 0, 1)
    return m + k * (x - m)


def numpy_kuan(x, w=7, cu2=CU2):
    m, v = _stats(x, w)
    k = np.clip((v - cu2 * m * m) / (v * (1 + cu2) + 1e-30), 0, 1)
    return m + k * (x - m)


def numpy_frost(x, w=7, cu2=CU2, damping=1.0):
    m, v = _stats(x, w)
    a = (damping / cu2) * v / np.maximum(m * m, 1e-30)
    h = w // 2
    xp = np.pad(x, h, mode="reflect")
    num = np.zeros_like(x)
    den = np.zeros_like(x)
    R, C = x.shape
    for dr in range(-h, h + 1):
        for dc in range(-h, h + 1):
            wt = np.exp(-a * (abs(dr) + abs(dc)))
            num += wt * xp[h + dr:h + dr + R, h + dc:h + dc + C]
            den += wt
    return num / den


def numpy_guided(x, w=7, eps=None):
    eps = float(np.var(x)) if eps is None else eps
    m, v = _stats(x, w)
    a = v / (v + eps)
    b = m - a * m
    return ndi.uniform_filter(a, w) * x + ndi.uniform_filter(b, w)


def opencv_guided(x, w=7, eps=None):
    import cv2
    eps = float(np.var(x)) if eps is None else eps

    def box(z):
        return cv2.boxFilter(z, -1, (w, w))

    m = box(x)
    v = box(x * x) - m * m
    a = v / (v + eps)
    b = m - a * m
    return box(a) * x + box(b)


OPS = {
    # name: (usfast call, NumPy/SciPy peer, label)
    "srad": (lambda x, o: sp.srad(x, iterations=ITERS, out=o, check_finite=False), numpy_srad,
             f"SRAD {ITERS} it"),
    "dpad": (lambda x, o: sp.dpad(x, iterations=ITERS, out=o, check_finite=False), numpy_dpad,
             f"DPAD {ITERS} it"),
    "lee": (lambda x, o: sp.lee(x, out=o, check_finite=False), numpy_lee, "Lee 7x7"),
    "kuan": (lambda x, o: sp.kuan(x, out=o, check_finite=False), numpy_kuan, "Kuan 7x7"),
    "frost": (lambda x, o: sp.frost(x, out=o, check_finite=False), numpy_frost, "Frost 7x7"),
    "guided": (lambda x, o: sp.guided(x, out=o, check_finite=False), numpy_guided, "guided 7x7"),
}


# ---- pytest-benchmark ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", list(OPS))
def test_usfast(benchmark, op, n):
    benchmark.group = f"{op} {n}x{n}"
    x = image(n)
    o = np.empty_like(x)
    benchmark(OPS[op][0], x, o)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", list(OPS))
def test_numpy_scipy(benchmark, op, n):
    benchmark.group = f"{op} {n}x{n}"
    x = image(n)
    benchmark.pedantic(OPS[op][1], args=(x,), rounds=3 if n >= 1024 else 10)


@pytest.mark.parametrize("n", SIZES)
def test_opencv_boxfilter_guided(benchmark, n):
    pytest.importorskip("cv2")
    benchmark.group = f"guided {n}x{n}"
    benchmark(opencv_guided, image(n))


# ---- script: the table --------------------------------------------------------------------------
def cpu_table(sizes, reps):
    print("| op | size | usfast cpu ms | NumPy/SciPy ms | speed-up |")
    print("|---|---|---|---|---|")
    rows = []
    for op, (ours, peer, label) in OPS.items():
        for n in sizes:
            x = image(n)
            o = np.empty_like(x)
            t_ours = _median_ms(lambda: ours(x, o), reps)
            t_peer = _median_ms(lambda: peer(x), max(3, reps // 5))
            rows.append((label, n, t_ours, t_peer))
            print(f"| {label} | {n}x{n} | {t_ours:.3f} | {t_peer:.3f} | {t_peer / t_ours:.1f}x |",
                  flush=True)
    try:
        import cv2  # noqa: F401
        for n in sizes:
            x = image(n)
            print(f"| (guided 7x7, OpenCV boxFilter peer) | {n}x{n} | | "
                  f"{_median_ms(lambda: opencv_guided(x), reps):.3f} | |")
    except ImportError:
        pass
    return rows


def gpu_table(sizes, reps):
    """SRAD per iteration on the GPU against the bandwidth floor: one read and one write of the
    image per iteration at the measured device-to-device copy bandwidth."""
    import cupy as cp

    from usfast import _backend

    from gpu_bench import timed as gpu_timed

    def timed(fn):
        return gpu_timed(cp, fn, reps)

    big = cp.random.random((4096, 4096), dtype=cp.float32)
    dst = cp.empty_like(big)
    copy_gbs = 2 * big.nbytes / (timed(lambda: cp.copyto(dst, big)) * 1e-3) / 1e9
    print(f"\ndevice-to-device copy bandwidth: {copy_gbs:.0f} GB/s")
    print("| backend | size | q0 | ms / iteration | floor ms | x floor |")
    print("|---|---|---|---|---|---|")
    its = 50
    for be in ("cuda", "cupy"):
        if not _backend.available(be):
            print(f"| {be} | not available: {_backend.status()[be][1]} |")
            continue
        for n in sizes:
            x = cp.asarray(image(n))
            o = cp.empty_like(x)
            floor = 2 * x.nbytes / (copy_gbs * 1e9) * 1e3
            for label, kw in (("tiles", {}), ("roi", dict(q0_roi=(0, 64, 0, 64))),
                              ("given", dict(q0=0.5))):
                ms = timed(lambda: sp.srad(x, iterations=its, out=o, backend=be,
                                           check_finite=False, **kw)) / its
                print(f"| {be} | {n}x{n} | {label} | {ms:.4f} | {floor:.4f} | {ms / floor:.2f} |",
                      flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="256^2 and 512^2 only")
    ap.add_argument("--gpu", action="store_true", help="also the GPU SRAD table (needs CuPy)")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    sizes = [256, 512] if args.quick else [256, 512, 1024, 2048]
    cpu_table(sizes, args.reps)
    if args.gpu:
        gpu_table(sizes if args.quick else [512, 1024, 2048], args.reps)


if __name__ == "__main__":
    main()
