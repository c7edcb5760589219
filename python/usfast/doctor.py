"""``usfast doctor``: run every operation on each backend present, on a small input, against
the float64 reference within the tolerance table. Returns the failures (empty = healthy)."""
from __future__ import annotations

import numpy as np

from . import _backend, tolerances


def _to_host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def checks():
    """(name, tolerance key, fn(x_on_backend, backend) -> array, input) per operation."""
    import usfast as us

    rng = np.random.default_rng(7)
    rf = rng.standard_normal((257, 19)).astype(np.float32)
    iq = (rng.standard_normal((33, 19)) + 1j * rng.standard_normal((33, 19))).astype(np.complex64)
    img = rng.random((37, 41)).astype(np.float32)
    probe = us.ProbeGeometry.curvilinear(n_elements=19, radius_mm=30, sector_deg=50,
                                         end_depth_mm=40)
    sc = us.ScanConverter(probe, (257, 19), out_shape=(64, 64))
    out = [
        ("bandpass", "fir_axial", lambda x, b: us.bandpass(x, 40e6, 2e6, 8e6, backend=b), rf),
        ("tgc", "tgc", lambda x, b: us.tgc(x, [(0, 0), (5, 10)], fs_hz=40e6, backend=b), rf),
        ("demodulate", "demodulate", lambda x, b: us.demodulate(x, 40e6, 5e6, decimation=2,
                                                                 backend=b), rf),
        ("envelope", "envelope", lambda x, b: us.envelope(x, backend=b), rf),
        ("log_compress", "log_compress", lambda x, b: us.log_compress(x, backend=b), iq),
        ("bmode", "bmode", lambda x, b: us.bmode(x, 40e6, 5e6, decimation=2, reference=3.0,
                                                 backend=b), rf),
        ("persistence", "persistence", lambda x, b: us.persistence(x, 0.6, backend=b),
         np.stack([img, img[::-1]])),
        ("scan_convert", "scan_convert", lambda x, b: sc(x, backend=b), rf * rf),
    ]
    for name in ("srad", "dpad", "lee", "kuan", "frost", "guided", "median", "bilateral", "nlm"):
        f = getattr(us, name, None)
        if f is not None:
            out.append((name, name, lambda x, b, f=f: f(x, backend=b), img + 0.1))
    if hasattr(us, "ridge"):
        out.append(("ridge", "ridge", lambda x, b: us.ridge(x, backend=b)[0], img))
    return out


def run(backends=None, log=print):
    """Check each backend present (or those named); log one line per check. Returns the list
    of failures as (backend, operation, message)."""
    if backends is None:
        backends = [b for b in ("cpu", "cuda", "cupy") if _backend.available(b)]
    failures = []
    for name, tolkey, fn, x in checks():
        want = _to_host(fn(x, "reference"))
        want = want.astype(np.complex128 if np.iscomplexobj(want) else np.float64)
        for b in backends:
            try:
                xb = x if b == "cpu" else _backend.cupy_module().asarray(x)
                got = _to_host(fn(xb, b)).astype(want.dtype)
                tol = tolerances.get(tolkey)
                scale = max(1.0, float(np.abs(want).max())) if tolkey in (
                    "fir_axial", "demodulate", "envelope", "tgc") else 1.0
                np.testing.assert_allclose(got / scale, want / scale, **tol)
                log(f"  ok    {b:5s} {name}")
            except Exception as e:  # report every failure, keep going
                msg = str(e).strip().splitlines()
                failures.append((b, name, " ".join(msg[:3])))
                log(f"  FAIL  {b:5s} {name}: {' '.join(msg[:3])}")
    return failures
