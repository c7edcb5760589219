"""Needle enhancement and localisation: speed beside the peers a user would otherwise pick
(scikit-image's Frangi filter, OpenCV's probabilistic Hough transform), and the accuracy table.

Run: ``pytest benchmarks/bench_needle.py --benchmark-only`` for the timings, or
``python benchmarks/bench_needle.py`` for the speed table and, with ``--accuracy``, the accuracy
table written to benchmarks/needle_accuracy.md (the protocol of tests/test_needle_accuracy.py:
held-out simulator seeds, needle-free sequences, looks outside the defaults, the RF chain).
Frames are usfast.sim B-mode images (0.08 mm pixels at 512 x 512; other sizes keep the 41 mm
field of view).
"""
import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import usfast as us

HERE = Path(__file__).resolve().parent
FULL = bool(os.environ.get("USFAST_BENCH_FULL"))
SIZES = [256, 512, 1024, 2048] if FULL else [256, 512, 1024]


def frames(n=512, count=8, seed=3):
    """``count`` B-mode frames of a simulated insertion on an n x n grid, and the geometry."""
    import usfast.sim as sim
    seq = sim.insertion(duration_s=4.0, fps=5.0, seed=seed, shape=(n, n),
                        spacing_mm=0.08 * 512 / n)
    idx = np.linspace(len(seq) // 4, len(seq) - 1, count).astype(int)
    return [seq[i].bmode for i in idx], seq.geometry


@pytest.fixture(scope="module", params=SIZES)
def sized(request):
    return frames(request.param)


def _cycle(imgs):
    state = {"i": 0}

    def nxt():
        state["i"] = (state["i"] + 1) % len(imgs)
        return imgs[state["i"]]
    return nxt


@pytest.mark.benchmark(group="locate_needle")
def test_locate_needle(benchmark, sized):
    imgs, g = sized
    nxt = _cycle(imgs)
    benchmark(lambda: us.locate_needle(nxt(), geometry=g))


@pytest.mark.benchmark(group="needle_enhance")
def test_needle_enhance(benchmark, sized):
    imgs, g = sized
    benchmark(lambda: us.needle_enhance(imgs[0], geometry=g))


@pytest.mark.benchmark(group="ridge (2 scales, Frangi)")
def test_ridge_frangi(benchmark, sized):
    imgs, g = sized
    benchmark(lambda: us.ridge(imgs[0], scales=(1.5, 3.0), measure="frangi", c=0.1))


@pytest.mark.benchmark(group="ridge (2 scales, Frangi)")
def test_skimage_frangi(benchmark, sized):
    skf = pytest.importorskip("skimage.filters")
    imgs, g = sized
    benchmark(lambda: skf.frangi(imgs[0], sigmas=(1.5, 3.0), black_ridges=False))


@pytest.mark.benchmark(group="oriented_line_filter (256 px working grid)")
def test_oriented_line_filter(benchmark):
    imgs, g = frames(256, count=1)
    benchmark(lambda: us.oriented_line_filter(imgs[0], geometry=g, step_deg=5.0, length_mm=3.0))


@pytest.mark.benchmark(group="line detection peer: OpenCV Canny + HoughLinesP")
def test_cv2_houghlinesp(benchmark, sized):
    cv2 = pytest.importorskip("cv2")
    imgs, g = sized
    u8 = (imgs[0] * 255).astype(np.uint8)
    benchmark(lambda: cv2.HoughLinesP(cv2.Canny(cv2.GaussianBlur(u8, (5, 5), 1.5), 50, 150),
                                      1, np.pi / 180, 60, minLineLength=40, maxLineGap=5))


# ---- script mode: tables -----------------------------------------------------------------------
def _median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts)), 1e3 * float(np.percentile(ts, 90))


def speed_table(reps=60):
    rows = []
    for n in SIZES:
        imgs, g = frames(n)
        nxt = _cycle(imgs)
        rows.append((f"locate_needle {n}x{n}", *_median_ms(lambda: us.locate_needle(nxt(), geometry=g), reps)))
        rows.append((f"needle_enhance {n}x{n}", *_median_ms(lambda: us.needle_enhance(imgs[0], geometry=g), reps)))
    try:
        import cv2
        imgs, g = frames(512)
        u8 = (imgs[0] * 255).astype(np.uint8)
        rows.append(("OpenCV blur+Canny+HoughLinesP 512x512 (no tip, no angle prior)",
                     *_median_ms(lambda: cv2.HoughLinesP(
                         cv2.Canny(cv2.GaussianBlur(u8, (5, 5), 1.5), 50, 150), 1, np.pi / 180, 60,
                         minLineLength=40, maxLineGap=5), reps)))
    except ImportError:
        pass
    try:
        from skimage.filters import frangi
        imgs, g = frames(512)
        rows.append(("skimage frangi 512x512, 2 scales", *_median_ms(
            lambda: frangi(imgs[0], sigmas=(1.5, 3.0), black_ridges=False), 10)))
        rows.append(("usfast.ridge 512x512, 2 scales (Frangi)", *_median_ms(
            lambda: us.ridge(imgs[0], scales=(1.5, 3.0), c=0.1), reps)))
    except ImportError:
        pass
    return rows


def _load_accuracy_module():
    path = HERE.parent / "tests" / "test_needle_accuracy.py"
    spec = importlib.util.spec_from_file_location("needle_accuracy_protocol", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def accuracy_table():
    T = _load_accuracy_module()
    t0 = time.time()
    res = {"held-out insertions (seeds 1000-1049)": T.summarise(T.insertion_rows(T.HELD_OUT),
                                                                T.free_rows(T.FREE)),
           "second held-out set (seeds 5000-5049)": T.summarise(T.insertion_rows(T.HELD_OUT_2)),
           "seeds 0-99, where the constants were set": T.summarise(
               T.insertion_rows(range(100)), T.free_rows(range(100)))}
    for name in T.VARIANTS:
        res[name] = T.summarise(T.variant_rows(name, range(3000, 3008)))
    for kind in ("linear", "curvilinear"):
        res[f"RF -> bmode -> ScanConverter, {kind} probe"] = T.summarise(
            T.rf_chain_rows(range(4000, 4012), kind))
    return res, time.time() - t0


def write_accuracy_md(res, speed, path=HERE / "needle_accuracy.md"):
    L = ["# Needle localisation accuracy (`usfast.locate_needle`)", "",
         "Protocol: tests/test_needle_accuracy.py. Simulated insertions (`usfast.sim.insertion`, "
         "4 s at 5 fps, every other frame; the simulator's full variety of looks, phantoms, "
         "angles 15-65 deg, entry sides, gauges, tip appearances, partial and out-of-plane "
         "episodes, tremor and probe motion) on seeds not used to set the detector's constants "
         "(those were set on seeds 0-99). Scored: frames with >= 5 mm of needle visible. Tip "
         "error in mm to the true tip (to the end of the visible part when the tip is out of the "
         "slice); angle error in degrees (mm space). False positives: `usfast.sim.needle_free` "
         "frames (fascia, vessels, speckle) reported as a needle. Issue targets: detection >= 99 %, "
         "tip median <= 0.3 mm and p95 <= 1.0 mm, angle median <= 0.5 deg and p95 <= 2 deg, "
         "false positives <= 1 %.", "",
         "| data | scored frames | detection | tip median | tip p95 | angle median | angle p95 "
         "| false positives |", "|---|---|---|---|---|---|---|---|"]
    for name, s in res.items():
        fp = (f"{100 * s['false_positive']:.1f} % of {s['free_frames']}"
              if "false_positive" in s else "")
        L.append(f"| {name} | {s['frames']} | {100 * s['detection']:.1f} % | "
                 f"{s['tip_median_mm']:.2f} mm | {s['tip_p95_mm']:.2f} mm | "
                 f"{s['angle_median_deg']:.3f} deg | {s['angle_p95_deg']:.2f} deg | {fp} |")
    L += ["", "Met on both held-out sets: detection (99.3 % and 99.0 %: the second only "
          "just, 4 misses in 404 frames; 99.8 % on seeds 0-99), the tip median and 95th "
          "percentile, the angle, and false positives on the test's needle-free seeds (1.0 %, "
          "at the target). The accumulator's lines: at most two within 6 deg of one another "
          "(parallel layers took every place before: held-out tip p95 0.96 -> 0.88 mm, false "
          "detections 1.0 -> 0.6 % on the test's seeds and 1.2 -> 1.0 % on seeds 0-99); "
          "then up to 8 lines above 0.3 of the highest peak instead of 4 above half, the "
          "5th-8th held to a detection statistic 4 higher (each line examined is one more "
          "chance for a noise line to pass). That was chosen on seeds 0-99 (+2 frames found, "
          "false detections unchanged at 1.0 %); on the held-out sets it found one more frame "
          "(second set 98.8 -> 99.0 %) and made two more needle-free frames false detections "
          "(0.6 -> 1.0 %), and needle-free frames, where every line is examined, cost 7.5 ms "
          "instead of 4.8 (median, 512x512). The second set's four misses: two first scored "
          "frames of an insertion (5-6 mm in view across a bright layer) whose line does not "
          "refit within 5 deg even when given the true one; one whose refit shaft is 2.9 mm "
          "long (3 mm is the shortest reported); one faint needle whose line is offered only "
          "among the 5th-8th and measures 5.8, below their raised threshold. The tip's tail: "
          "a third of the simulator's looks draw a tip that fades by 4-15 dB over its last 1-4 mm; the tip is where a straight line "
          "through the fading shaft meets the background (a least-squares change point on the "
          "axis's centre sample), and where that end sinks below the speckle the estimate falls "
          "short; when the needle's acoustic shadow ends clearly further on and a faint "
          "continuation is seen, the tip moves to where the shadow ends. The change point of "
          "a blurred end lies past the physical tip; the tip moves back by the speckle's "
          "correlation length along the axis times a factor of the tip's contrast "
          "(`needle._blur_shift`). Signed along-axis error of tips that keep their brightness "
          "(tip_db = 0), before -> after: +0.08 -> -0.02 mm (mean, seeds 40-99); RF chain, 60 "
          "further seeds (4100-4159): linear +0.16 -> +0.06, curvilinear +0.10 -> -0.01. Tip "
          "median before -> after: held-out 0.14 -> 0.10, second held-out 0.18 -> 0.12, seeds "
          "0-99 0.17 -> 0.11 mm; RF chain 4100-4159 linear 0.18 -> 0.10, curvilinear 0.18 -> "
          "0.12 mm. A bright bevel echo still lies about 0.13 mm past the tip, and a fading "
          "tip ends further short than before (it was short already); the p95 moves by -0.03 "
          "to +0.08 mm. Looks below 95 % "
          "detection: a 35 dB display with the tissue below it (every miss is on one seed whose "
          "needle echo is below the display floor too: a black frame but for a few pixels of "
          "the shaft) and a faint 14 dB needle (93 %). The RF chain's curvilinear sector: one "
          "of 12 needles (a faint 8 mm stretch) is missed, and one is found 7 mm short where "
          "a bright layer crosses it.", "",
          "Decision threshold: `usfast.needle.DETECTION_SNR` = "
          f"{__import__('usfast.needle', fromlist=['x']).DETECTION_SNR:g}, set on the "
          "needle-free sequences of seeds 0-99 (1.2 % false detections there, 1.0 % on the "
          "test's seeds 2000-2099, when it was set; 1.0 % on both now).", ""]
    if speed:
        L += ["## Speed (this machine: "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"OMP threads {us.build_info().get('omp_threads')})", "",
              "| operation | median | p90 |", "|---|---|---|"]
        L += [f"| {n} | {m:.2f} ms | {p:.2f} ms |" for n, m, p in speed]
    path.write_text("\n".join(L) + "\n")
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accuracy", action="store_true", help="also run the accuracy protocol "
                    "(a few minutes) and write benchmarks/needle_accuracy.md")
    ap.add_argument("--reps", type=int, default=60)
    a = ap.parse_args(argv)
    speed = speed_table(a.reps)
    print("| operation | median ms | p90 ms |")
    for n, m, p in speed:
        print(f"| {n} | {m:.2f} | {p:.2f} |")
    if a.accuracy:
        res, dt = accuracy_table()
        print(json.dumps(res, indent=1))
        print(f"accuracy protocol: {dt:.0f} s; written to {write_accuracy_md(res, speed)}")


if __name__ == "__main__":
    sys.exit(main())
