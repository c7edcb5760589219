"""DICOM ultrasound reading: regions, crop, spacing, timing, colour, compression, bad files."""
import io as _io
import json

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless,  # noqa: E402
                         RLELossless, generate_uid)

from usfast import InputError  # noqa: E402
from usfast.io import luma, open_input  # noqa: E402
from usfast.io.dicom import SPACING_FROM_REGIONS, US_REGIONS_TAG  # noqa: E402

US_MULTI = "1.2.840.10008.5.1.4.1.1.3.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def region(x0, y0, x1, y1, dx_cm=0.02, dy_cm=0.015, fmt=1, dtype=1, units=3, ref=None):
    r = Dataset()
    r.RegionSpatialFormat = fmt
    r.RegionDataType = dtype
    r.RegionFlags = 0
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, y1
    r.PhysicalUnitsXDirection = units
    r.PhysicalUnitsYDirection = units
    r.PhysicalDeltaX = dx_cm
    r.PhysicalDeltaY = dy_cm
    if ref is not None:
        r.ReferencePixelX0, r.ReferencePixelY0 = ref[0], ref[1]
        r.ReferencePixelPhysicalValueX, r.ReferencePixelPhysicalValueY = ref[2], ref[3]
    return r


def make_dicom(path, pixels, *, photometric="MONOCHROME2", modality="US", regions=None,
               ts=ExplicitVRLittleEndian, sop=US_MULTI, bits_stored=None, pixel_data=None,
               no_pixels=False, **attrs):
    """Write a small DICOM; ``pixels`` is (frames, rows, cols[, 3]) uint8/uint16."""
    pixels = np.asarray(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    if modality is not None:
        ds.Modality = modality
    nf, rows, cols = pixels.shape[:3]
    if nf > 1:
        ds.NumberOfFrames = nf
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if pixels.ndim == 4 else 1
    if pixels.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if regions is not None:
        ds.add_new(US_REGIONS_TAG, "SQ", regions)  # Sequence of Ultrasound Regions
    for k, v in attrs.items():
        setattr(ds, k, v)
    if not no_pixels:
        ds.PixelData = pixel_data if pixel_data is not None else pixels.tobytes()
        if pixel_data is not None:
            ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def ramp(nf=1, rows=40, cols=60, dtype=np.uint8):
    z, y, x = np.mgrid[0:nf, 0:rows, 0:cols]
    return ((x * 3 + y * 2 + z * 17) % 256).astype(dtype)


def test_single_frame_region_spacing_and_crop(tmp_path):
    px = ramp(1)
    p = make_dicom(tmp_path / "a.dcm", px, regions=[region(5, 8, 44, 35)],
                   PixelSpacing=[9.0, 9.0])   # must be ignored
    s = open_input(p)
    assert s.kind == "dicom" and s.n_frames == 1
    assert s.geometry.spacing_mm == pytest.approx((0.15, 0.2))      # cm -> mm
    assert s.geometry.shape == (28, 40)                             # inclusive bounds
    frames = s.read_all()
    np.testing.assert_array_equal(frames[0], px[0, 8:36, 5:45].astype(np.float32) / 255)
    assert frames.dtype == np.float32
    md = s.metadata
    assert md["modality"] == "US" and md["spacing_source"] == SPACING_FROM_REGIONS
    assert md["region"]["bounds_x0_y0_x1_y1"] == [5, 8, 44, 35]
    assert len(md["sha256"]) == 64
    json.dumps(md)


def test_largest_tissue_region_is_chosen(tmp_path):
    px = ramp(1, 50, 70)
    regs = [region(0, 0, 69, 49, fmt=3, dtype=3),          # spectral doppler, larger: skipped
            region(2, 2, 11, 11, dx_cm=0.05, dy_cm=0.05),  # small tissue region
            region(10, 5, 59, 44, dx_cm=0.01, dy_cm=0.012),  # largest tissue region
            region(0, 0, 69, 49, units=0)]                 # no physical units: skipped
    s = open_input(make_dicom(tmp_path / "r.dcm", px, regions=regs))
    assert s.geometry.shape == (40, 50)
    assert s.geometry.spacing_mm == pytest.approx((0.12, 0.1))
    assert s.metadata["region"]["index"] == 2
    np.testing.assert_array_equal(s.read_all()[0], px[0, 5:45, 10:60] / np.float32(255))


def test_region_reference_pixel_sets_origin(tmp_path):
    px = ramp(1)
    # reference pixel (col 10, row 0) of the region is at x = 0 cm, depth = 0.5 cm
    reg = region(5, 8, 44, 35, dx_cm=0.02, dy_cm=0.015, ref=(10, 0, 0.0, 0.5))
    s = open_input(make_dicom(tmp_path / "o.dcm", px, regions=[reg]))
    z0, x0 = s.geometry.origin_mm
    assert z0 == pytest.approx(5.0) and x0 == pytest.approx(-10 * 0.2)
    # the reference pixel lands where the region says
    assert s.geometry.px_to_mm([10, 0]) == pytest.approx([0.0, 5.0])


def test_no_region_needs_spacing_and_ignores_pixel_spacing(tmp_path):
    px = ramp(1)
    p = make_dicom(tmp_path / "n.dcm", px, PixelSpacing=[0.1, 0.1])
    with pytest.raises(InputError) as e:
        open_input(p)
    msg = str(e.value)
    assert "spacing_mm" in msg and "--spacing-mm" in msg and "PixelSpacing is not used" in msg
    s = open_input(p, spacing_mm=(0.3, 0.25))
    assert s.geometry.spacing_mm == (0.3, 0.25) and s.geometry.shape == (40, 60)
    assert s.metadata["spacing_source"] == "spacing_mm argument"


def test_region_in_wrong_units_is_not_usable(tmp_path):
    px = ramp(1)
    p = make_dicom(tmp_path / "u.dcm", px, regions=[region(0, 0, 59, 39, units=4)])
    with pytest.raises(InputError, match="spacing_mm"):
        open_input(p)


def test_spacing_argument_wins_but_crop_stays(tmp_path):
    px = ramp(1)
    p = make_dicom(tmp_path / "w.dcm", px, regions=[region(5, 8, 44, 35)])
    s = open_input(p, spacing_mm=0.5)
    assert s.geometry.spacing_mm == (0.5, 0.5) and s.geometry.shape == (28, 40)
    assert s.metadata["file_spacing_mm"] == pytest.approx([0.15, 0.2])


def test_monochrome1_is_inverted(tmp_path):
    px = ramp(1)
    s = open_input(make_dicom(tmp_path / "m1.dcm", px, photometric="MONOCHROME1"), spacing_mm=0.1)
    np.testing.assert_allclose(s.read_all()[0], 1 - px[0] / 255.0, atol=1e-6)


def test_rgb_to_grey_luma(tmp_path):
    rgb = np.zeros((1, 4, 5, 3), np.uint8)
    rgb[0, ..., 0] = 200
    rgb[0, ..., 1] = 100
    rgb[0, ..., 2] = 50
    rgb[0, 0, 0] = (255, 255, 255)
    s = open_input(make_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB"), spacing_mm=0.1)
    f = s.read_all()[0]
    assert f[1, 1] == pytest.approx((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, abs=1e-6)
    assert f[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_ybr_full_to_grey_is_y(tmp_path):
    from pydicom.pixels import convert_color_space
    yy, xx = np.mgrid[0:16, 0:24]
    rgb = np.stack([xx * 10, yy * 15, 255 - xx * 10], -1).clip(0, 255).astype(np.uint8)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    s = open_input(make_dicom(tmp_path / "ybr.dcm", ybr[None], photometric="YBR_FULL"),
                   spacing_mm=0.1)
    f = s.read_all()[0]
    np.testing.assert_array_equal(f, ybr[..., 0] / np.float32(255))
    np.testing.assert_allclose(f, luma(rgb.astype(np.float32)) / 255, atol=1.0 / 255)


def test_multiframe_frame_time(tmp_path):
    px = ramp(4)
    p = make_dicom(tmp_path / "ft.dcm", px, regions=[region(0, 0, 59, 39)], FrameTime=40.0)
    s = open_input(p)
    assert s.n_frames == 4 and s.fps == pytest.approx(25.0)
    np.testing.assert_allclose(s.timestamps, [0, 0.04, 0.08, 0.12])
    got = list(s.frames())
    assert [i for i, _, _ in got] == [0, 1, 2, 3]
    assert [t for _, t, _ in got] == pytest.approx([0, 0.04, 0.08, 0.12])
    for i, _, f in got:
        np.testing.assert_array_equal(f, px[i] / np.float32(255))
    assert s.metadata["time_source"] == "FrameTime"


def test_multiframe_frame_time_vector_and_fps_override(tmp_path):
    px = ramp(4)
    p = make_dicom(tmp_path / "ftv.dcm", px, regions=[region(0, 0, 59, 39)], FrameTime=40.0,
                   FrameTimeVector=[0, 30, 50, 20])
    s = open_input(p)
    np.testing.assert_allclose(s.timestamps, [0, 0.03, 0.08, 0.10])
    assert s.metadata["time_source"] == "FrameTimeVector"
    s2 = open_input(p, fps=10)
    np.testing.assert_allclose(s2.timestamps, [0, 0.1, 0.2, 0.3])
    assert s2.metadata["time_source"] == "fps argument"


def test_frames_stream_lazily(tmp_path):
    px = ramp(6)
    s = open_input(make_dicom(tmp_path / "lazy.dcm", px, regions=[region(0, 0, 59, 39)]))
    it = s.frames()
    i, _, f = next(it)
    assert i == 0 and f.shape == (40, 60)
    it.close()


def test_multiframe_streams_with_flat_memory(tmp_path):
    import tracemalloc
    px = np.random.default_rng(0).integers(0, 256, (200, 128, 128), dtype=np.uint8)  # 3.1 MiB
    s = open_input(make_dicom(tmp_path / "big.dcm", px, regions=[region(0, 0, 127, 127)]))
    tracemalloc.start()
    n = 0
    for i, _, f in s.frames():
        if i == 150:
            np.testing.assert_array_equal(f, px[150] / np.float32(255))
        n += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 200 and peak < 1.5 * 2 ** 20, f"peak {peak / 2**20:.1f} MiB"


def test_sixteen_bit_scaled_by_bits_stored(tmp_path):
    px = np.full((1, 3, 4), 4095, np.uint16)
    px[0, 0, 0] = 0
    s = open_input(make_dicom(tmp_path / "b12.dcm", px, bits_stored=12), spacing_mm=0.1)
    f = s.read_all()[0]
    assert f[0, 0] == 0 and f[1, 1] == pytest.approx(1.0)


def test_non_ultrasound_modality_rejected(tmp_path):
    p = make_dicom(tmp_path / "ct.dcm", ramp(1, dtype=np.uint16), modality="CT", sop=CT_IMAGE)
    with pytest.raises(InputError) as e:
        open_input(p, spacing_mm=0.1)
    assert "'CT'" in str(e.value) and "ultrasound" in str(e.value)


def test_truncated_file_rejected(tmp_path):
    p = make_dicom(tmp_path / "t.dcm", ramp(3), regions=[region(0, 0, 59, 39)])
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-500])
    with pytest.raises(InputError, match="truncated"):
        open_input(p)
    open(p, "wb").write(data[:300])   # cut inside the header: no pixel data left
    with pytest.raises(InputError, match="pixel data"):
        open_input(p)


def test_not_dicom_rejected(tmp_path):
    p = tmp_path / "junk.dcm"
    p.write_bytes(b"this is not a dicom file at all" * 10)
    with pytest.raises(InputError, match="DICOM"):
        open_input(p, spacing_mm=0.1)


def test_no_pixel_data_rejected(tmp_path):
    p = make_dicom(tmp_path / "np.dcm", ramp(1), no_pixels=True)
    with pytest.raises(InputError, match="no pixel data"):
        open_input(p, spacing_mm=0.1)


def test_modality_missing_accepted_for_us_sop_class(tmp_path):
    p = make_dicom(tmp_path / "nomod.dcm", ramp(1), modality=None, regions=[region(0, 0, 59, 39)])
    assert open_input(p).n_frames == 1
    p = make_dicom(tmp_path / "nomod_ct.dcm", ramp(1), modality=None, sop=CT_IMAGE)
    with pytest.raises(InputError, match="no Modality"):
        open_input(p, spacing_mm=0.1)


def test_dicom_found_by_content_without_extension(tmp_path):
    p = make_dicom(tmp_path / "IMG0001", ramp(1), regions=[region(0, 0, 59, 39)])
    assert open_input(p).kind == "dicom"


def test_rle_lossless_multiframe_decodes_exactly(tmp_path):
    from pydicom.pixels import get_encoder
    if not get_encoder(RLELossless).is_available:
        pytest.skip("no RLE encoder")
    px = ramp(3, 16, 20)
    p = make_dicom(tmp_path / "rle_src.dcm", px, regions=[region(0, 0, 19, 15)], FrameTime=50.0)
    ds = pydicom.dcmread(p)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    s = open_input(tmp_path / "rle.dcm")
    assert "RLE" in s.metadata["transfer_syntax"]
    np.testing.assert_array_equal(s.read_all(), px / np.float32(255))


def test_jpeg_baseline_ybr_422_decodes_to_luma(tmp_path):
    from pydicom.pixels import get_decoder
    PIL = pytest.importorskip("PIL.Image")
    if not get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("no JPEG baseline decoder installed")
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx * 5, yy * 7, 255 - xx * 4], -1).clip(0, 255).astype(np.uint8)
    frames = []
    for _ in range(2):
        b = _io.BytesIO()
        PIL.fromarray(rgb).save(b, "JPEG", quality=95, subsampling=1)  # 4:2:2
        frames.append(b.getvalue())
    p = make_dicom(tmp_path / "jpg.dcm", np.zeros((2, 32, 48, 3), np.uint8),
                   photometric="YBR_FULL_422", ts=JPEGBaseline8Bit,
                   pixel_data=encapsulate(frames), regions=[region(0, 0, 47, 31)])
    s = open_input(p)
    f = s.read_all()
    assert f.shape == (2, 32, 48)
    np.testing.assert_allclose(f[1], luma(rgb.astype(np.float32)) / 255, atol=3.0 / 255)


def test_compressed_without_decoder_names_the_plugin(tmp_path):
    from pydicom.pixels import get_decoder
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    fake = encapsulate([b"\xff\xd8\xff\xf7" + b"\0" * 30])
    p = make_dicom(tmp_path / "jls.dcm", np.zeros((1, 8, 8), np.uint8), ts=JPEGLSLossless,
                   pixel_data=fake, regions=[region(0, 0, 7, 7)])
    with pytest.raises(InputError) as e:
        open_input(p)
    msg = str(e.value)
    assert "JPEG-LS" in msg and "pylibjpeg" in msg and "install" in msg
