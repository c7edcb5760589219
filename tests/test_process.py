"""``usfast process`` on real file formats built here (DICOM, video, PLUS, NumPy), and its
bad-input behaviour: clear words, exit status 2, no traceback, nothing half-written."""
import json
import subprocess
import sys

import numpy as np
import pytest

import usfast as us
from usfast import sim
from usfast.cli import main

pytest.importorskip("pydicom")
from test_io_dicom import make_dicom, region  # noqa: E402

needle_present = pytest.mark.skipif(not hasattr(us, "locate_needle"),
                                    reason="usfast.locate_needle is not in this tree")


@pytest.fixture(scope="module")
def clip():
    """A short simulated insertion as uint8 display frames with its truth."""
    seq = sim.insertion(duration_s=0.6, fps=20, seed=21, shape=(192, 192), spacing_mm=0.15)
    frames = np.stack([(np.clip(f.bmode, 0, 1) * 255).round().astype(np.uint8) for f in seq])
    return seq, frames


def _run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@needle_present
def test_process_dicom_multiframe(tmp_path, clip, capsys):
    seq, frames = clip
    n, rows, cols = frames.shape
    # 20 px of screen furniture around the image, the tissue region in cm
    canvas = np.zeros((n, rows + 40, cols + 40), np.uint8)
    canvas[:, 20:20 + rows, 20:20 + cols] = frames
    src = make_dicom(tmp_path / "clip.dcm", canvas,
                     regions=[region(20, 20, 20 + cols - 1, 20 + rows - 1, dx_cm=0.015,
                                     dy_cm=0.015)], FrameTime=50.0)
    out = tmp_path / "out"
    code, stdout, err = _run(["process", src, "-o", str(out), "--quiet"], capsys)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert len(res["frames"]) == n
    np.testing.assert_allclose([f["t_s"] for f in res["frames"]], np.arange(n) * 0.05)
    man = json.loads((out / "manifest.json").read_text())
    assert man["input"]["frames_read"] == n and len(man["input"]["sha256"]) == 64
    assert man["config"]["geometry"]["spacing_mm"] == [0.15, 0.15]
    assert man["config"]["geometry"]["shape"] == [rows, cols]
    # the PLUS sequence replays: frames, spacing, timestamps, one transform per frame
    s = us.io.open_input(out / "processed.seq.nrrd")
    assert s.n_frames == n and s.geometry.spacing_mm == (0.15, 0.15)
    np.testing.assert_allclose(s.timestamps, np.arange(n) * 0.05, atol=1e-6)
    tips = s.transforms["NeedleTipToImage"]
    assert len(tips) == n
    found = [f["needle"]["found"] for f in res["frames"]]
    for k, ok in enumerate(found):
        if ok:
            st = res["frames"][k]["needle"]
            np.testing.assert_allclose(tips[k][:2, 3], st["tip_px"], atol=1e-3)
        else:
            assert tips[k] is None  # status INVALID
    assert any(f.endswith((".mp4", ".avi")) for f in man["outputs"])


@needle_present
def test_process_npz_with_config_and_overrides(tmp_path, clip, capsys):
    seq, frames = clip
    p = tmp_path / "clip.npz"
    np.savez(p, frames=frames, spacing_mm=np.array([0.15, 0.15]),
             timestamps=np.arange(len(frames)) * 0.05)
    cfg = tmp_path / "p.toml"
    cfg.write_text('[speckle]\nmethod = "none"\n[needle]\nangle_range_deg = [10, 80]\n'
                   '[overlay]\nguide_angles_deg = [30.0]\n')
    out = tmp_path / "o"
    code, _, err = _run(["process", str(p), "-o", str(out), "--config", str(cfg), "--quiet",
                         "--side", seq.truth["side"][0], "--no-video"], capsys)
    assert code == 0, err
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["speckle"] is False
    assert man["config"]["needle"]["side"] == seq.truth["side"][0]  # CLI overrides the file
    assert man["config"]["needle"]["angle_range_deg"] == [10, 80]
    assert sorted(x.name for x in out.iterdir()) == ["manifest.json", "processed.seq.nrrd",
                                                      "results.json"]


@needle_present
def test_process_video_needs_spacing(tmp_path, clip, capsys):
    import cv2
    seq, frames = clip
    v = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(v), cv2.VideoWriter_fourcc(*"MJPG"), 20, frames.shape[:0:-1], False)
    for f in frames:
        w.write(f)
    w.release()
    code, _, err = _run(["process", str(v), "-o", str(tmp_path / "a"), "--quiet"], capsys)
    assert code == 2 and "spacing" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()
    code, _, err = _run(["process", str(v), "-o", str(tmp_path / "b"), "--quiet",
                         "--spacing-mm", "0.15"], capsys)
    assert code == 0, err
    assert len(json.loads((tmp_path / "b" / "results.json").read_text())["frames"]) == len(frames)


def _bad_cases(tmp_path):
    ct = make_dicom(tmp_path / "ct.dcm", np.zeros((1, 8, 8), np.uint8), modality="CT")
    noreg = make_dicom(tmp_path / "noreg.dcm", np.zeros((1, 8, 8), np.uint8))
    trunc = tmp_path / "trunc.dcm"
    good = make_dicom(tmp_path / "good.dcm", np.zeros((2, 64, 64), np.uint8),
                      regions=[region(0, 0, 63, 63)])
    trunc.write_bytes(open(good, "rb").read()[:700])
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    badcfg = tmp_path / "bad.toml"
    badcfg.write_text("[needle]\nnot_a_parameter = 3\n")
    afile = tmp_path / "afile"
    afile.write_text("x")
    return [
        (["process", str(tmp_path / "missing.dcm"), "-o", str(tmp_path / "o1")], "INPUT"),
        (["process", ct, "-o", str(tmp_path / "o2")], "CT"),
        (["process", noreg, "-o", str(tmp_path / "o3")], "spacing"),
        (["process", str(trunc), "-o", str(tmp_path / "o4")], "DICOM"),
        (["process", str(empty), "-o", str(tmp_path / "o5"), "--spacing-mm", "0.1"], "empty"),
        (["process", good, "-o", str(tmp_path / "o6"), "--config", str(badcfg)],
         "not_a_parameter"),
        (["process", good, "-o", str(afile / "sub")], "folder"),
    ]


def test_bad_inputs_exit_2_without_traceback(tmp_path, capsys):
    for argv, word in _bad_cases(tmp_path):
        code, out, err = _run(argv + ["--quiet"], capsys)
        assert code == 2, (argv, err)
        assert word.lower() in err.lower(), (argv, err)
        assert "Traceback" not in err
        outdir = argv[argv.index("-o") + 1]
        assert not __import__("os").path.exists(outdir), f"{outdir} left behind"


def test_bad_input_through_the_console_script(tmp_path):
    r = subprocess.run([sys.executable, "-m", "usfast", "process", str(tmp_path / "nope.dcm"),
                        "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "error" in r.stderr and "Traceback" not in r.stderr
