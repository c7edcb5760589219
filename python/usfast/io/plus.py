"""PLUS toolkit sequence files: MetaImage ``.mha`` / ``.mhd`` and NRRD ``.seq.nrrd`` / ``.nhdr``.

Reading (:class:`PlusSource`, through :func:`usfast.io.open_input`)
- MetaImage: ``ElementDataFile = LOCAL`` (data after the header) or a separate data file;
  uncompressed, or ``CompressedData = True`` (zlib, ``CompressedDataSize`` bytes).
- NRRD: ``encoding: raw`` or ``gzip``/``gz``; data after the blank line or in ``data file``.
- Element types: 8/16/32/64-bit signed and unsigned integers, float, double; one channel, or
  three/four (RGB/RGBA, turned to grey luma). Both byte orders.
- Frames: ``DimSize``/``sizes`` of ``cols rows frames`` (a 2-D image is one frame; a
  third spatial size of 1 is dropped; 3-D volume sequences are refused).
- Raw data are read by offset through ``np.memmap``, compressed data through one streaming
  decompressor: one frame in memory at a time either way.
- ``UltrasoundImageOrientation`` (MetaImage) / ``ultrasound image orientation`` (NRRD): two
  letters, one per image axis in storage order (columns, then rows). ``M``/``U``: that axis
  points towards the Marked/Unmarked side of the probe; ``F``/``N``: it points Far from / Near to
  the probe (depth). Frames are normalised to ``MF``: columns run towards the marked side, rows
  run with increasing depth (downward). ``UF`` flips columns, ``MN`` flips rows, ``UN`` both;
  ``FM``-style codes (depth along the columns, as RF data are stored) are transposed first.
  A missing or ``??`` orientation is taken as ``MF``. ``metadata['orientation']`` keeps the
  file's code and ``metadata['orientation_applied']`` what was done.
- Spacing: ``ElementSpacing`` (MetaImage) or the lengths of ``space directions`` / ``spacings``
  (NRRD) of the two image axes, taken as millimetres (PLUS often stores 1: pixel units, the
  calibration living in an ``ImageToProbe`` transform). ``spacing_mm`` given to ``open_input``
  wins; a file that states no spacing needs it.
- Per-frame fields ``Seq_FrameNNNN_<Name>`` (any number of digits): ``Timestamp`` (seconds, as
  stored, usually not starting at 0) -> ``timestamps``; ``<Name>Transform`` (16 numbers,
  row-major 4x4) with ``<Name>TransformStatus`` (OK / INVALID / ...) -> ``transforms[Name]`` (a
  4x4 float64 array where the status is OK or absent, else None) and
  ``transform_status[Name]``; ``ImageStatus`` (MetaImage) or ``Status`` (NRRD) ->
  ``image_status``. Every field is kept as text in ``frame_fields``. Frames whose image status is
  not OK are still yielded (PLUS stores blank pixels for them). Transforms are reported as
  stored; PLUS defines its ``Image`` frame on the MF image, which is what ``frames()`` yields.

Writing (:class:`PlusSequenceWriter`, :func:`write_plus_sequence`)
Streams frames to a temporary data file, then writes header + data under a temporary name and
renames it into place on :meth:`PlusSequenceWriter.close`: a failed run leaves no file.
The format follows the extension: ``.nrrd`` (NRRD, what PLUS 2.x writes) or ``.mha``.
Frames are written as given (MF), uint8 / uint16 / float32.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import zlib

import numpy as np

from .._errors import InputError, fail
from ..geometry import ImageGeometry
from .atomic import CommitOnSuccess, _check_parent, _remove, atomic_write, temp_name_for
from .source import FUNC, Source, check_fps, check_spacing, luma, sha256_file, to_unit_float, \
    value_scale

__all__ = ["PlusSource", "PlusSequenceWriter", "write_plus_sequence", "write_plus_seq_nrrd",
           "read_plus_header"]

_MAX_LINE = 1 << 20
_FRAME_FIELD = re.compile(r"^Seq_Frame(\d+)_(.+)$")

_MET_TYPES = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
    "MET_UINT": "u4", "MET_INT": "i4", "MET_ULONG": "u4", "MET_LONG": "i4",
    "MET_ULONG_LONG": "u8", "MET_LONG_LONG": "i8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
_MET_NAMES = {"u1": "MET_UCHAR", "u2": "MET_USHORT", "f4": "MET_FLOAT"}

_NRRD_TYPES = {}
for _names, _code in (
        (("signed char", "int8", "int8_t"), "i1"),
        (("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
        (("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
        (("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
        (("int", "signed int", "int32", "int32_t"), "i4"),
        (("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
        (("longlong", "long long", "long long int", "signed long long", "signed long long int",
          "int64", "int64_t"), "i8"),
        (("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
        (("float",), "f4"), (("double",), "f8")):
    for _n in _names:
        _NRRD_TYPES[_n] = _code
_NRRD_NAMES = {"u1": "uint8", "u2": "uint16", "f4": "float"}


def _bad(path, what, got=None):
    return fail(FUNC, "path", what, f"{got} in {str(path)!r}" if got is not None else repr(str(path)))


def _norm_key(k: str) -> str:
    return re.sub(r"[\s_]", "", k).lower()


# --------------------------------------------------------------------------------------------
# header parsing
# --------------------------------------------------------------------------------------------

def _read_mha_header(f, path):
    fields, frame_fields = {}, {}
    first = True
    while True:
        line = f.readline(_MAX_LINE)
        if not line:
            raise _bad(path, "a MetaImage header ending with ElementDataFile", "no ElementDataFile line")
        if len(line) >= _MAX_LINE:
            raise _bad(path, "a MetaImage text header", "a header line over 1 MiB (binary data?)")
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _bad(path, "a MetaImage text header", "undecodable bytes") from None
        if not text:
            continue
        if "=" not in text:
            raise _bad(path, "MetaImage header lines 'Key = Value'", repr(text[:60]))
        key, value = (s.strip() for s in text.split("=", 1))
        if first and key not in ("ObjectType", "NDims", "Comment", "ObjectSubType", "FormTypeName"):
            raise _bad(path, "a MetaImage header starting with ObjectType or NDims", repr(key))
        first = False
        m = _FRAME_FIELD.match(key)
        if m:
            frame_fields.setdefault(int(m.group(1)), {})[m.group(2)] = value
        else:
            fields[key] = value
        if key == "ElementDataFile":
            return fields, frame_fields, f.tell()


def _read_nrrd_header(f, path):
    magic = f.readline(64)
    if not magic.startswith(b"NRRD000"):
        raise _bad(path, "an NRRD file starting with 'NRRD000x'", repr(magic[:16]))
    fields, frame_fields = {}, {}
    while True:
        line = f.readline(_MAX_LINE)
        if not line:
            # header with no data: only valid with a detached data file
            return fields, frame_fields, f.tell()
        if len(line) >= _MAX_LINE:
            raise _bad(path, "an NRRD text header", "a header line over 1 MiB")
        if line in (b"\n", b"\r\n"):
            return fields, frame_fields, f.tell()
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise _bad(path, "an NRRD text header", "undecodable bytes") from None
        if text.startswith("#"):
            continue
        i = text.find(":")
        if i <= 0:
            raise _bad(path, "NRRD header lines 'field: value' or 'key:=value'", repr(text[:60]))
        key = text[:i].strip()
        if text[i + 1:i + 2] == "=":
            value = text[i + 2:].strip()
        else:
            value = text[i + 1:].strip()
        m = _FRAME_FIELD.match(key)
        if m:
            frame_fields.setdefault(int(m.group(1)), {})[m.group(2)] = value
        else:
            fields[key] = value


def read_plus_header(path):
    """Parse a PLUS ``.mha``/``.mhd``/``.nrrd``/``.nhdr`` header.

    Returns ``(format, fields, frame_fields, data_offset)``: format ``"mha"`` or ``"nrrd"``;
    fields: the global fields as text; frame_fields: ``{frame_index: {name: text}}``;
    data_offset: byte offset just after the header.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0)
        if head.startswith(b"NRRD"):
            return ("nrrd",) + _read_nrrd_header(f, path)
        return ("mha",) + _read_mha_header(f, path)


def _ints(path, name, text, n=None):
    try:
        vals = [int(v) for v in text.split()]
    except ValueError:
        raise _bad(path, f"integers in {name}", repr(text)) from None
    if n is not None and len(vals) != n:
        raise _bad(path, f"{n} integers in {name}", repr(text))
    return vals


def _floats(path, name, text):
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise _bad(path, f"numbers in {name}", repr(text)) from None


def _vectors(text):
    """NRRD '(1,0,0) (0,1,0) none' -> [[1,0,0],[0,1,0],None]."""
    out = []
    for tok in re.findall(r"\([^)]*\)|none", text):
        if tok == "none":
            out.append(None)
        else:
            out.append([float(v) for v in tok.strip("()").split(",")])
    return out


_ORIENT = re.compile(r"^([MUFN])([MUFN])[MUFNAD]?$")


def _orientation(code):
    """File orientation code -> (transpose, flip_rows, flip_cols, text)."""
    if code is None or code.strip() in ("", "??", "???"):
        return False, False, False, "none (taken as MF)"
    c = code.strip().upper()
    m = _ORIENT.match(c)
    letters = set(m.groups()) if m else set()
    if not m or len(letters & {"M", "U"}) != 1 or len(letters & {"F", "N"}) != 1:
        raise InputError(f"{FUNC}(path): expected a PLUS ultrasound image orientation such as MF, "
                         f"UF, MN, UN (or FM for RF data); got {code!r}")
    a, b = m.group(1), m.group(2)   # a: storage x axis (columns), b: storage y axis (rows)
    transpose = a in "FN"
    lat, dep = (b, a) if transpose else (a, b)
    flip_cols = lat == "U"
    flip_rows = dep == "N"
    done = []
    if transpose:
        done.append("transposed")
    if flip_rows:
        done.append("rows flipped")
    if flip_cols:
        done.append("columns flipped")
    return transpose, flip_rows, flip_cols, ", ".join(done) or "none"


def _matrix(path, name, text):
    vals = _floats(path, name, text)
    if len(vals) != 16:
        raise _bad(path, f"16 numbers (a 4x4 matrix) in {name}", f"{len(vals)}")
    return np.array(vals, dtype=np.float64).reshape(4, 4)


# --------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------

class PlusSource(Source):
    """Frames and per-frame fields of a PLUS sequence file (see the module text).

    Extra attributes: ``transforms`` ``{name: [4x4 float64 array or None, ...]}`` (name without
    the ``Transform`` suffix, e.g. ``"ProbeToTracker"``), ``transform_status``
    ``{name: [str, ...]}`` (``"MISSING"`` where a frame has no such field), ``image_status``
    (list of str), ``frame_fields`` (list of ``{name: text}``), ``orientation`` (the file's code).
    """

    kind = "plus"

    def __init__(self, path, *, spacing_mm=None, fps=None):
        spacing_arg = check_spacing(spacing_mm)
        fps_arg = check_fps(fps)
        path = os.fspath(path)
        try:
            fmt, fields, ffields, offset = read_plus_header(path)
        except OSError as e:
            raise _bad(path, "a readable file", e.strerror or str(e)) from None
        self.format = fmt
        self.kind = "plus_nrrd" if fmt == "nrrd" else "plus_mha"
        lk = {_norm_key(k): v for k, v in fields.items()}
        if fmt == "mha":
            info = self._layout_mha(path, fields, offset)
        else:
            info = self._layout_nrrd(path, fields, lk, offset)
        (dtype, channels, width, height, n, file_spacing, file_origin, data_path, data_offset,
         compression, data_size) = info
        self._dtype = dtype
        self._channels = channels
        self._wh = (height, width)
        self._data_path = data_path
        self._data_offset = data_offset
        self._compression = compression
        self._data_size = data_size
        frame_bytes = width * height * channels * dtype.itemsize
        self._frame_bytes = frame_bytes
        if compression is None:
            avail = os.path.getsize(data_path) - data_offset
            if avail < frame_bytes * n:
                raise _bad(path, f"{frame_bytes * n} bytes of pixel data ({n} frames of "
                                 f"{height}x{width}x{channels} {dtype.name})",
                           f"{max(avail, 0)} bytes (truncated file)")
        elif data_size is not None and os.path.getsize(data_path) - data_offset < data_size:
            raise _bad(path, f"{data_size} bytes of compressed data (CompressedDataSize)",
                       f"{os.path.getsize(data_path) - data_offset} bytes (truncated file)")

        orient_code = lk.get("ultrasoundimageorientation")
        self.orientation = orient_code
        transpose, flip_rows, flip_cols, applied = _orientation(orient_code)
        self._transpose, self._flip_rows, self._flip_cols = transpose, flip_rows, flip_cols
        rows, cols = (width, height) if transpose else (height, width)
        s_x, s_y = file_spacing if file_spacing else (None, None)

        md = {"sha256": sha256_file(path), "format": fmt,
              "orientation": orient_code, "orientation_applied": applied,
              "image_type": lk.get("ultrasoundimagetype"), "dtype": dtype.name,
              "channels": channels, "value_scale": value_scale(dtype),
              "compression": compression}
        if data_path != path:
            md["data_file"] = data_path
        if spacing_arg is not None:
            spacing = spacing_arg
            md["spacing_source"] = "spacing_mm argument"
        elif file_spacing:
            spacing = (s_x, s_y) if transpose else (s_y, s_x)
            md["spacing_source"] = "file (ElementSpacing)" if fmt == "mha" else "file (space directions)"
        else:
            raise fail(FUNC, "spacing_mm",
                       "the pixel spacing in mm as (dz, dx) (command line: --spacing-mm DZ DX), "
                       "because the file states none (no ElementSpacing / space directions)",
                       f"none for {path!r}")
        if file_spacing:
            md["file_spacing"] = [s_x, s_y]
        origin = (0.0, 0.0)
        if file_origin is not None:
            md["file_origin"] = list(file_origin)
            if not (transpose or flip_rows or flip_cols) and spacing_arg is None:
                origin = (file_origin[1], file_origin[0])

        # per-frame fields
        self.frame_fields = [dict(ffields.get(i, {})) for i in range(n)]
        extra = sorted(k for k in ffields if k >= n or k < 0)
        if extra:
            md["ignored_frame_fields"] = f"fields for {len(extra)} frame numbers beyond the {n} frames"
        stamps = []
        for i, ff in enumerate(self.frame_fields):
            t = ff.get("Timestamp")
            if t is None:
                stamps = None
                break
            try:
                stamps.append(float(t))
            except ValueError:
                raise _bad(path, f"a number in Seq_Frame{i:04d}_Timestamp", repr(t)) from None
        self.image_status = [ff.get("ImageStatus", ff.get("Status", "OK")) for ff in self.frame_fields]
        names = sorted({k[:-len("Transform")] for ff in self.frame_fields for k in ff
                        if k.endswith("Transform") and len(k) > len("Transform")})
        self.transforms, self.transform_status = {}, {}
        for name in names:
            mats, stats = [], []
            for i, ff in enumerate(self.frame_fields):
                text = ff.get(name + "Transform")
                status = ff.get(name + "TransformStatus")
                if text is None:
                    mats.append(None)
                    stats.append(status or "MISSING")
                    continue
                status = status or "OK"
                stats.append(status)
                mats.append(_matrix(path, f"Seq_Frame{i:04d}_{name}Transform", text)
                            if status.upper() == "OK" else None)
            self.transforms[name] = mats
            self.transform_status[name] = stats
        md["transforms"] = names
        md["invalid_images"] = sum(1 for s in self.image_status if s.upper() != "OK")

        timestamps, use_fps = None, None
        if fps_arg is not None:
            use_fps = fps_arg
            timestamps = np.arange(n, dtype=np.float64) / fps_arg
            md["time_source"] = "fps argument"
            if stamps is not None:
                md["file_timestamps"] = "replaced by the fps argument"
        elif stamps is not None:
            timestamps = np.asarray(stamps, dtype=np.float64)
            md["time_source"] = "file (Seq_FrameNNNN_Timestamp)"
            d = np.diff(timestamps)
            if d.size and np.all(d > 0):
                use_fps = float(1.0 / np.median(d))
        else:
            md["time_source"] = None
        geom = ImageGeometry(spacing, origin, (rows, cols))
        super().__init__(path=path, geometry=geom, n_frames=n, fps=use_fps, timestamps=timestamps,
                         metadata=md)

    # -- layouts ---------------------------------------------------------------------------
    @staticmethod
    def _layout_mha(path, fields, offset):
        def get(k, default=None):
            return fields.get(k, default)
        ndims = _ints(path, "NDims", get("NDims", "0"), 1)[0]
        if ndims not in (2, 3, 4):
            raise _bad(path, "NDims 2 (one frame), 3 (a 2-D sequence) or 4", ndims)
        dims = _ints(path, "DimSize", get("DimSize", ""), ndims)
        width, height = dims[0], dims[1]
        if ndims == 2:
            n = 1
        elif ndims == 3:
            n = dims[2]
        else:
            if dims[2] != 1:
                raise _bad(path, "2-D frames (a third image size of 1)",
                           f"3-D volumes of depth {dims[2]}")
            n = dims[3]
        etype = get("ElementType")
        if etype not in _MET_TYPES:
            raise _bad(path, f"an ElementType among {', '.join(_MET_TYPES)}", repr(etype))
        big = get("BinaryDataByteOrderMSB", get("ElementByteOrderMSB", "False")).lower() == "true"
        dtype = np.dtype(("<", ">")[big] + _MET_TYPES[etype])
        channels = _ints(path, "ElementNumberOfChannels", get("ElementNumberOfChannels", "1"), 1)[0]
        sp = get("ElementSpacing", get("ElementSize"))
        spacing = None
        if sp is not None:
            v = _floats(path, "ElementSpacing", sp)
            if len(v) >= 2 and all(x > 0 for x in v[:2]):
                spacing = (abs(v[0]), abs(v[1]))
        org = get("Offset", get("Origin", get("Position")))
        origin = None
        if org is not None:
            v = _floats(path, "Offset", org)
            if len(v) >= 2:
                origin = (v[0], v[1])
        compressed = get("CompressedData", "False").lower() == "true"
        data_size = None
        if compressed and get("CompressedDataSize") is not None:
            data_size = _ints(path, "CompressedDataSize", get("CompressedDataSize"), 1)[0]
        data_file = get("ElementDataFile", "LOCAL")
        if data_file.upper() == "LOCAL":
            data_path, data_offset = path, offset
        else:
            if data_file.upper().startswith("LIST") or "%" in data_file:
                raise _bad(path, "pixel data in one file (LOCAL or a file name)", repr(data_file))
            data_path = os.path.join(os.path.dirname(path), data_file)
            data_offset = 0
            if not os.path.isfile(data_path):
                raise _bad(path, "the ElementDataFile next to the header", f"no file {data_file!r}")
        _check_sizes(path, width, height, n, channels)
        return (dtype, channels, width, height, n, spacing, origin, data_path, data_offset,
                "zlib" if compressed else None, data_size)

    @staticmethod
    def _layout_nrrd(path, fields, lk, offset):
        lower = {k.lower(): v for k, v in fields.items()}

        def get(k, default=None):
            return lower.get(k, default)
        if get("type") is None or get("type").lower() not in _NRRD_TYPES:
            raise _bad(path, "an NRRD type such as uint8, uint16 or float", repr(get("type")))
        ndim = _ints(path, "dimension", get("dimension", "0"), 1)[0]
        sizes = _ints(path, "sizes", get("sizes", ""), ndim)
        kinds = get("kinds", "").split() or None
        if kinds is not None and len(kinds) != ndim:
            kinds = None
        chan_axis = None
        if kinds is not None:
            for i, k in enumerate(kinds):
                if k.lower() in ("vector", "rgb-color", "rgba-color", "3-color", "4-color",
                                 "covariant-vector", "normal"):
                    chan_axis = i
        elif ndim == 4:
            chan_axis = 0
        if chan_axis not in (None, 0):
            raise _bad(path, "NRRD colour components on the fastest axis", f"kinds {get('kinds')!r}")
        channels = sizes[0] if chan_axis == 0 else 1
        axes = list(range(1 if chan_axis == 0 else 0, ndim))
        list_axis = None
        if kinds is not None:
            la = [i for i in axes if kinds[i].lower() in ("list", "time", "sequence")]
            if len(la) > 1:
                raise _bad(path, "one list (frame) axis", f"kinds {get('kinds')!r}")
            list_axis = la[0] if la else None
        spatial = [i for i in axes if i != list_axis]
        if list_axis is None and kinds is None and len(spatial) == 3:
            list_axis = spatial.pop()          # 'cols rows frames' without kinds
        if len(spatial) == 3:
            if sizes[spatial[2]] != 1:
                raise _bad(path, "2-D frames (a third image size of 1)",
                           f"3-D volumes of depth {sizes[spatial[2]]}")
            spatial = spatial[:2]
        if len(spatial) != 2 or (list_axis is not None and list_axis != ndim - 1):
            raise _bad(path, "NRRD sizes of 'cols rows [frames]'",
                       f"sizes {get('sizes')!r} kinds {get('kinds')!r}")
        width, height = sizes[spatial[0]], sizes[spatial[1]]
        n = sizes[list_axis] if list_axis is not None else 1
        endian = get("endian", "little").lower()
        code = _NRRD_TYPES[get("type").lower()]
        dtype = np.dtype(("<" if endian != "big" else ">") + code)
        spacing = None
        if get("space directions") is not None:
            vecs = _vectors(get("space directions"))
            if len(vecs) == ndim:
                v0, v1 = vecs[spatial[0]], vecs[spatial[1]]
                if v0 is not None and v1 is not None:
                    spacing = (float(np.linalg.norm(v0)), float(np.linalg.norm(v1)))
        elif get("spacings") is not None:
            v = get("spacings").split()
            if len(v) == ndim:
                try:
                    spacing = (abs(float(v[spatial[0]])), abs(float(v[spatial[1]])))
                except ValueError:
                    spacing = None
        if spacing is not None and (not all(np.isfinite(spacing)) or min(spacing) <= 0):
            spacing = None
        origin = None
        if get("space origin") is not None:
            o = _vectors(get("space origin"))
            if o and o[0] is not None and len(o[0]) >= 2:
                origin = (o[0][0], o[0][1])
        enc = get("encoding", "raw").lower()
        if enc == "raw":
            compression = None
        elif enc in ("gzip", "gz"):
            compression = "gzip"
        else:
            raise _bad(path, "NRRD encoding raw or gzip", repr(enc))
        data_file = get("data file", get("datafile"))
        if data_file is not None:
            if data_file.upper().startswith("LIST") or len(data_file.split()) > 1:
                raise _bad(path, "pixel data in one file", repr(data_file))
            data_path = os.path.join(os.path.dirname(path), data_file)
            if not os.path.isfile(data_path):
                raise _bad(path, "the 'data file' next to the header", f"no file {data_file!r}")
            data_offset = 0
        else:
            data_path, data_offset = path, offset
        skip = _ints(path, "byte skip", get("byte skip", "0"), 1)[0]
        line_skip = _ints(path, "line skip", get("line skip", "0"), 1)[0]
        if line_skip:
            with open(data_path, "rb") as f:
                f.seek(data_offset)
                for _ in range(line_skip):
                    f.readline()
                data_offset = f.tell()
        if skip == -1:
            if compression:
                raise _bad(path, "byte skip -1 only with raw encoding", "gzip")
            nbytes = width * height * channels * n * dtype.itemsize
            data_offset = os.path.getsize(data_path) - nbytes
        elif skip > 0:
            data_offset += skip
        _check_sizes(path, width, height, n, channels)
        return (dtype, channels, width, height, n, spacing, origin, data_path, data_offset,
                compression, None)

    # -- frames ----------------------------------------------------------------------------
    def _orient(self, raw):
        a = raw
        if self._channels == 1:
            a = a[..., 0] if a.ndim == 3 else a
        if self._transpose:
            a = a.T if a.ndim == 2 else a.transpose(1, 0, 2)
        if self._flip_rows:
            a = a[::-1]
        if self._flip_cols:
            a = a[:, ::-1]
        return a

    def _to_grey(self, a, i):
        if self._channels == 1:
            return to_unit_float(a, where=f"frame {i}")
        return luma(to_unit_float(a[..., :3], where=f"frame {i}"))

    def _raw_frames(self):
        h, w = self._wh
        c = self._channels
        n = self.n_frames
        shape = (h, w, c)
        if self._compression is None:
            mm = np.memmap(self._data_path, dtype=self._dtype, mode="r", offset=self._data_offset,
                           shape=(n,) + shape)
            try:
                for i in range(n):
                    yield self._to_grey(self._orient(np.array(mm[i])), i)
            finally:
                del mm
            return
        for i, buf in enumerate(_inflate_frames(self.path, self._data_path, self._data_offset,
                                                self._frame_bytes, n, self._data_size)):
            yield self._to_grey(self._orient(np.frombuffer(buf, self._dtype).reshape(shape)), i)


def _check_sizes(path, width, height, n, channels):
    if width < 1 or height < 1:
        raise _bad(path, "frames of at least 1x1 pixels", f"{width}x{height}")
    if n < 1:
        raise _bad(path, "at least one frame", n)
    if channels not in (1, 3, 4):
        raise _bad(path, "1 (grey), 3 (RGB) or 4 (RGBA) components per pixel", channels)


def _inflate_frames(path, data_path, offset, frame_bytes, n, limit=None, chunk=1 << 16):
    """Yield ``n`` frames of ``frame_bytes`` from a zlib or gzip stream starting at ``offset``.

    Output is bounded per call (``max_length``), so a highly compressible stream never inflates
    more than about one frame at a time. Concatenated gzip members are followed.
    """
    with open(data_path, "rb") as f:
        f.seek(offset)
        left = limit
        d = zlib.decompressobj(47)          # 32 + 15: zlib or gzip header, detected
        pending = b""
        buf = bytearray()
        file_done = False
        for i in range(n):
            while len(buf) < frame_bytes:
                if d.eof:
                    pending = d.unused_data + pending
                    if not pending and file_done:
                        break
                    d = zlib.decompressobj(47)
                if not pending:
                    want = chunk if left is None else min(chunk, left)
                    pending = f.read(want) if want > 0 else b""
                    if left is not None:
                        left -= len(pending)
                    if not pending:
                        file_done = True
                        break
                try:
                    out = d.decompress(pending, frame_bytes - len(buf))
                except zlib.error as e:
                    raise _bad(path, "valid compressed pixel data", f"zlib error: {e}") from None
                pending = d.unconsumed_tail
                buf += out
            if len(buf) < frame_bytes:
                raise _bad(path, f"{n} frames of compressed pixel data",
                           f"the data ends in frame {i} (truncated or corrupt stream)")
            out = bytes(buf[:frame_bytes])
            del buf[:frame_bytes]
            yield out


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------

def _fmt(v: float) -> str:
    v = float(v)
    return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


class PlusSequenceWriter(CommitOnSuccess):
    """Write a PLUS sequence file frame by frame, atomically.

    ``PlusSequenceWriter(path, geometry, *, compress=False, dtype=None)``; then
    ``append(frame, t=None, transforms=None, statuses=None, fields=None)`` per frame and
    :meth:`close` (or leave a ``with`` block). An exception inside the ``with`` block (or
    :meth:`abort`) leaves no file.

    path: ``.nrrd`` / ``.seq.nrrd`` (NRRD) or ``.mha`` (MetaImage).
    geometry: :class:`usfast.ImageGeometry`; spacing and origin go into the header; its shape,
        when set, must match the frames. None: 1 mm spacing, shape from the first frame.
    compress: gzip (NRRD) / zlib (MetaImage) the pixel data.
    dtype: ``"uint8"``, ``"uint16"`` or ``"float32"``; None: uint8 for uint8 frames, uint16 for
        uint16 frames, float32 otherwise. Float frames written as integers are scaled from [0, 1]
        and rounded; integer frames written as float32 are scaled to [0, 1], so that the reader,
        which yields [0, 1], gets back what was given.
    image_type: the ``UltrasoundImageType`` to record (``"BRIGHTNESS"`` for B-mode).
    """

    def __init__(self, path, geometry: ImageGeometry | None = None, *, compress: bool = False,
                 dtype=None, image_type: str = "BRIGHTNESS"):
        func = "PlusSequenceWriter"
        self.path = _check_parent(func, path)
        name = self.path.name.lower()
        if name.endswith((".nrrd",)):
            self.format = "nrrd"
        elif name.endswith(".mha"):
            self.format = "mha"
        else:
            raise fail(func, "path", "a .seq.nrrd, .nrrd or .mha file name", repr(str(path)))
        if geometry is not None and not isinstance(geometry, ImageGeometry):
            raise fail(func, "geometry", "an ImageGeometry or None", type(geometry).__name__)
        self.geometry = geometry or ImageGeometry((1.0, 1.0))
        self.shape = self.geometry.shape
        if dtype is not None:
            dt = np.dtype(dtype)
            if dt.str[1:] not in _NRRD_NAMES:
                raise fail(func, "dtype", "uint8, uint16 or float32", dt.name)
            dtype = dt.newbyteorder("<")
        self.dtype = dtype
        self.compress = bool(compress)
        if not re.fullmatch(r"[A-Za-z0-9_]+", image_type or ""):
            raise fail(func, "image_type", "a PLUS image type word such as BRIGHTNESS", repr(image_type))
        self.image_type = image_type
        self.n_frames = 0
        # per-frame header fields spool to a temporary file: memory stays flat however long
        self._fields = tempfile.TemporaryFile(mode="w+", encoding="utf-8", newline="\n")
        self._data_tmp = temp_name_for(self.path.with_name(self.path.name + ".data"))
        self._data = open(self._data_tmp, "wb")
        self._z = None
        self._nbytes = 0
        if self.compress:
            self._z = zlib.compressobj(6, zlib.DEFLATED, 31 if self.format == "nrrd" else 15)
        self._closed = False

    # -- frames ----------------------------------------------------------------------------
    def _prepare(self, frame):
        func = "PlusSequenceWriter.append"
        a = np.asarray(frame)
        if a.ndim != 2:
            raise fail(func, "frame", "a 2-D grey frame (rows, cols)", f"shape {a.shape}")
        if self.shape is None:
            self.shape = tuple(a.shape)
        elif tuple(a.shape) != tuple(self.shape):
            raise fail(func, "frame", f"shape {tuple(self.shape)} (rows, cols)", f"{a.shape}")
        if a.dtype.kind not in "biuf":
            raise fail(func, "frame", "integer, boolean or float pixels", f"dtype {a.dtype}")
        if self.dtype is None:
            self.dtype = np.dtype("<u1") if a.dtype == np.uint8 else (
                np.dtype("<u2") if a.dtype == np.uint16 else np.dtype("<f4"))
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise fail(func, "frame", "finite pixel values", "NaN or infinity")
        target = self.dtype
        if target.kind == "f":
            out = to_unit_float(a) if a.dtype.kind in "biu" else a.astype(np.float32)
        elif a.dtype.kind == "f" or a.dtype.kind == "b":
            top = np.iinfo(target).max
            out = np.clip(np.rint(a.astype(np.float64) * top), 0, top)
        elif a.dtype.itemsize == target.itemsize and a.dtype.kind == "u":
            out = a
        else:
            out = np.rint(to_unit_float(a).astype(np.float64) * np.iinfo(target).max)
        return np.ascontiguousarray(out.astype(target, copy=False))

    def append(self, frame, t=None, transforms=None, statuses=None, fields=None) -> int:
        """Add one frame; returns its index.

        frame: 2-D grey ``(rows, cols)``: float in [0, 1], uint8 or uint16.
        t: timestamp in seconds (``Seq_FrameNNNN_Timestamp``), or None to write none.
        transforms: ``{name: 4x4 matrix or None}``; ``name`` as ``"NeedleTipToImage"`` (a
            trailing ``Transform`` is accepted). None writes an identity with status INVALID.
        statuses: ``{name: "OK" | "INVALID" | ...}`` to override the status of a transform.
        fields: other per-frame fields ``{name: text}`` written as given.
        """
        func = "PlusSequenceWriter.append"
        if self._closed:
            raise fail(func, "self", "an open writer", "a closed one")
        data = self._prepare(frame)
        i = self.n_frames
        pre = f"Seq_Frame{i:04d}_"
        lines = [(pre + "FrameNumber", str(i))]
        if t is not None:
            try:
                tv = float(t)
            except (TypeError, ValueError):
                raise fail(func, "t", "a time in seconds", repr(t)) from None
            if not np.isfinite(tv):
                raise fail(func, "t", "a finite time in seconds", tv)
            lines.append((pre + "Timestamp", repr(tv)))
        statuses = dict(statuses or {})
        for name, mat in (transforms or {}).items():
            base = _transform_name(func, name)
            st = statuses.pop(name, statuses.pop(base, None))
            if mat is None:
                m = np.eye(4)
                st = st or "INVALID"
            else:
                m = np.asarray(mat, dtype=np.float64)
                if m.shape != (4, 4) or not np.isfinite(m).all():
                    raise fail(func, "transforms", f"a finite 4x4 matrix or None for {base!r}",
                               f"shape {m.shape}" if m.shape != (4, 4) else "NaN or infinity")
                st = st or "OK"
            _check_word(func, "statuses", st)
            lines.append((pre + base + "Transform", " ".join(_fmt(v) for v in m.ravel())))
            lines.append((pre + base + "TransformStatus", st))
        if statuses:
            raise fail(func, "statuses", "statuses only for transforms given in transforms",
                       sorted(statuses))
        for k, v in (fields or {}).items():
            k, v = str(k), str(v)
            if not re.fullmatch(r"[A-Za-z0-9_]+", k) or "\n" in v or "\r" in v:
                raise fail(func, "fields", "names of letters, digits and _ and one-line values", repr(k))
            lines.append((pre + k, v))
        lines.append((pre + ("ImageStatus" if self.format == "mha" else "Status"), "OK"))
        raw = data.tobytes()
        try:
            if self._z is not None:
                chunk = self._z.compress(raw)
            else:
                chunk = raw
            self._data.write(chunk)
            self._nbytes += len(chunk)
        except BaseException:
            self.abort()
            raise
        self._fields.writelines(f"{k}\t{v}\n" for k, v in lines)
        self.n_frames += 1
        return i

    # -- finishing -------------------------------------------------------------------------
    def _header(self):
        """(lines before the per-frame fields, field format, lines after them)."""
        rows, cols = self.shape
        dz, dx = self.geometry.spacing_mm
        z0, x0 = self.geometry.origin_mm
        n = self.n_frames
        code = self.dtype.str[1:]
        out = []
        if self.format == "nrrd":
            out += ["NRRD0004",
                    "# Complete NRRD file format specification at:",
                    "# http://teem.sourceforge.net/nrrd/format.html",
                    "# PLUS sequence written by usfast",
                    f"type: {_NRRD_NAMES[code]}",
                    "dimension: 3",
                    "space dimension: 2",
                    f"sizes: {cols} {rows} {n}",
                    f"space directions: ({_fmt(dx)},0) (0,{_fmt(dz)}) none",
                    "kinds: domain domain list",
                    "endian: little",
                    f"encoding: {'gzip' if self.compress else 'raw'}",
                    f"space origin: ({_fmt(x0)},{_fmt(z0)})",
                    "ultrasound image orientation:=MF",
                    f"ultrasound image type:={self.image_type}"]
            return out, "{}:={}", ["", ""]
        out += ["ObjectType = Image",
                "NDims = 3",
                "AnatomicalOrientation = RAI",
                "BinaryData = True",
                "BinaryDataByteOrderMSB = False",
                "CenterOfRotation = 0 0 0",
                f"CompressedData = {'True' if self.compress else 'False'}"]
        if self.compress:
            out.append(f"CompressedDataSize = {self._nbytes}")
        out += [f"DimSize = {cols} {rows} {n}",
                "ElementNumberOfChannels = 1",
                f"ElementSpacing = {_fmt(dx)} {_fmt(dz)} 1",
                f"Offset = {_fmt(x0)} {_fmt(z0)} 0",
                "TransformMatrix = 1 0 0 0 1 0 0 0 1",
                f"ElementType = {_MET_NAMES[code]}",
                "Kinds = domain domain list",
                "UltrasoundImageOrientation = MF",
                f"UltrasoundImageType = {self.image_type}"]
        return out, "{} = {}", ["ElementDataFile = LOCAL"]

    def _write_header(self, f) -> None:
        head, fmt, tail = self._header()
        f.write(("\n".join(head) + "\n").encode("utf-8"))
        self._fields.seek(0)
        for line in self._fields:
            k, v = line.rstrip("\n").split("\t", 1)
            f.write((fmt.format(k, v) + "\n").encode("utf-8"))
        f.write(("\n".join(tail) + "\n").encode("utf-8") if tail != ["", ""] else b"\n")

    def close(self) -> str:
        """Write the header and the data into place; returns the path written."""
        if self._closed:
            return str(self.path)
        try:
            if self.n_frames == 0:
                raise fail("PlusSequenceWriter.close", "frames", "at least one appended frame", 0)
            if self._z is not None:
                tail = self._z.flush()
                self._data.write(tail)
                self._nbytes += len(tail)
            self._data.close()
            with atomic_write(self.path, "wb") as f:
                self._write_header(f)
                with open(self._data_tmp, "rb") as d:
                    shutil.copyfileobj(d, f, 1 << 20)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._fields.close()
        _remove(self._data_tmp)
        return str(self.path)

    def abort(self) -> None:
        """Drop everything written so far; no file appears at ``path``."""
        self._closed = True
        self._fields.close()
        try:
            self._data.close()
        except Exception:
            pass
        _remove(self._data_tmp)


    def __del__(self):  # a writer dropped without close() leaves no temporary file
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass


def _transform_name(func, name):
    name = str(name)
    if name.endswith("Transform") and len(name) > len("Transform"):
        name = name[:-len("Transform")]
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise fail(func, "transforms", "names of letters and digits such as 'NeedleTipToImage'",
                   repr(name))
    return name


def _check_word(func, arg, word):
    if not re.fullmatch(r"[A-Za-z_]+", str(word)):
        raise fail(func, arg, "a status word such as OK or INVALID", repr(word))


def write_plus_sequence(path, frames, geometry=None, timestamps=None, transforms=None,
                        statuses=None, *, compress=False, dtype=None,
                        image_type="BRIGHTNESS") -> str:
    """Write a whole PLUS sequence (``.seq.nrrd`` / ``.nrrd`` / ``.mha``) atomically.

    frames: ``(frames, rows, cols)`` array or an iterable of 2-D frames (streamed).
    timestamps: seconds per frame, or None.
    transforms: ``{name: [4x4 or None per frame]}``, e.g. ``{"NeedleTipToImage": [...]}``.
    statuses: ``{name: ["OK" | "INVALID" ... per frame]}``; default OK where a matrix is given,
        INVALID where None.
    Returns the path written. See :class:`PlusSequenceWriter` for the other arguments.
    """
    func = "write_plus_sequence"
    transforms = dict(transforms or {})
    statuses = dict(statuses or {})
    for k in statuses:
        if k not in transforms:
            raise fail(func, "statuses", "keys that are also keys of transforms", repr(k))
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        frames = frames[None]
    w = PlusSequenceWriter(path, geometry, compress=compress, dtype=dtype, image_type=image_type)
    with w:
        for i, fr in enumerate(frames):
            t = None
            if timestamps is not None:
                if i >= len(timestamps):
                    raise fail(func, "timestamps", "one time per frame", f"{len(timestamps)} for more frames")
                t = timestamps[i]
            tr = {}
            st = {}
            for name, seq in transforms.items():
                if i >= len(seq):
                    raise fail(func, "transforms", f"one entry per frame for {name!r}",
                               f"{len(seq)} for more frames")
                tr[name] = seq[i]
                if name in statuses and statuses[name] is not None:
                    if i >= len(statuses[name]):
                        raise fail(func, "statuses", f"one entry per frame for {name!r}",
                                   f"{len(statuses[name])} for more frames")
                    st[name] = statuses[name][i]
            w.append(fr, t, tr, st)
        if timestamps is not None and len(timestamps) != w.n_frames:
            raise fail(func, "timestamps", f"{w.n_frames} times, one per frame", len(timestamps))
    return str(w.path)


def write_plus_seq_nrrd(path, frames, geometry=None, timestamps=None, transforms=None,
                        statuses=None, **kw) -> str:
    """:func:`write_plus_sequence` for a ``.seq.nrrd`` path (kept for its descriptive name)."""
    if not str(os.fspath(path)).lower().endswith(".nrrd"):
        raise fail("write_plus_seq_nrrd", "path", "a .seq.nrrd file name", repr(str(path)))
    return write_plus_sequence(path, frames, geometry, timestamps, transforms, statuses, **kw)
