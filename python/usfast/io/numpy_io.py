"""NumPy inputs: ``.npy`` (one 2-D frame or a 3-D batch) and ``.npz`` archives.

``.npy`` is opened with ``mmap_mode='r'``: frames are copied out one at a time.
``.npz``: the frames are the array named ``frames``, else the first array in the archive; the
optional arrays ``spacing_mm`` ((dz, dx) or one number), ``origin_mm`` ((z0, x0)),
``timestamps`` (seconds, one per frame) and ``fps`` describe them. The frames member is read
from the zip stream frame by frame (stored or deflated alike), so memory stays flat too; only a
Fortran-ordered frames array is loaded whole.

Arguments win over the file: ``spacing_mm`` given to :func:`usfast.io.open_input` replaces the
archive's, ``fps`` replaces its timestamps.
"""
from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from .._errors import fail
from ..geometry import ImageGeometry
from .source import (FUNC, Source, check_fps, check_spacing, need_spacing, sha256_file,
                     timestamps_from_fps, to_unit_float, value_scale)

__all__ = ["NumpySource"]


def _check_frames_layout(path, shape, dtype):
    if len(shape) not in (2, 3):
        raise fail(FUNC, "path", "a 2-D frame (rows, cols) or a 3-D batch (frames, rows, cols)",
                   f"an array of shape {tuple(shape)} in {str(path)!r}")
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise fail(FUNC, "path", "an array of integer, boolean or float pixels",
                   f"dtype {dtype} in {str(path)!r}")
    if len(shape) == 3 and shape[0] == 0:
        raise fail(FUNC, "path", "at least one frame", f"an empty array of shape {tuple(shape)}")
    if min(shape[-2:]) < 1:
        raise fail(FUNC, "path", "frames of at least 1x1 pixels", f"shape {tuple(shape)}")


def _read_header(f):
    """Read an .npy header from a stream: ``(shape, fortran_order, dtype)``."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


class NumpySource(Source):
    """Frames from a ``.npy`` or ``.npz`` file (see the module text)."""

    kind = "numpy"

    def __init__(self, path, *, spacing_mm=None, fps=None):
        spacing = check_spacing(spacing_mm)
        fps = check_fps(fps)
        path = os.fspath(path)
        md = {"sha256": sha256_file(path)}
        self._member = None
        self._mmap = None
        origin = (0.0, 0.0)
        file_ts = None
        file_spacing = None
        if str(path).lower().endswith(".npz"):
            self.kind = "npz"
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys = list(z.files)
                    if not keys:
                        raise fail(FUNC, "path", "an .npz archive holding a frames array",
                                   f"an empty archive {path!r}")
                    key = "frames" if "frames" in keys else keys[0]
                    small = {}
                    for k in ("spacing_mm", "origin_mm", "timestamps", "fps"):
                        if k in keys and k != key:
                            small[k] = np.asarray(z[k])
            except zipfile.BadZipFile as e:
                raise fail(FUNC, "path", "a readable .npz archive", f"{path!r} ({e})") from None
            except ValueError as e:
                raise fail(FUNC, "path", "an .npz archive of plain arrays", f"{path!r} ({e})") from None
            self._member = key + ".npy"
            shape, fortran, dtype = self._member_header(path)
            _check_frames_layout(path, shape, dtype)
            self._fortran = fortran
            md["array"] = key
            if "spacing_mm" in small:
                file_spacing = check_spacing(small["spacing_mm"].tolist(), FUNC)
            if "origin_mm" in small:
                o = np.asarray(small["origin_mm"], dtype=np.float64).ravel()
                if o.size != 2 or not np.all(np.isfinite(o)):
                    raise fail(FUNC, "path", "origin_mm in the archive as (z0, x0), two finite numbers",
                               small["origin_mm"].tolist())
                origin = (float(o[0]), float(o[1]))
            if "fps" in small and fps is None:
                file_fps = check_fps(float(np.asarray(small["fps"]).ravel()[0]), FUNC)
            else:
                file_fps = None
            if "timestamps" in small:
                file_ts = np.asarray(small["timestamps"], dtype=np.float64).ravel()
        else:
            self.kind = "npy"
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise fail(FUNC, "path", "a readable .npy file", f"{path!r} ({e})") from None
            if not isinstance(arr, np.ndarray):
                raise fail(FUNC, "path", "a .npy array", type(arr).__name__)
            shape, dtype = arr.shape, arr.dtype
            _check_frames_layout(path, shape, dtype)
            self._mmap = arr
            file_fps = None
        n = 1 if len(shape) == 2 else int(shape[0])
        self._shape = tuple(int(s) for s in shape)
        self._dtype = dtype

        if spacing is not None:
            md["spacing_source"] = "spacing_mm argument"
            if file_spacing is not None:
                md["file_spacing_mm"] = list(file_spacing)
        elif file_spacing is not None:
            spacing = file_spacing
            md["spacing_source"] = "file (spacing_mm)"
        else:
            raise need_spacing("NumPy (.npy, or .npz without a spacing_mm array)", path)

        timestamps = None
        if fps is not None:
            timestamps = timestamps_from_fps(n, fps)
            md["time_source"] = "fps argument"
        elif file_ts is not None:
            if file_ts.size != n or not np.all(np.isfinite(file_ts)):
                raise fail(FUNC, "path", f"timestamps in the archive: {n} finite seconds, one per frame",
                           f"{file_ts.size} values")
            timestamps = file_ts
            md["time_source"] = "file (timestamps)"
        elif file_fps is not None:
            fps = file_fps
            timestamps = timestamps_from_fps(n, fps)
            md["time_source"] = "file (fps)"
        else:
            md["time_source"] = None
        md["dtype"] = str(dtype)
        md["value_scale"] = value_scale(dtype)
        geom = ImageGeometry(spacing, origin, self._shape[-2:])
        super().__init__(path=path, geometry=geom, n_frames=n, fps=fps, timestamps=timestamps,
                         metadata=md)

    def _member_header(self, path):
        try:
            with zipfile.ZipFile(path) as zf, zf.open(self._member) as f:
                return _read_header(f)
        except (KeyError, ValueError, zipfile.BadZipFile, OSError, zlib.error) as e:
            raise fail(FUNC, "path", "an .npz archive of .npy arrays", f"{path!r} ({e})") from None

    def _raw_frames(self):
        shape, dtype = self._shape, self._dtype
        if self._mmap is not None:
            arr = self._mmap if len(shape) == 3 else self._mmap[None]
            for i in range(arr.shape[0]):
                yield to_unit_float(np.array(arr[i]), where=f"frame {i}")
            return
        frame_shape = shape[-2:]
        n = 1 if len(shape) == 2 else shape[0]
        nbytes = int(np.prod(frame_shape)) * dtype.itemsize
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self._member) as f:
                if self._fortran:
                    arr = np.lib.format.read_array(f, allow_pickle=False).reshape((n,) + frame_shape)
                    for i in range(n):
                        yield to_unit_float(np.ascontiguousarray(arr[i]), where=f"frame {i}")
                    return
                _read_header(f)
                for i in range(n):
                    buf = f.read(nbytes)
                    if len(buf) != nbytes:
                        raise fail(FUNC, "path", f"{n} frames in {self._member}",
                                   f"the data ends at frame {i} (truncated archive)")
                    fr = np.frombuffer(buf, dtype=dtype).reshape(frame_shape)
                    yield to_unit_float(fr, where=f"frame {i}")
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise fail(FUNC, "path", "a readable .npz archive", f"{self.path!r} ({e})") from None
