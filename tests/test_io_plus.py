"""PLUS sequence files: hand-written .mha / .seq.nrrd headers, orientation, and writer round trips."""
import gzip
import json
import os
import tracemalloc
import zlib

import numpy as np
import pytest

from usfast import ImageGeometry, InputError
from usfast.io import PlusSequenceWriter, open_input, write_plus_seq_nrrd, write_plus_sequence

ROWS, COLS, N = 4, 5, 3


def canon(n=N, rows=ROWS, cols=COLS):
    """Frames in our orientation (rows = depth increasing, cols towards the marked side)."""
    z, y, x = np.mgrid[0:n, 0:rows, 0:cols]
    return (x + 10 * y + 60 * z).astype(np.uint8)


def mat(k):
    m = np.eye(4)
    m[:3, 3] = [k, 2 * k, 3 * k]
    m[0, 1] = 0.5
    return m


def mat_text(m):
    return " ".join(repr(float(v)) for v in np.ravel(m))


def frame_lines(n, sep, image_status="ImageStatus"):
    lines = []
    for i in range(n):
        pre = f"Seq_Frame{i:04d}_"
        lines += [f"{pre}FrameNumber{sep}{i}",
                  f"{pre}Timestamp{sep}{10.0 + 0.05 * i!r}",
                  f"{pre}ProbeToTrackerTransform{sep}{mat_text(mat(i))}",
                  f"{pre}ProbeToTrackerTransformStatus{sep}{'INVALID' if i == 1 else 'OK'}",
                  f"{pre}NeedleTipToImageTransform{sep}{mat_text(mat(10 + i))}",
                  f"{pre}{image_status}{sep}OK"]
    return lines


def write_mha(path, stored, *, orientation="MF", spacing="0.2 0.3 1", compressed=False,
              etype="MET_UCHAR", msb=False, channels=1, ndims=3, dims=None):
    n = stored.shape[0]
    h, w = stored.shape[1:3]
    data = stored.tobytes()
    hdr = ["ObjectType = Image", f"NDims = {ndims}", "AnatomicalOrientation = RAI",
           "BinaryData = True", f"BinaryDataByteOrderMSB = {msb}", "CenterOfRotation = 0 0 0",
           f"CompressedData = {compressed}"]
    if compressed:
        data = zlib.compress(data)
        hdr.append(f"CompressedDataSize = {len(data)}")
    hdr += [f"DimSize = {dims or f'{w} {h} {n}'}", f"ElementNumberOfChannels = {channels}",
            f"ElementSpacing = {spacing}", "Offset = 0 0 0",
            "TransformMatrix = 1 0 0 0 1 0 0 0 1", f"ElementType = {etype}",
            f"UltrasoundImageOrientation = {orientation}", "UltrasoundImageType = BRIGHTNESS"]
    hdr += frame_lines(n, " = ")
    hdr.append("ElementDataFile = LOCAL")
    with open(path, "wb") as f:
        f.write(("\n".join(hdr) + "\n").encode())
        f.write(data)
    return str(path)


def write_nrrd(path, stored, *, encoding="raw", orientation="MF", dtype="uint8", vector=False,
               directions="(0.2,0) (0,0.3) none"):
    n = stored.shape[0]
    h, w = stored.shape[1:3]
    data = stored.tobytes()
    if encoding == "gzip":
        data = gzip.compress(data)
    sizes = f"{w} {h} {n}"
    kinds = "domain domain list"
    if vector:
        sizes = f"3 {sizes}"
        kinds = f"vector {kinds}"
        directions = "none " + directions
    # PLUS pads sizes and kinds to 40 characters
    hdr = ["NRRD0004", "# Complete NRRD file format specification at:",
           "# http://teem.sourceforge.net/nrrd/format.html", f"type: {dtype}",
           f"dimension: {4 if vector else 3}", "space dimension: 2",
           f"sizes: {sizes}".ljust(40), f"space directions: {directions}",
           f"kinds: {kinds}".ljust(40), "endian: little", f"encoding: {encoding}",
           "space origin: (0,0)", f"ultrasound image orientation:={orientation}",
           "ultrasound image type:=BRIGHTNESS"]
    hdr += frame_lines(n, ":=", image_status="Status")
    with open(path, "wb") as f:
        f.write(("\n".join(hdr) + "\n\n").encode())
        f.write(data)
    return str(path)


def check_fields(s):
    np.testing.assert_allclose(s.timestamps, [10.0, 10.05, 10.1])
    assert s.fps == pytest.approx(20.0)
    assert sorted(s.transforms) == ["NeedleTipToImage", "ProbeToTracker"]
    assert s.transform_status["ProbeToTracker"] == ["OK", "INVALID", "OK"]
    assert s.transform_status["NeedleTipToImage"] == ["OK", "OK", "OK"]   # no status field
    np.testing.assert_array_equal(s.transforms["ProbeToTracker"][0], mat(0))
    assert s.transforms["ProbeToTracker"][1] is None
    np.testing.assert_array_equal(s.transforms["ProbeToTracker"][2], mat(2))
    np.testing.assert_array_equal(s.transforms["NeedleTipToImage"][1], mat(11))
    assert s.image_status == ["OK"] * 3
    assert s.frame_fields[1]["ProbeToTrackerTransformStatus"] == "INVALID"


@pytest.mark.parametrize("compressed", [False, True])
def test_mha_by_hand(tmp_path, compressed):
    c = canon()
    s = open_input(write_mha(tmp_path / "s.mha", c, compressed=compressed))
    assert s.kind == "plus_mha" and s.n_frames == N
    assert s.geometry.shape == (ROWS, COLS)
    assert s.geometry.spacing_mm == (0.3, 0.2)          # ElementSpacing is x (cols), y (rows)
    got = list(s.frames())
    assert [t for _, t, _ in got] == pytest.approx([10.0, 10.05, 10.1])
    np.testing.assert_array_equal(np.stack([f for _, _, f in got]), c / np.float32(255))
    check_fields(s)
    assert s.metadata["compression"] == ("zlib" if compressed else None)
    assert s.metadata["orientation"] == "MF"
    json.dumps(s.metadata)


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_nrrd_by_hand(tmp_path, encoding):
    c = canon()
    s = open_input(write_nrrd(tmp_path / "s.seq.nrrd", c, encoding=encoding))
    assert s.kind == "plus_nrrd" and s.n_frames == N
    assert s.geometry.spacing_mm == pytest.approx((0.3, 0.2))
    np.testing.assert_array_equal(s.read_all(), c / np.float32(255))
    check_fields(s)


def test_nrrd_rgb_vector_to_luma(tmp_path):
    rgb = np.zeros((2, ROWS, COLS, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    s = open_input(write_nrrd(tmp_path / "c.seq.nrrd", rgb[:, :, :, :], vector=True,
                              directions="(0.2,0) (0,0.3) none"))
    f = s.read_all()
    assert f.shape == (2, ROWS, COLS)
    np.testing.assert_allclose(f, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, atol=1e-6)


ORIENTATIONS = {
    "MF": lambda c: c,
    "UF": lambda c: c[:, :, ::-1],
    "MN": lambda c: c[:, ::-1, :],
    "UN": lambda c: c[:, ::-1, ::-1],
    "FM": lambda c: c.transpose(0, 2, 1),
    "NU": lambda c: c.transpose(0, 2, 1)[:, ::-1, ::-1],
}


@pytest.mark.parametrize("code", sorted(ORIENTATIONS))
def test_orientation_normalised_to_mf(tmp_path, code):
    c = canon()
    stored = np.ascontiguousarray(ORIENTATIONS[code](c))
    s = open_input(write_mha(tmp_path / f"{code}.mha", stored, orientation=code,
                             spacing="0.2 0.3 1"))
    np.testing.assert_array_equal(s.read_all(), c / np.float32(255))
    assert s.metadata["orientation"] == code
    # spacing follows the axes: stored x axis is depth for the transposed codes
    assert s.geometry.spacing_mm == ((0.2, 0.3) if code in ("FM", "NU") else (0.3, 0.2))
    assert s.geometry.shape == (ROWS, COLS)
    s2 = open_input(write_nrrd(tmp_path / f"{code}.seq.nrrd", stored, orientation=code))
    np.testing.assert_array_equal(s2.read_all(), c / np.float32(255))


def test_big_endian_uint16(tmp_path):
    c = (canon().astype(np.uint16) * 257).astype(">u2")
    s = open_input(write_mha(tmp_path / "be.mha", c, etype="MET_USHORT", msb=True))
    np.testing.assert_allclose(s.read_all(), canon() / 255.0, atol=1e-6)


def test_fps_argument_replaces_file_times(tmp_path):
    s = open_input(write_mha(tmp_path / "s.mha", canon()), fps=5)
    np.testing.assert_allclose(s.timestamps, [0, 0.2, 0.4])
    assert s.metadata["time_source"] == "fps argument"


def test_spacing_argument_wins(tmp_path):
    s = open_input(write_mha(tmp_path / "s.mha", canon()), spacing_mm=(0.1, 0.05))
    assert s.geometry.spacing_mm == (0.1, 0.05)
    assert s.metadata["spacing_source"] == "spacing_mm argument"


def test_no_spacing_in_file_needs_argument(tmp_path):
    c = canon()
    p = write_nrrd(tmp_path / "ns.seq.nrrd", c, directions="")
    text = open(p, "rb").read().replace(b"space directions: \n", b"")
    open(p, "wb").write(text)
    with pytest.raises(InputError) as e:
        open_input(p)
    assert "spacing_mm" in str(e.value) and "--spacing-mm" in str(e.value)
    s = open_input(p, spacing_mm=0.25)
    np.testing.assert_array_equal(s.read_all(), c / np.float32(255))


def test_truncated_raw_rejected(tmp_path):
    p = write_mha(tmp_path / "t.mha", canon())
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-7])
    with pytest.raises(InputError, match="truncated"):
        open_input(p)


def test_corrupt_compressed_stream_rejected(tmp_path):
    p = write_nrrd(tmp_path / "t.seq.nrrd", canon(20, 30, 40), encoding="gzip")
    data = bytearray(open(p, "rb").read())
    open(p, "wb").write(bytes(data[:-200]))
    s = open_input(p)
    with pytest.raises(InputError, match="truncated or corrupt|zlib"):
        s.read_all()


def test_bad_orientation_rejected(tmp_path):
    with pytest.raises(InputError, match="orientation"):
        open_input(write_mha(tmp_path / "o.mha", canon(), orientation="MM"))


def test_volume_sequence_rejected(tmp_path):
    stored = np.zeros((2 * 3, ROWS, COLS), np.uint8)
    with pytest.raises(InputError, match="3-D volumes"):
        open_input(write_mha(tmp_path / "v.mha", stored, ndims=4, dims=f"{COLS} {ROWS} 3 2"))


def test_not_a_header_rejected(tmp_path):
    p = tmp_path / "x.mha"
    p.write_bytes(b"\x00\x01garbage\n" * 10)
    with pytest.raises(InputError, match="MetaImage"):
        open_input(p)
    q = tmp_path / "x.seq.nrrd"
    q.write_bytes(b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 5 4 3\nencoding: bzip2\n\n" + b"\0" * 60)
    with pytest.raises(InputError, match="encoding"):
        open_input(q)


# ------------------------------------------------------------------------------------------
# writer
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,compress", [("w.seq.nrrd", False), ("w.seq.nrrd", True),
                                           ("w.mha", False), ("w.mha", True)])
@pytest.mark.parametrize("kind", ["uint8", "float32"])
def test_writer_round_trip(tmp_path, name, compress, kind):
    rng = np.random.default_rng(1)
    if kind == "uint8":
        frames = rng.integers(0, 256, (5, 7, 9), dtype=np.uint8)
        expect = frames / np.float32(255)
    else:
        frames = rng.random((5, 7, 9), dtype=np.float32)
        expect = frames
    geom = ImageGeometry((0.125, 0.25), (1.5, -2.0), (7, 9))
    times = 1000.0 + np.arange(5) * 0.033 + 1e-7
    tips = [mat(i) if i != 2 else None for i in range(5)]
    probe = [mat(20 + i) for i in range(5)]
    p = write_plus_sequence(tmp_path / name, frames, geom, times,
                            transforms={"NeedleTipToImage": tips, "ProbeToTracker": probe},
                            statuses={"ProbeToTracker": ["OK", "OK", "OK", "INVALID", "OK"]},
                            compress=compress)
    s = open_input(p)
    np.testing.assert_array_equal(s.read_all(), expect)
    np.testing.assert_array_equal(s.timestamps, times)            # exact
    assert s.geometry == geom
    assert s.transform_status["NeedleTipToImage"] == ["OK", "OK", "INVALID", "OK", "OK"]
    assert s.transform_status["ProbeToTracker"] == ["OK", "OK", "OK", "INVALID", "OK"]
    for i in range(5):
        if tips[i] is None:
            assert s.transforms["NeedleTipToImage"][i] is None
        else:
            np.testing.assert_array_equal(s.transforms["NeedleTipToImage"][i], tips[i])
    assert s.transforms["ProbeToTracker"][3] is None
    np.testing.assert_array_equal(s.transforms["ProbeToTracker"][4], probe[4])
    assert [x for x in os.listdir(tmp_path) if x.startswith(".")] == []     # no temp left


def test_seq_nrrd_header_is_plus_style(tmp_path):
    p = write_plus_seq_nrrd(tmp_path / "h.seq.nrrd", canon(), ImageGeometry((0.3, 0.2)),
                            [0.0, 0.1, 0.2], {"NeedleTipToImage": [mat(0), None, mat(2)]})
    text = open(p, "rb").read().split(b"\n\n", 1)[0].decode()
    assert text.startswith("NRRD0004\n")
    for line in ("type: uint8", "dimension: 3", f"sizes: {COLS} {ROWS} 3",
                 "kinds: domain domain list", "encoding: raw",
                 "space directions: (0.2,0) (0,0.3) none",
                 "ultrasound image orientation:=MF", "Seq_Frame0001_Timestamp:=0.1",
                 "Seq_Frame0001_NeedleTipToImageTransformStatus:=INVALID",
                 "Seq_Frame0000_Status:=OK"):
        assert line in text.splitlines()
    with pytest.raises(InputError, match="seq.nrrd"):
        write_plus_seq_nrrd(tmp_path / "h.mha", canon())


def test_streaming_writer_class(tmp_path):
    c = canon()
    with PlusSequenceWriter(tmp_path / "s.seq.nrrd", ImageGeometry((0.3, 0.2), shape=(ROWS, COLS)),
                            compress=True) as w:
        for i in range(N):
            w.append(c[i], t=0.5 * i, transforms={"NeedleTipToImageTransform": mat(i)},
                     fields={"Note": f"frame {i}"})
    s = open_input(tmp_path / "s.seq.nrrd")
    np.testing.assert_array_equal(s.read_all(), c / np.float32(255))
    np.testing.assert_array_equal(s.transforms["NeedleTipToImage"][2], mat(2))
    assert s.frame_fields[1]["Note"] == "frame 1"


def test_writer_failure_leaves_nothing(tmp_path):
    target = tmp_path / "fail.seq.nrrd"
    with pytest.raises(RuntimeError):
        with PlusSequenceWriter(target) as w:
            w.append(canon()[0])
            raise RuntimeError("stop midway")
    assert os.listdir(tmp_path) == []
    w = PlusSequenceWriter(target, ImageGeometry(shape=(ROWS, COLS)))
    with pytest.raises(InputError, match="shape"):
        w.append(np.zeros((3, 3), np.uint8))
    with pytest.raises(InputError, match="4x4"):
        w.append(canon()[0], transforms={"NeedleTipToImage": np.eye(3)})
    w.abort()
    with pytest.raises(InputError, match="at least one"):
        PlusSequenceWriter(target).close()
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError, match="nrrd"):
        PlusSequenceWriter(tmp_path / "x.txt")


@pytest.mark.parametrize("compress", [False, True])
def test_reading_streams_with_flat_memory(tmp_path, compress):
    n, rows, cols = 1500, 64, 64                     # 6 MB of pixels
    frames = (np.arange(n, dtype=np.uint32)[:, None, None] % 251).astype(np.uint8) \
        * np.ones((1, rows, cols), np.uint8)
    p = write_plus_sequence(tmp_path / "big.seq.nrrd", (f for f in frames),
                            timestamps=np.arange(n) / 30.0, compress=compress)
    s = open_input(p)
    assert s.n_frames == n
    tracemalloc.start()
    count = 0
    for i, t, f in s.frames():
        if i % 500 == 0:
            assert f[0, 0] == pytest.approx((i % 251) / 255)
        count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == n
    assert peak < 3 * 2 ** 20, f"peak {peak / 2**20:.1f} MiB while streaming {n} frames"
