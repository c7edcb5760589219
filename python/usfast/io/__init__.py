"""File formats for ``usfast process``: one reader interface, writers, atomic output.

Reading: :func:`open_input` picks a reader by the path and returns a :class:`Source` whose
``frames()`` yields ``(index, t_seconds, frame)`` one frame at a time, ``frame`` a 2-D float32
grey image in [0, 1] of shape ``(rows=depth, cols=lateral)``. Supported inputs:

==========================  =================================================================
DICOM ultrasound            ``.dcm``/``.dicom``/``.ima`` or any file with the DICM preamble;
                            needs pydicom (extra ``dicom``); see :mod:`usfast.io.dicom`
PLUS sequences              ``.mha``/``.mhd``, ``.seq.nrrd``/``.nrrd``/``.nhdr``; see
                            :mod:`usfast.io.plus`
video                       ``.mp4 .avi .mov .mkv .m4v .mpg .mpeg .wmv .webm .ogv`` (OpenCV)
image folder / one image    a folder of ``.png .jpg .jpeg .tif .tiff .bmp``, or one such file
NumPy                       ``.npy`` (2-D or 3-D), ``.npz`` (``frames`` + optional
                            ``spacing_mm``, ``origin_mm``, ``timestamps``, ``fps``)
==========================  =================================================================

Writing: :class:`PlusSequenceWriter` / :func:`write_plus_sequence` (PLUS ``.seq.nrrd`` and
``.mha``, read back exactly by :func:`open_input`), :func:`open_video_writer` (mp4, else avi),
:func:`atomic_write` / :func:`atomic_path` / :class:`AtomicDirectory` (nothing half-written is
ever left at the target), :func:`sha256_file`.
"""
from __future__ import annotations

import os
from pathlib import Path

from .._errors import fail
from .atomic import AtomicDirectory, atomic_path, atomic_write
from .source import Source, check_fps, check_spacing, luma, sha256_file, to_unit_float

__all__ = ["open_input", "Source", "sha256_file", "atomic_write", "atomic_path",
           "AtomicDirectory", "open_video_writer", "VideoWriter", "PlusSequenceWriter",
           "write_plus_sequence", "write_plus_seq_nrrd", "read_plus_header", "SUPPORTED",
           "to_unit_float", "luma"]

SUPPORTED = ("DICOM (.dcm), PLUS sequences (.mha, .seq.nrrd), video (.mp4, .avi, ...), "
             "image folders (.png, .jpg, .tif), NumPy (.npy, .npz)")

_DICOM_EXT = (".dcm", ".dicom", ".ima")
_MHA_EXT = (".mha", ".mhd")
_NRRD_EXT = (".nrrd", ".nhdr")


def _sniff(p: Path):
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError as e:
        raise fail("open_input", "path", "a readable file", f"{str(p)!r} ({e.strerror or e})") from None
    if len(head) == 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head.startswith((b"ObjectType", b"NDims")):
        return "mha"
    return None


def open_input(path, *, spacing_mm=None, fps=None) -> Source:
    """Open an input file or folder for streaming; the reader is chosen by extension/content.

    path: a file or a folder of images.
    spacing_mm: ``(dz, dx)`` millimetres per pixel (rows, cols), or one number for both.
        Required for video, images and ``.npy``, which carry none; for the other formats it
        replaces the file's value (``metadata['spacing_source']`` says which was used).
    fps: frame rate; where given it sets the frame times ``index / fps`` instead of the file's.

    Raises :class:`usfast.InputError` for a missing, empty, unreadable, truncated or unsupported
    input, with a message naming the argument and the problem.
    """
    try:
        p = Path(os.fspath(path))
    except TypeError:
        raise fail("open_input", "path", "a file or folder path (str or os.PathLike)",
                   type(path).__name__) from None
    check_spacing(spacing_mm)
    check_fps(fps)
    if not p.exists():
        raise fail("open_input", "path", "an existing file or folder",
                   f"{str(p)!r} (no such file or folder)")
    kw = {"spacing_mm": spacing_mm, "fps": fps}
    if p.is_dir():
        from .video import ImageFolderSource
        return ImageFolderSource(p, **kw)
    if not os.access(p, os.R_OK):
        raise fail("open_input", "path", "a readable file", f"{str(p)!r} (permission denied)")
    if p.stat().st_size == 0:
        raise fail("open_input", "path", "a non-empty file", f"{str(p)!r} is empty (0 bytes)")
    name = p.name.lower()
    kind = None
    if name.endswith(".npy"):
        kind = "npy"
    elif name.endswith(".npz"):
        kind = "npz"
    elif name.endswith(_MHA_EXT):
        kind = "mha"
    elif name.endswith(_NRRD_EXT):
        kind = "nrrd"
    elif name.endswith(_DICOM_EXT):
        kind = "dicom"
    else:
        from .video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
        if name.endswith(VIDEO_EXTENSIONS):
            kind = "video"
        elif name.endswith(IMAGE_EXTENSIONS):
            kind = "image"
        else:
            kind = _sniff(p)
    if kind in ("npy", "npz"):
        from .numpy_io import NumpySource
        return NumpySource(p, **kw)
    if kind in ("mha", "nrrd"):
        from .plus import PlusSource
        return PlusSource(p, **kw)
    if kind == "dicom":
        from .dicom import DicomSource
        return DicomSource(p, **kw)
    if kind == "video":
        from .video import VideoSource
        return VideoSource(p, **kw)
    if kind == "image":
        from .video import ImageFolderSource
        return ImageFolderSource(p, **kw)
    raise fail("open_input", "path", f"a supported input: {SUPPORTED}",
               f"{str(p)!r} (unknown extension and content)")


def __getattr__(name):
    # writers and readers load their modules (and OpenCV) only when used
    if name in ("open_video_writer", "VideoWriter", "VideoSource", "ImageFolderSource"):
        from . import video
        return getattr(video, name)
    if name in ("PlusSequenceWriter", "write_plus_sequence", "write_plus_seq_nrrd",
                "read_plus_header", "PlusSource"):
        from . import plus
        return getattr(plus, name)
    if name == "DicomSource":
        from . import dicom
        return dicom.DicomSource
    if name == "NumpySource":
        from . import numpy_io
        return numpy_io.NumpySource
    raise AttributeError(f"module 'usfast.io' has no attribute {name!r}")
