"""DICOM ultrasound images (single- and multi-frame), through pydicom (extra ``dicom``).

- Only ultrasound: ``Modality`` must be ``US`` (or, where Modality is absent, the SOP class an
  ultrasound one); anything else is an :class:`InputError` naming the modality.
- Pixel size from the Sequence of Ultrasound Regions (0018,6011) only, never from ``PixelSpacing``: among the
  regions with ``RegionSpatialFormat`` 1 (2-D), ``RegionDataType`` 1 (tissue) and
  ``PhysicalUnitsXDirection``/``YDirection`` 3 (cm), the largest is used; frames are cropped to
  its ``RegionLocationMinX0..MaxX1`` x ``MinY0..MaxY1`` (inclusive) and
  ``spacing_mm = (10*|PhysicalDeltaY|, 10*|PhysicalDeltaX|)``. Where the region gives a
  reference pixel (``ReferencePixelX0/Y0`` and ``ReferencePixelPhysicalValueX/Y``), ``origin_mm``
  places the cropped image in that physical frame; otherwise it is (0, 0). With no usable region
  ``spacing_mm`` must be given (the whole frame is used). A ``spacing_mm`` argument always wins
  over the file (the crop still applies).
- Times: ``FrameTimeVector`` (ms from the previous frame; cumulative sum), else ``FrameTime``
  (ms per frame), else ``CineRate`` / ``RecommendedDisplayFrameRate``; an ``fps`` argument wins.
  Times start at 0.
- Pixels: ``MONOCHROME2``; ``MONOCHROME1`` (inverted: 1 - value); ``RGB``, ``YBR_FULL``,
  ``YBR_FULL_422`` (grey = luma Y, i.e. the Y channel itself for YBR); ``PALETTE COLOR``
  (through its LUT, then luma). Integers are scaled by ``2**BitsStored - 1``. Modality and VOI
  LUTs are not applied (B-mode pixel values are display values).
- Compressed transfer syntaxes are decoded by whatever pydicom decoder plugin is installed
  (Pillow for JPEG baseline and JPEG 2000, pylibjpeg-libjpeg / pyjpegls / gdcm for JPEG-LS and
  lossless JPEG, built-in RLE); when none is, opening fails with an :class:`InputError` that
  names the packages to install.
- Memory: the header is read with the pixel data deferred; frames are decoded one at a time
  from the file with ``pydicom.pixels.iter_pixels`` (native data are read frame by frame;
  for compressed data pydicom reads each frame's fragments as needed).
- Truncated files (pixel data shorter than Rows x Columns x frames needs), unreadable files and
  files without pixel data are :class:`InputError` s.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .._errors import InputError, fail
from ..geometry import ImageGeometry
from .source import FUNC, Source, check_fps, check_spacing, luma, sha256_file, to_unit_float

__all__ = ["DicomSource", "is_dicom_file"]

_US_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1",   # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3.1",   # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.6",     # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.3",     # Ultrasound Multi-frame Image Storage (retired)
}
_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                 "PALETTE COLOR", "YBR_RCT", "YBR_ICT")


def is_dicom_file(path) -> bool:
    """True when the file has the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _pydicom():
    try:
        import pydicom
        import pydicom.pixels  # noqa: F401  (pydicom >= 3)
    except ImportError:
        raise fail(FUNC, "path", "pydicom >= 3 to read DICOM files (pip install 'usfast[dicom]')",
                   "pydicom is not installed") from None
    return pydicom


def _bad(path, what, got):
    return fail(FUNC, "path", what, f"{got} in {str(path)!r}")


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


US_REGIONS_TAG = 0x00186011  # Sequence of Ultrasound Regions
SPACING_FROM_REGIONS = "ultrasound regions (0018,6011)"


def _pick_region(ds, rows, cols):
    """The largest 2-D tissue region in cm, as a dict, or None; plus notes on what was skipped."""
    elem = ds.get(US_REGIONS_TAG)
    seq = None if elem is None else elem.value
    best, notes = None, []
    if not seq:
        return None, ["no Sequence of Ultrasound Regions"]
    for k, r in enumerate(seq):
        fmt, typ = r.get("RegionSpatialFormat"), r.get("RegionDataType")
        ux, uy = r.get("PhysicalUnitsXDirection"), r.get("PhysicalUnitsYDirection")
        dx, dy = _num(r.get("PhysicalDeltaX")), _num(r.get("PhysicalDeltaY"))
        box = [r.get(t) for t in ("RegionLocationMinX0", "RegionLocationMinY0",
                                  "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if fmt != 1 or typ != 1:
            notes.append(f"region {k}: spatial format {fmt}, data type {typ} (want 1, 1)")
            continue
        if ux != 3 or uy != 3:
            notes.append(f"region {k}: units {ux}, {uy} (want 3 = cm)")
            continue
        if not dx or not dy:
            notes.append(f"region {k}: no PhysicalDeltaX/Y")
            continue
        if any(b is None for b in box):
            notes.append(f"region {k}: no RegionLocation bounds")
            continue
        x0, y0, x1, y1 = (int(b) for b in box)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, cols - 1), min(y1, rows - 1)
        if x1 < x0 or y1 < y0:
            notes.append(f"region {k}: bounds outside the {rows}x{cols} image")
            continue
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        if best is None or area > best["area"]:
            best = {"index": k, "area": area, "box": (x0, y0, x1, y1),
                    "box_file": tuple(int(b) for b in box), "dx_cm": dx, "dy_cm": dy,
                    "ref": [r.get("ReferencePixelX0"), r.get("ReferencePixelY0"),
                            _num(r.get("ReferencePixelPhysicalValueX")),
                            _num(r.get("ReferencePixelPhysicalValueY"))]}
    return best, notes


class DicomSource(Source):
    """Frames of an ultrasound DICOM file (see the module text)."""

    kind = "dicom"

    def __init__(self, path, *, spacing_mm=None, fps=None):
        spacing_arg = check_spacing(spacing_mm)
        fps_arg = check_fps(fps)
        path = os.fspath(path)
        pydicom = _pydicom()
        from pydicom.errors import InvalidDicomError
        try:
            ds = pydicom.dcmread(path, defer_size=1024)
        except InvalidDicomError:
            raise _bad(path, "a DICOM file (Part 10: 'DICM' preamble and file meta header)",
                       "a file that is not DICOM") from None
        except Exception as e:  # pydicom raises many kinds on damaged files
            raise _bad(path, "a readable DICOM file", f"unreadable or truncated DICOM "
                                                    f"({type(e).__name__}: {e})") from None
        try:
            self._init(path, ds, spacing_arg, fps_arg)
        except InputError:
            raise
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            raise _bad(path, "a well-formed ultrasound DICOM header",
                       f"{type(e).__name__}: {e}") from None

    def _init(self, path, ds, spacing_arg, fps_arg):
        from pydicom.dataelem import RawDataElement
        modality = str(ds.get("Modality", "") or "").strip().upper() or None
        fm = getattr(ds, "file_meta", None)
        sop = str(ds.get("SOPClassUID", "") or (fm.get("MediaStorageSOPClassUID", "") if fm else ""))
        if modality != "US" and not (modality is None and sop in _US_SOP_CLASSES):
            raise _bad(path, "an ultrasound DICOM (Modality 'US')",
                       f"Modality {modality!r}" if modality else "no Modality and a non-ultrasound SOP class")
        if "PixelData" not in ds:
            other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
            raise _bad(path, "a DICOM image with pixel data (PixelData)",
                       f"{other[0]} (not supported)" if other
                       else "no pixel data (a report or other non-image object, or a truncated file)")
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        bits_alloc = int(ds.BitsAllocated)
        bits_stored = int(ds.get("BitsStored", bits_alloc) or bits_alloc)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        n = int(ds.get("NumberOfFrames", 1) or 1)
        if rows < 1 or cols < 1 or n < 1:
            raise _bad(path, "at least one frame of at least 1x1 pixels", f"{n} frames of {rows}x{cols}")
        if photometric not in _PHOTOMETRICS:
            raise _bad(path, f"a PhotometricInterpretation among {', '.join(_PHOTOMETRICS)}",
                       repr(photometric))
        from pydicom.uid import ImplicitVRLittleEndian, UID
        ts = UID(str(fm.get("TransferSyntaxUID", ImplicitVRLittleEndian))) if fm else ImplicitVRLittleEndian
        if ts.is_compressed:
            from pydicom.pixels import get_decoder
            try:
                decoder = get_decoder(ts)
            except NotImplementedError:
                raise _bad(path, "a transfer syntax pydicom can decode",
                           f"{ts.name} ({ts}), for which pydicom has no decoder") from None
            if not decoder.is_available:
                deps = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
                raise _bad(path, f"a decoder for {ts.name}: install one of [{deps}] "
                                 f"(for example: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg)",
                           f"compressed pixel data ({ts}) and no decoder installed")
        else:
            elem = ds.get_item("PixelData", keep_deferred=True)
            need = (rows * cols * spp * n * bits_alloc + 7) // 8
            have = None
            if isinstance(elem, RawDataElement):
                if elem.value_tell is not None and elem.length is not None:
                    have = min(elem.length, os.path.getsize(path) - elem.value_tell)
                    if elem.value is not None:
                        have = len(elem.value)
            else:
                have = len(elem.value) if elem.value is not None else 0
            if have is not None and have < need:
                raise _bad(path, f"{need} bytes of pixel data ({n} frames of {rows}x{cols}x{spp}, "
                                 f"{bits_alloc} bits)", f"{max(have, 0)} bytes (truncated file)")

        # region, crop, spacing, origin
        region, notes = _pick_region(ds, rows, cols)
        md = {"sha256": sha256_file(path), "modality": modality,
              "sop_class": sop or None,
              "manufacturer": str(ds.get("Manufacturer", "")) or None,
              "model": str(ds.get("ManufacturerModelName", "")) or None,
              "transfer_syntax": f"{ts.name} ({ts})", "photometric": photometric,
              "bits_stored": bits_stored, "samples_per_pixel": spp,
              "file_shape": [n, rows, cols]}
        origin = (0.0, 0.0)
        if region is not None:
            x0, y0, x1, y1 = region["box"]
            self._crop = (y0, y1 + 1, x0, x1 + 1)
            file_spacing = (abs(region["dy_cm"]) * 10.0, abs(region["dx_cm"]) * 10.0)
            md["region"] = {"index": region["index"], "bounds_x0_y0_x1_y1": list(region["box_file"]),
                            "physical_delta_cm": [region["dx_cm"], region["dy_cm"]]}
            rx, ry, px, py = region["ref"]
            if None not in (rx, ry, px, py) and spacing_arg is None:
                origin = ((py - int(ry) * region["dy_cm"]) * 10.0,
                          (px - int(rx) * region["dx_cm"]) * 10.0)
        else:
            self._crop = None
            file_spacing = None
            md["region"] = None
            md["region_notes"] = notes
        if spacing_arg is not None:
            spacing = spacing_arg
            md["spacing_source"] = "spacing_mm argument"
            if file_spacing:
                md["file_spacing_mm"] = list(file_spacing)
        elif file_spacing is not None:
            spacing = file_spacing
            md["spacing_source"] = SPACING_FROM_REGIONS
        else:
            raise fail(FUNC, "spacing_mm",
                       "the pixel spacing in mm as (dz, dx) (command line: --spacing-mm DZ DX), "
                       "because the DICOM has no usable ultrasound region (Sequence of "
                       "Ultrasound Regions with a 2-D tissue region in cm; PixelSpacing is not used)",
                       f"none for {path!r} ({'; '.join(notes)})")
        shape = (rows, cols) if self._crop is None else (self._crop[1] - self._crop[0],
                                                          self._crop[3] - self._crop[2])

        # times
        timestamps, fps, tsrc = None, None, None
        ftv = ds.get("FrameTimeVector")
        ft = _num(ds.get("FrameTime"))
        rate = _num(ds.get("CineRate")) or _num(ds.get("RecommendedDisplayFrameRate"))
        if fps_arg is not None:
            fps, tsrc = fps_arg, "fps argument"
            timestamps = np.arange(n) / fps
        elif ftv is not None and n > 1 and len(ftv if not isinstance(ftv, (int, float)) else [ftv]) == n:
            inc = np.asarray([float(v) for v in ftv], dtype=np.float64)
            if np.all(np.isfinite(inc)) and np.all(inc[1:] >= 0):
                inc[0] = 0.0
                timestamps = np.cumsum(inc) / 1000.0
                tsrc = "FrameTimeVector"
                if n > 1 and timestamps[-1] > 0:
                    fps = (n - 1) / timestamps[-1]
        if timestamps is None and ft and ft > 0:
            fps, tsrc = 1000.0 / ft, "FrameTime"
            timestamps = np.arange(n) * (ft / 1000.0)
        if timestamps is None and rate and rate > 0:
            fps, tsrc = rate, "CineRate" if _num(ds.get("CineRate")) else "RecommendedDisplayFrameRate"
            timestamps = np.arange(n) / rate
        if ftv is not None and tsrc != "FrameTimeVector" and fps_arg is None:
            md["time_notes"] = "FrameTimeVector ignored (length differs from the frame count or bad values)"
        md["time_source"] = tsrc

        self._bits = bits_stored
        self._signed = signed
        self._photometric = photometric
        self._spp = spp
        self._lut_ds = ds if photometric == "PALETTE COLOR" else None
        md["value_scale"] = (f"(value + {1 << (bits_stored - 1)}) / {(1 << bits_stored) - 1}" if signed
                             else f"value / {(1 << bits_stored) - 1}") + (
            "; MONOCHROME1 inverted" if photometric == "MONOCHROME1" else "") + (
            "; grey = luma (BT.601)" if spp == 3 or photometric == "PALETTE COLOR" else "")
        geom = ImageGeometry(spacing, origin, shape)
        super().__init__(path=path, geometry=geom, n_frames=n, fps=fps, timestamps=timestamps,
                         metadata=md)

    def _to_grey(self, arr, photometric, i):
        where = f"frame {i}"
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut
            rgb = apply_color_lut(arr, self._lut_ds)
            return luma(to_unit_float(rgb, where=where))
        if arr.ndim == 3:
            if photometric in ("YBR_FULL", "YBR_FULL_422"):
                return to_unit_float(arr[..., 0], bits=self._bits, where=where)
            return luma(to_unit_float(arr[..., :3], bits=self._bits, where=where))
        out = to_unit_float(arr, bits=self._bits, where=where)
        if photometric == "MONOCHROME1":
            out = 1.0 - out
        return out

    def _raw_frames(self):
        from pydicom import Dataset
        from pydicom.pixels import iter_pixels
        out = Dataset()
        it = iter_pixels(self.path, ds_out=out, as_rgb=False)
        i = 0
        while True:
            try:
                arr = next(it)
            except StopIteration:
                break
            except Exception as e:  # decoder failures of many kinds
                raise _bad(self.path, "decodable pixel data",
                           f"frame {i} could not be decoded ({type(e).__name__}: {e})") from None
            photometric = str(out.get("PhotometricInterpretation", self._photometric)).upper()
            if photometric in ("YBR_RCT", "YBR_ICT"):   # decoders return RGB for these
                photometric = "RGB"
            if self._crop is not None:
                y0, y1, x0, x1 = self._crop
                arr = arr[y0:y1, x0:x1]
            yield self._to_grey(arr, photometric, i)
            i += 1
