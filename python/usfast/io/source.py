"""The common reader interface: :class:`Source`, plus helpers shared by every reader.

A ``Source`` describes one input (a file or a folder) and streams its frames:

- ``geometry``: :class:`usfast.ImageGeometry` with ``spacing_mm=(dz, dx)``, ``origin_mm=(z0, x0)``
  and ``shape=(rows, cols)`` of the frames that :meth:`Source.frames` yields.
- ``n_frames``: number of frames, or ``None`` when the container does not say. For video files it
  is the count the container reports, which some codecs only estimate; ``frames()`` yields what
  actually decodes.
- ``fps``: frame rate in frames per second, or ``None`` when unknown.
- ``timestamps``: float64 seconds per frame, or ``None`` when the input stores no times and no
  frame rate is known.
- ``metadata``: a JSON-serialisable dict: ``kind``, ``path``, ``sha256`` of the input file (for a
  folder: of the list of its image names and their own sha256), ``n_frames``, ``shape``,
  ``spacing_mm``, ``spacing_source``, ``origin_mm``, ``fps``, ``time_source``, ``value_scale``
  and what the format adds (DICOM modality and device, PLUS orientation and transforms...).
- ``transforms`` / ``transform_status``: per-frame 4x4 transforms by name (PLUS sequences; an
  empty dict for other inputs), see :class:`usfast.io.plus.PlusSource`.

``frames()`` yields ``(index, t_seconds, frame)``: ``frame`` is a new C-contiguous 2-D float32
array of grey levels in [0, 1], ``(rows=depth, cols=lateral)``; ``t_seconds`` is a float, or
``None`` when no time is known. Integer pixels are scaled by the largest value of their type
(uint8 / 255, uint16 / 65535, DICOM by ``2**BitsStored - 1``); colour is turned to grey as
luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601); float pixels are taken to be grey
levels already and are clipped to [0, 1] (a non-finite float pixel is an :class:`InputError`).
Frames are read one at a time, so memory stays flat however long the input is.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from .._errors import InputError, fail
from ..geometry import ImageGeometry

__all__ = ["Source", "sha256_file", "to_unit_float", "luma"]

FUNC = "open_input"


def sha256_file(path, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``, read in chunks (memory stays flat)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(chunk_size)
                if not block:
                    break
                h.update(block)
    except OSError as e:
        raise fail("sha256_file", "path", "a readable file", f"{str(path)!r} ({e.strerror or e})") from None
    return h.hexdigest()


def sha256_of_files(paths) -> str:
    """SHA-256 over the names and contents of several files (used for image folders)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
        h.update(sha256_file(p).encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()


_NUM = re.compile(r"(\d+)")


def natural_key(name: str):
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in _NUM.split(name)]


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luma(rgb) -> np.ndarray:
    """``(..., 3)`` R, G, B -> float32 luma ``0.299 R + 0.587 G + 0.114 B`` (same scale as in)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return (rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]).astype(
        np.float32, copy=False)


def value_scale(dtype, bits: int | None = None) -> str:
    """Text for ``metadata['value_scale']``: how stored values became [0, 1]."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return "bool: False -> 0, True -> 1"
    if dt.kind == "u":
        top = (1 << bits) - 1 if bits else np.iinfo(dt).max
        return f"{dt.name} / {top}"
    if dt.kind == "i":
        b = bits or dt.itemsize * 8
        return f"({dt.name} + {1 << (b - 1)}) / {(1 << b) - 1}"
    return f"{dt.name} taken as [0, 1] grey, clipped"


def to_unit_float(a, *, bits: int | None = None, where: str = "frame") -> np.ndarray:
    """Stored pixel values -> float32 grey in [0, 1] (see the module text for the rules).

    bits: significant bits of unsigned/signed integer data (DICOM BitsStored); default: the
    whole type.
    """
    a = np.asarray(a)
    k = a.dtype.kind
    if k == "b":
        return a.astype(np.float32)
    if k == "u":
        top = np.float32((1 << bits) - 1 if bits else np.iinfo(a.dtype).max)
        out = a.astype(np.float32) / top
        if bits and bits < a.dtype.itemsize * 8:
            np.clip(out, 0.0, 1.0, out=out)
        return out
    if k == "i":
        b = bits or a.dtype.itemsize * 8
        out = (a.astype(np.float32) + np.float32(1 << (b - 1))) / np.float32((1 << b) - 1)
        np.clip(out, 0.0, 1.0, out=out)
        return out
    if k == "f":
        out = a.astype(np.float32)
        if not np.isfinite(out).all():
            raise fail(FUNC, "path", f"finite pixel values in {where}", "NaN or infinity")
        np.clip(out, 0.0, 1.0, out=out)
        return out
    raise fail(FUNC, "path", "integer, boolean or float pixels", f"dtype {a.dtype}")


def check_spacing(spacing_mm, func: str = FUNC):
    """Validate the ``spacing_mm`` argument: None, one positive number, or ``(dz, dx)``."""
    if spacing_mm is None:
        return None
    try:
        arr = np.asarray(spacing_mm, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise fail(func, "spacing_mm", "(dz, dx) in mm, two positive numbers", repr(spacing_mm)) from None
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise fail(func, "spacing_mm", "(dz, dx) in mm, two positive finite numbers", repr(spacing_mm))
    return (float(arr[0]), float(arr[1]))


def check_fps(fps, func: str = FUNC):
    """Validate the ``fps`` argument: None or a positive finite frame rate."""
    if fps is None:
        return None
    try:
        v = float(fps)
    except (TypeError, ValueError):
        raise fail(func, "fps", "a positive frame rate in frames per second", repr(fps)) from None
    if not (math.isfinite(v) and v > 0):
        raise fail(func, "fps", "a positive finite frame rate in frames per second", fps)
    return v


def need_spacing(kind: str, path) -> InputError:
    """The error for inputs that carry no pixel spacing when none was given."""
    return fail(FUNC, "spacing_mm",
                f"the pixel spacing in mm as (dz, dx) (command line: --spacing-mm DZ DX), "
                f"because {kind} files carry no spacing", f"none for {str(path)!r}")


class Source:
    """One input, streamed frame by frame. See the module text for the attributes.

    Subclasses implement :meth:`_raw_frames`, yielding 2-D float32 frames in [0, 1].
    Use as a context manager or call :meth:`close` to release what the reader holds.
    """

    kind = "source"

    def __init__(self, *, path, geometry: ImageGeometry, n_frames, fps=None, timestamps=None,
                 metadata=None):
        self.path = str(path)
        self.geometry = geometry
        self.n_frames = None if n_frames is None else int(n_frames)
        self.fps = None if fps is None else float(fps)
        self.timestamps = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        # per-frame tracking data; only PLUS sequences carry any
        if not hasattr(self, "transforms"):
            self.transforms, self.transform_status = {}, {}
        md = {"kind": self.kind, "path": os.path.abspath(self.path)}
        md.update(metadata or {})
        md.setdefault("n_frames", self.n_frames)
        md["shape"] = list(geometry.shape) if geometry.shape else None
        md["spacing_mm"] = list(geometry.spacing_mm)
        md["origin_mm"] = list(geometry.origin_mm)
        md.setdefault("fps", self.fps)
        self.metadata = md

    # -- to implement ----------------------------------------------------------------------
    def _raw_frames(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public ----------------------------------------------------------------------------
    def time_of(self, index: int):
        """Time in seconds of frame ``index``, or None when unknown."""
        if self.timestamps is not None and index < len(self.timestamps):
            return float(self.timestamps[index])
        if self.fps:
            return index / self.fps
        return None

    def frames(self):
        """Yield ``(index, t_seconds, frame)``; frame is 2-D float32 in [0, 1], one at a time."""
        shape = self.geometry.shape
        for i, fr in enumerate(self._raw_frames()):
            if shape is not None and fr.shape != shape:
                raise fail(FUNC, "path", f"frames of one shape {shape} (rows, cols)",
                           f"{fr.shape} at frame {i} of {self.path!r}")
            yield i, self.time_of(i), np.ascontiguousarray(fr, dtype=np.float32)

    __iter__ = frames

    def read_all(self) -> np.ndarray:
        """Every frame stacked as ``(frames, rows, cols)`` float32 (for small inputs only)."""
        frames = [f for _, _, f in self.frames()]
        if not frames:
            return np.zeros((0,) + tuple(self.geometry.shape or (0, 0)), np.float32)
        return np.stack(frames)

    def close(self) -> None:
        """Release what the reader holds (readers open their files per call, so often nothing)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (f"<{type(self).__name__} {self.path!r} n_frames={self.n_frames} "
                f"shape={self.geometry.shape} spacing_mm={self.geometry.spacing_mm}>")


def timestamps_from_fps(n_frames, fps):
    if n_frames is None or not fps:
        return None
    return np.arange(int(n_frames), dtype=np.float64) / float(fps)
