"""GPU stage timings against the memory-bandwidth floor (run by gpu_check.sh).

Measures the device-to-device copy bandwidth at 4096x1024 float32, then each stage's device
time (CUDA events, median of repeats) and reports achieved bandwidth = bytes the stage must move
/ time, as a fraction of the measured copy bandwidth, for the cuda and cupy backends.
"""
import argparse
import json

import numpy as np

import usfast as us


def timed(cp, fn, reps=50):
    fn()
    cp.cuda.Device().synchronize()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    ts = []
    for _ in range(reps):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        ts.append(cp.cuda.get_elapsed_time(start, stop))
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    import cupy as cp

    rows, cols = 4096, 1024
    a = cp.random.random((rows, cols), dtype=cp.float32)
    b = cp.empty_like(a)
    t = timed(cp, lambda: cp.copyto(b, a))
    copy_gbs = 2 * a.nbytes / (t * 1e-3) / 1e9
    results = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(),
               "copy_GBps": copy_gbs, "stages": []}
    print(f"device-to-device copy 4096x1024 f32: {copy_gbs:.0f} GB/s")
    rf = (cp.random.standard_normal((rows, cols)) * 1000).astype(cp.int16)
    rff = rf.astype(cp.float32)
    probe = us.ProbeGeometry.curvilinear(n_elements=cols, radius_mm=40, sector_deg=60,
                                         end_depth_mm=100)
    sc = us.ScanConverter(probe, (rows, cols), out_shape=(2048, 2048))
    img2k = cp.random.random((2048, 2048), dtype=cp.float32)
    stages = [
        ("bmode fused int16 dec1", lambda be: us.bmode(rf, 40e6, 5e6, reference=1000.0,
                                                       backend=be, check_finite=False),
         rf.nbytes + rows * cols * 4),
        ("log_compress f32", lambda be: us.log_compress(rff, reference=1.0, backend=be,
                                                        check_finite=False), 2 * rff.nbytes),
        ("envelope rf f32", lambda be: us.envelope(rff, backend=be, check_finite=False),
         2 * rff.nbytes),
        ("envelope_log rf f32 (one pass)", lambda be: us.envelope_log(
            rff, reference=1000.0, backend=be, check_finite=False), 2 * rff.nbytes),
        ("scan convert -> 2048^2", lambda be: sc(rff, backend=be, check_finite=False),
         2048 * 2048 * (4 + 8) + rff.nbytes),
    ]
    for name, attr, nbytes_of in (("srad 1 iteration 2048^2", "srad", 2),
                                  ("guided 2048^2", "guided", 2),
                                  ("median 5x5 2048^2", "median", 2)):
        f = getattr(us, attr, None)
        if f is not None:
            kw = {"iterations": 1} if attr == "srad" else ({"size": 5} if attr == "median" else {})
            stages.append((name, lambda be, f=f, kw=kw: f(img2k, backend=be, check_finite=False, **kw)
                           if "check_finite" in f.__code__.co_varnames else f(img2k, backend=be, **kw),
                           nbytes_of * img2k.nbytes))
    for be in ("cuda", "cupy"):
        if not us.build_info()["backends"][be]["available"]:
            print(f"{be}: not available")
            continue
        for name, fn, nbytes in stages:
            try:
                ms = timed(cp, lambda: fn(be))
            except Exception as e:
                print(f"{be:5s} {name}: FAILED {e}")
                results["stages"].append({"backend": be, "stage": name, "error": str(e)})
                continue
            gbs = nbytes / (ms * 1e-3) / 1e9
            frac = gbs / copy_gbs
            print(f"{be:5s} {name:28s} {ms:8.3f} ms  {gbs:7.0f} GB/s  {100 * frac:5.1f} % of copy")
            results["stages"].append({"backend": be, "stage": name, "ms": ms, "GBps": gbs,
                                      "fraction_of_copy": frac})
    img512 = cp.random.random((512, 512), dtype=cp.float32)
    if hasattr(us, "locate_needle"):
        g = us.ImageGeometry((0.08, 0.08), (0, 0), (512, 512))
        ms = timed(cp, lambda: us.locate_needle(img512, geometry=g), reps=20)
        print(f"locate_needle 512^2 (GPU input): {ms:.3f} ms")
        results["locate_needle_512_ms"] = ms
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
