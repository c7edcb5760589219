"""``usfast demo --quiet``: every output is written, and the accuracy in metrics.json is
measured against the simulator's truth.

The needle-localisation targets are median tip error <= 0.3 mm, p95 <= 1.0 mm, median angle
error <= 0.5 deg, p95 <= 2 deg and detection >= 99 % of the frames with >= 5 mm visible. The
demo images its insertion (seed 7: a needle at 54 deg, RF through the whole chain) with the
simulator's default look. Measured there: detector 100 %, tip median 0.13 mm, p95 0.61 mm,
angle 0.02 / 0.13 deg; tracked 100 %, 0.13 / 0.47 mm, RMSE 0.22 mm against the detector's
0.28 mm. Over seeds 0-9 with the default look the tracked tip meets every target on nine
(seed 1: p95 1.003 mm), the detector on nine (seed 1: p95 1.27 mm, one miss;
benchmarks/RESULTS.md).

``--look random`` draws the look from the seed too. Seed 7 then draws the hardest kind: a 21 dB
needle at 54 deg whose specular echo is gone, so the shaft stands about 6 dB above the tissue
and its last half-millimetre, fading by 13 dB, less than 2 dB. The detector finds that tip short:
median 0.40 mm, detection 98.7 %; seven of ten random-look seeds meet every target. Those looks
are the needle's accuracy suite's (tests/test_needle_accuracy.py), where the targets are measured
over the simulator's variety; the last test here only checks that the option draws them.
"""
import json
import time

import pytest

import usfast as us
from usfast import sim
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
    assert m["look_drawn"] == "default" and m["look"] == sim.Look().to_dict()
    for who in ("detector", "tracked"):  # the needle issue's targets
        acc = m["accuracy"][who]
        assert acc["frames_evaluated"] >= 30 and acc["frames_with_tip_in_view"] >= 20, acc
        assert acc["detection_rate"] >= 0.99, (who, acc)
        assert acc["tip_error_median_mm"] <= 0.3, (who, acc)
        assert acc["tip_error_p95_mm"] <= 1.0, (who, acc)
        assert acc["angle_error_median_deg"] <= 0.5, (who, acc)
        assert acc["angle_error_p95_deg"] <= 2.0, (who, acc)
    det, trk = m["accuracy"]["detector"], m["accuracy"]["tracked"]
    assert trk["tip_error_rmse_mm"] < det["tip_error_rmse_mm"], (trk, det)
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"


def test_demo_random_look_is_drawn_from_the_seed(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["demo", "--quiet", "--out", str(out), "--frames", "3", "--look", "random",
                 "--seed", "7"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["look_drawn"] == "random"
    assert m["look"] == sim.Look.random(7).to_dict() != sim.Look().to_dict()
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        main(["demo", "--quiet", "--out", str(tmp_path / "x"), "--look", "dim"])
    assert e.value.code == 2
    assert "--look" in capsys.readouterr().err
    with pytest.raises(us.InputError, match="look"):
        us.demo.run(out=str(tmp_path / "y"), look="dim")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["demo", "--quiet", "--out", str(out), "--frames", "3"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
