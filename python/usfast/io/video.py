"""Video files and image folders (through OpenCV), and an atomic video writer.

Reading
- Video (``.mp4 .avi .mov .mkv .m4v .mpg .mpeg .wmv .webm .ogv``): decoded frame by frame with
  ``cv2.VideoCapture``; colour frames become grey luma. The frame rate comes from the container,
  or from the ``fps`` argument, which wins when given. ``n_frames`` is the count the container
  reports (``None`` when it reports none); ``frames()`` yields what actually decodes.
- Image folders: every ``.png .jpg .jpeg .tif .tiff .bmp`` file directly in the folder, sorted by
  name with numbers compared as numbers (``f2.png`` before ``f10.png``); each image is read when
  its turn comes. 8-bit images are scaled by 1/255, 16-bit by 1/65535, float images are clipped
  to [0, 1]. All images must have the first image's size. A single image file reads as a source
  of one frame. Times come from ``fps`` only.
Neither carries a pixel size: ``spacing_mm`` is required (``--spacing-mm`` on the command line).

Writing
:func:`open_video_writer` writes ``.mp4`` (mp4v) and falls back to ``.avi`` (MJPG) where this
OpenCV cannot write mp4; the file is written under a temporary name and renamed on
:meth:`VideoWriter.close`, so a failed run leaves no broken video behind.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .._errors import fail
from ..geometry import ImageGeometry
from .atomic import CommitOnSuccess, _check_parent, _remove, temp_name_for
from .source import (FUNC, Source, check_fps, check_spacing, luma, natural_key, need_spacing,
                     sha256_file, sha256_of_files, timestamps_from_fps, to_unit_float,
                     value_scale)

__all__ = ["VideoSource", "ImageFolderSource", "VideoWriter", "open_video_writer",
           "VIDEO_EXTENSIONS", "IMAGE_EXTENSIONS"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm",
                    ".ogv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is a core dependency
        raise fail(FUNC, "path", "OpenCV to read videos and images (pip install opencv-python-headless)",
                   "cv2 not installed") from None
    return cv2


def _grey(img, where):
    """An OpenCV image (grey, BGR or BGRA; any depth) -> float32 grey in [0, 1]."""
    img = np.asarray(img)
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            unit = to_unit_float(img[..., :3], where=where)
            return luma(unit[..., ::-1])  # BGR -> RGB order for luma
        else:
            raise fail(FUNC, "path", "grey, BGR or BGRA images", f"{img.shape[2]} channels in {where}")
    elif img.ndim != 2:
        raise fail(FUNC, "path", "2-D images", f"shape {img.shape} in {where}")
    return to_unit_float(img, where=where)


class VideoSource(Source):
    """Frames of a video file, decoded one at a time with OpenCV."""

    kind = "video"

    def __init__(self, path, *, spacing_mm=None, fps=None):
        spacing = check_spacing(spacing_mm)
        fps_arg = check_fps(fps)
        path = os.fspath(path)
        if spacing is None:
            raise need_spacing("video", path)
        cv2 = _cv2()
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise fail(FUNC, "path", "a video OpenCV can decode",
                           f"{path!r}, which OpenCV cannot open (empty, truncated or an unknown codec)")
            ok, first = cap.read()
            if not ok or first is None:
                raise fail(FUNC, "path", "a video with at least one frame", f"{path!r} holds no frames")
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        finally:
            cap.release()
        frame = _grey(first, "frame 0")
        file_fps = float(file_fps) if file_fps and math.isfinite(file_fps) and file_fps > 0 else None
        n = int(count) if count and math.isfinite(count) and count > 0 else None
        md = {"sha256": sha256_file(path), "spacing_source": "spacing_mm argument",
              "codec": "".join(chr((fourcc >> (8 * k)) & 0xFF) for k in range(4)).strip("\0 ") or None,
              "file_fps": file_fps, "n_frames_source": "container (may be an estimate)",
              "value_scale": value_scale(np.asarray(first).dtype)}
        if fps_arg is not None:
            use_fps, md["time_source"] = fps_arg, "fps argument"
        elif file_fps is not None:
            use_fps, md["time_source"] = file_fps, "file (frame rate)"
        else:
            use_fps, md["time_source"] = None, None
        geom = ImageGeometry(spacing, (0.0, 0.0), frame.shape)
        super().__init__(path=path, geometry=geom, n_frames=n, fps=use_fps, timestamps=None,
                         metadata=md)

    def _raw_frames(self):
        cv2 = _cv2()
        cap = cv2.VideoCapture(self.path)
        try:
            if not cap.isOpened():
                raise fail(FUNC, "path", "a video OpenCV can decode", f"{self.path!r} cannot be opened")
            i = 0
            while True:
                ok, img = cap.read()
                if not ok or img is None:
                    break
                yield _grey(img, f"frame {i}")
                i += 1
        finally:
            cap.release()


class ImageFolderSource(Source):
    """Images of a folder sorted by name (or one image file), read one at a time."""

    kind = "image_folder"

    def __init__(self, path, *, spacing_mm=None, fps=None):
        spacing = check_spacing(spacing_mm)
        fps = check_fps(fps)
        path = os.fspath(path)
        p = Path(path)
        if p.is_dir():
            files = sorted((q for q in p.iterdir()
                            if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS
                            and not q.name.startswith(".")),
                           key=lambda q: natural_key(q.name))
            if not files:
                raise fail(FUNC, "path", f"a folder holding images ({' '.join(IMAGE_EXTENSIONS)})",
                           f"{path!r} holds none")
        else:
            self.kind = "image"
            files = [p]
        if spacing is None:
            raise need_spacing("image", path)
        self.files = [str(f) for f in files]
        first = self._read(self.files[0])
        frame = _grey(first, self.files[0])
        n = len(self.files)
        md = {"sha256": sha256_of_files(self.files) if p.is_dir() else sha256_file(self.files[0]),
              "spacing_source": "spacing_mm argument",
              "files": [Path(f).name for f in self.files[:3]] + (["..."] if n > 3 else []),
              "value_scale": value_scale(first.dtype),
              "time_source": "fps argument" if fps else None}
        geom = ImageGeometry(spacing, (0.0, 0.0), frame.shape)
        super().__init__(path=path, geometry=geom, n_frames=n, fps=fps,
                         timestamps=timestamps_from_fps(n, fps), metadata=md)

    @staticmethod
    def _read(f):
        cv2 = _cv2()
        try:
            data = np.fromfile(f, dtype=np.uint8)
        except OSError as e:
            raise fail(FUNC, "path", "readable image files", f"{f!r} ({e.strerror or e})") from None
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if img is None:
            raise fail(FUNC, "path", "image files OpenCV can decode",
                       f"{f!r} is empty, truncated or not an image")
        return img

    def _raw_frames(self):
        for f in self.files:
            yield _grey(self._read(f), f)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

def _to_bgr8(frame, shape, func):
    a = np.asarray(frame)
    if a.shape[:2] != tuple(shape) or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise fail(func, "frame", f"a grey (rows, cols) = {tuple(shape)} or BGR (rows, cols, 3) image",
                   f"shape {a.shape}")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype.kind in "fb":
        f = a.astype(np.float32)
        if not np.isfinite(f).all():
            raise fail(func, "frame", "finite grey levels in [0, 1]", "NaN or infinity")
        u8 = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
    else:
        raise fail(func, "frame", "uint8 or float32 [0, 1] pixels", f"dtype {a.dtype}")
    if u8.ndim == 2:
        u8 = np.repeat(u8[:, :, None], 3, axis=2)
    return np.ascontiguousarray(u8)


class VideoWriter(CommitOnSuccess):
    """An open video being written under a temporary name. See :func:`open_video_writer`.

    path: the file that :meth:`close` creates (its extension may differ from the one asked for
    when mp4 is not available). fourcc: the codec used (``"mp4v"`` or ``"MJPG"``).
    """

    def __init__(self, writer, tmp_path: Path, path: Path, fourcc: str, fps: float, shape):
        self._writer = writer
        self._tmp = tmp_path
        self.path = str(path)
        self.fourcc = fourcc
        self.fps = fps
        self.shape = tuple(shape)
        self.frames_written = 0

    def write(self, frame) -> None:
        """Append one frame: grey ``(rows, cols)`` float in [0, 1] or uint8, or BGR uint8."""
        if self._writer is None:
            raise fail("VideoWriter.write", "self", "an open writer", "a closed one")
        self._writer.write(_to_bgr8(frame, self.shape, "VideoWriter.write"))
        self.frames_written += 1

    def close(self) -> str:
        """Finish the file and rename it into place; returns the path written."""
        if self._writer is None:
            return self.path
        self._writer.release()
        self._writer = None
        try:
            if self.frames_written == 0:
                raise fail("VideoWriter.close", "frames", "at least one frame written", 0)
            if not self._tmp.exists() or self._tmp.stat().st_size == 0:
                raise fail("VideoWriter.close", "path",
                           f"OpenCV to write {self.fourcc} video", f"an empty file for {self.path!r}")
            os.replace(self._tmp, self.path)
        except BaseException:
            _remove(self._tmp)
            raise
        return self.path

    def abort(self) -> None:
        """Stop and delete the temporary file; nothing is written at ``path``."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        _remove(self._tmp)



def open_video_writer(path, fps, shape, *, fallback: bool = True) -> VideoWriter:
    """Open a video for writing, atomically.

    path: ``.mp4`` (codec mp4v) or ``.avi`` (codec MJPG). When this OpenCV cannot write mp4 and
        ``fallback`` is true, the video is written as ``.avi`` (MJPG) beside it instead: the
        returned writer's ``path`` says which file was written.
    fps: frames per second (positive).
    shape: ``(rows, cols)`` of the frames (array order, as everywhere in usfast).

    Frames go in with :meth:`VideoWriter.write`; :meth:`VideoWriter.close` (or leaving a ``with``
    block) renames the finished file into place. An exception inside the ``with`` block deletes
    the temporary file.
    """
    func = "open_video_writer"
    final = _check_parent(func, path)
    fps = check_fps(fps, func)
    if fps is None:
        raise fail(func, "fps", "a positive frame rate", None)
    try:
        shp = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise fail(func, "shape", "(rows, cols) of two positive integers", repr(shape)) from None
    if len(shp) != 2 or min(shp) < 1:
        raise fail(func, "shape", "(rows, cols) of two positive integers", repr(shape))
    ext = final.suffix.lower()
    if ext in (".mp4", ".m4v", ".mov"):
        tries = [(final, "mp4v")]
        if fallback:
            tries.append((final.with_suffix(".avi"), "MJPG"))
    elif ext == ".avi":
        tries = [(final, "MJPG")]
    else:
        raise fail(func, "path", "a .mp4 or .avi file name", repr(str(path)))
    cv2 = _cv2()
    for target, code in tries:
        tmp = temp_name_for(target)
        w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*code), fps, (shp[1], shp[0]), True)
        if w.isOpened():
            return VideoWriter(w, tmp, target, code, fps, shp)
        w.release()
        _remove(tmp)
    raise fail(func, "path", "a container and codec this OpenCV can write (mp4v .mp4, MJPG .avi)",
               f"none works for {str(path)!r}")
