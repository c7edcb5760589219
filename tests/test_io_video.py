"""Video files, image folders and the atomic video writer (OpenCV)."""
import json
import os

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from usfast import InputError  # noqa: E402
from usfast.io import open_input, open_video_writer  # noqa: E402

H, W = 48, 64


def level(i):
    return 40 + 20 * i


def write_avi(path, n=8, fps=25.0, color=False):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H), True)
    assert w.isOpened()
    for i in range(n):
        img = np.full((H, W, 3), level(i), np.uint8)
        if color:
            img[:] = (50, 100, 200)      # B, G, R
        w.write(img)
    w.release()
    return str(path)


def test_video_frames_times_and_grey(tmp_path):
    p = write_avi(tmp_path / "v.avi")
    s = open_input(p, spacing_mm=(0.1, 0.2))
    assert s.kind == "video" and s.n_frames == 8
    assert s.fps == pytest.approx(25.0)
    assert s.geometry.shape == (H, W) and s.geometry.spacing_mm == (0.1, 0.2)
    got = list(s.frames())
    assert len(got) == 8
    for i, t, f in got:
        assert f.dtype == np.float32 and f.shape == (H, W)
        assert t == pytest.approx(i / 25.0)
        assert float(f.mean()) == pytest.approx(level(i) / 255, abs=3 / 255)
    assert len(s.metadata["sha256"]) == 64 and s.metadata["codec"] == "MJPG"
    json.dumps(s.metadata)


def test_video_colour_becomes_luma(tmp_path):
    s = open_input(write_avi(tmp_path / "c.avi", n=2, color=True), spacing_mm=0.1)
    f = s.read_all()
    assert float(f.mean()) == pytest.approx((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255,
                                            abs=4 / 255)


def test_video_fps_argument_wins(tmp_path):
    s = open_input(write_avi(tmp_path / "v.avi", n=3), spacing_mm=0.1, fps=10)
    assert [t for _, t, _ in s.frames()] == pytest.approx([0.0, 0.1, 0.2])
    assert s.metadata["time_source"] == "fps argument" and s.metadata["file_fps"] == 25.0


def test_video_needs_spacing(tmp_path):
    p = write_avi(tmp_path / "v.avi", n=1)
    with pytest.raises(InputError) as e:
        open_input(p)
    assert "spacing_mm" in str(e.value) and "--spacing-mm" in str(e.value)


def test_empty_and_broken_videos_rejected(tmp_path):
    w = cv2.VideoWriter(str(tmp_path / "empty.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    w.release()
    with pytest.raises(InputError, match="no frames|cannot open"):
        open_input(tmp_path / "empty.avi", spacing_mm=0.1)
    w = cv2.VideoWriter(str(tmp_path / "empty.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    w.release()
    with pytest.raises(InputError, match="no frames|cannot open|empty"):
        open_input(tmp_path / "empty.mp4", spacing_mm=0.1)
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_input(tmp_path / "zero.mp4", spacing_mm=0.1)
    (tmp_path / "junk.mp4").write_bytes(os.urandom(2000))
    with pytest.raises(InputError, match="junk.mp4"):
        open_input(tmp_path / "junk.mp4", spacing_mm=0.1)


# ------------------------------------------------------------------------------------------
# image folders
# ------------------------------------------------------------------------------------------

def test_image_folder_natural_order_and_scaling(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in (1, 2, 10):        # name order f1, f10, f2; natural order 1, 2, 10
        cv2.imwrite(str(d / f"f{i}.png"), np.full((H, W), i * 20, np.uint8))
    (d / "notes.txt").write_text("ignored")
    s = open_input(d, spacing_mm=0.1, fps=5)
    assert s.kind == "image_folder" and s.n_frames == 3
    got = list(s.frames())
    assert [f[0, 0] for _, _, f in got] == pytest.approx([20 / 255, 40 / 255, 200 / 255])
    assert [t for _, t, _ in got] == pytest.approx([0, 0.2, 0.4])
    np.testing.assert_allclose(s.timestamps, [0, 0.2, 0.4])


def test_image_folder_16bit_colour_and_single_image(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.full((H, W), 65535, np.uint16))
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[:] = (50, 100, 200)
    cv2.imwrite(str(d / "b.png"), bgr)
    f = open_input(d, spacing_mm=0.1).read_all()
    assert f[0, 0, 0] == pytest.approx(1.0)
    assert f[1, 0, 0] == pytest.approx((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, abs=1e-5)
    one = open_input(d / "b.png", spacing_mm=0.1)
    assert one.kind == "image" and one.n_frames == 1 and one.timestamps is None
    assert next(iter(one.frames()))[1] is None          # no time known without fps


def test_image_folder_errors(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    with pytest.raises(InputError, match="holds none"):
        open_input(d, spacing_mm=0.1)
    cv2.imwrite(str(d / "a.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match="--spacing-mm"):
        open_input(d)
    cv2.imwrite(str(d / "b.png"), np.zeros((H + 1, W), np.uint8))
    s = open_input(d, spacing_mm=0.1)
    with pytest.raises(InputError, match="one shape"):
        s.read_all()
    (d / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="b.png"):
        open_input(d, spacing_mm=0.1).read_all()


# ------------------------------------------------------------------------------------------
# writer
# ------------------------------------------------------------------------------------------

def test_video_writer_round_trip(tmp_path):
    target = tmp_path / "out.mp4"
    with open_video_writer(target, 20, (H, W)) as w:
        for i in range(5):
            w.write(np.full((H, W), level(i) / 255, np.float32))
        w.write(np.zeros((H, W, 3), np.uint8))
    assert w.path in (str(target), str(tmp_path / "out.avi"))
    assert os.listdir(tmp_path) == [os.path.basename(w.path)]
    s = open_input(w.path, spacing_mm=0.1)
    f = s.read_all()
    assert f.shape[0] == 6 and s.fps == pytest.approx(20)
    assert float(f[2].mean()) == pytest.approx(level(2) / 255, abs=4 / 255)


def test_video_writer_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with open_video_writer(tmp_path / "bad.avi", 20, (H, W)) as w:
            w.write(np.zeros((H, W), np.uint8))
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []
    w = open_video_writer(tmp_path / "bad.avi", 20, (H, W))
    with pytest.raises(InputError, match="shape"):
        w.write(np.zeros((W, H), np.uint8))
    w.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError, match="fps"):
        open_video_writer(tmp_path / "x.mp4", 0, (H, W))
    with pytest.raises(InputError, match="mp4"):
        open_video_writer(tmp_path / "x.gif", 10, (H, W))


def test_video_writer_falls_back_to_avi(tmp_path, monkeypatch):
    real = cv2.VideoWriter

    def no_mp4(path, fourcc, *a):
        if fourcc == cv2.VideoWriter_fourcc(*"mp4v"):
            return real()                      # an unopened writer, as where mp4 is missing
        return real(path, fourcc, *a)
    monkeypatch.setattr(cv2, "VideoWriter", no_mp4)
    with open_video_writer(tmp_path / "out.mp4", 10, (H, W)) as w:
        w.write(np.zeros((H, W), np.uint8))
    assert w.path == str(tmp_path / "out.avi") and w.fourcc == "MJPG"
    assert os.listdir(tmp_path) == ["out.avi"]
