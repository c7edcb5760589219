"""``usfast demo --quiet``: every output is written, and the accuracy in metrics.json is
measured against the simulator's truth.

The needle-localisation targets are median tip error <= 0.3 mm, p95 <= 1.0 mm, median angle
error <= 0.5 deg, p95 <= 2 deg and detection >= 99 % of the frames with >= 5 mm visible. The
demo's sequence (seed 7: a faint 21 dB needle whose tip fades by 13 dB over its last 1.2 mm,
RF through the whole chain) is a hard one. The detector meets the angle targets (measured 0.02 /
0.14 deg) and the tip p95 (0.89 mm), not the tip median (0.40 mm: the faded end is found short)
nor detection (98.7 %: one miss, the first frame with 5 mm in view, where the needle is a short
faint stretch at the image's corner); the assertions below hold those at the measured levels
so that they cannot regress. The tracker lowers the median (0.37 mm) but not the RMSE here (0.54
against the detector's 0.52 mm): the needle is advanced at up to 14 mm/s, and the tip's
filter takes a few frames to pick up the speed after a start or a reversal. On demo seeds 0-9
pooled the tracker's RMSE is the lower (0.32 against 0.34 mm; benchmarks/RESULTS.md).
"""
import json
import time

import pytest

import usfast as us
from usfast.cli import main


@pytest.mark.skipif(not hasattr(us, "locate_needle"), reason="usfast.locate_needle is not in this tree")
def test_demo_outputs_and_accuracy(tmp_path, capsys):
    out = tmp_path / "demo"
    t0 = time.perf_counter()
    assert main(["demo", "--quiet", "--out", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    assert capsys.readouterr().out == ""  # --quiet prints nothing
    names = {p.name for p in out.iterdir()}
    assert {"demo_contact.png", "report.png", "metrics.json"} <= names
    assert ("demo.mp4" in names) or ("demo.avi" in names)
    for n in names:
        assert (out / n).stat().st_size > 1000, n
    m = json.loads((out / "metrics.json").read_text())
    assert m["frames"] == len(m["per_frame"]) == 90
    assert m["usfast_version"] == us.__version__ and m["backend"] in ("cpu", "cuda", "cupy")
    for stage in ("bmode", "scan", "speckle", "needle", "tracking", "overlay", "total"):
        assert m["latency_ms"][stage]["median_ms"] > 0
    acc = m["accuracy"]["detector"]
    assert acc["frames_evaluated"] >= 30 and acc["frames_with_tip_in_view"] >= 20
    assert acc["angle_error_median_deg"] <= 0.5, acc      # target met
    assert acc["angle_error_p95_deg"] <= 2.0, acc         # target met
    # measured: detection 98.7 %, tip median 0.40 mm, p95 0.89 mm
    assert acc["detection_rate"] >= 0.98, acc             # target 0.99: not yet
    assert acc["tip_error_median_mm"] <= 0.45, acc        # target 0.3 mm: not yet
    assert acc["tip_error_p95_mm"] <= 1.0, acc            # target met
    trk = m["accuracy"]["tracked"]
    # measured: RMSE 0.54 mm (detector 0.52 mm), median 0.37 mm
    assert trk["tip_error_rmse_mm"] <= 1.05 * acc["tip_error_rmse_mm"], (trk, acc)
    assert trk["tip_error_rmse_mm"] <= 0.55, trk
    assert trk["tip_error_median_mm"] <= acc["tip_error_median_mm"], (trk, acc)
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["demo", "--quiet", "--out", str(out), "--frames", "3"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
