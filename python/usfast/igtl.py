"""Live link to 3D Slicer (or any OpenIGTLink client) over TCP.

Optional extra: ``pip install 'usfast[igtl]'`` (uses ``pyigtl`` to encode the messages; this
module imports without it and :class:`Streamer` says what is missing).

:class:`Streamer` listens on a TCP port; for each processed frame, :meth:`Streamer.send` hands
it the image and the needle state and returns at once. A background thread sends every connected
client (Slicer's OpenIGTLinkIF connector, in client mode) the latest frame only:

* an ``IMAGE`` message (device ``"Image"``) with its image-to-world matrix from the
  :class:`usfast.ImageGeometry` (OpenIGTLink carries the position of the image *centre*, not of
  its origin; the encoding takes care of it), and
* a ``TRANSFORM`` message ``"NeedleTipToImage"``: the needle tip pose, only when the needle is
  found, with the same timestamp as the image.

Frames (x, z) map to the world frame as X = lateral mm, Y = depth mm, Z = out of plane, the
image in the plane Z = 0 (the "Image" coordinate frame; the image message is flagged RAS so
Slicer uses the matrix as is). The tip transform's X axis points along the needle into the
tissue, its Z axis out of the image plane, its origin at the tip. Put both under one parent
transform in Slicer (e.g. ImageToReference from a tracker) to place them in the patient.

Latest frame only: the producer never waits for the network. A client that reads slowly gets
fewer frames (the newest one when it is ready for the next), never an old one, and nothing
queues up. When the needle is not found, the image goes out alone: no stale tip pose follows.
Clients may connect, disconnect and reconnect at any time without disturbing the producer.
"""
from __future__ import annotations

import math
import selectors
import socket
import struct
import sys
import threading
import time

import numpy as np

from ._arrays import host_array
from ._errors import BackendUnavailable, fail
from .estimate import NeedleEstimate
from .geometry import ImageGeometry

__all__ = ["Streamer", "IGTLUnavailable", "image_to_world", "tip_to_image", "DEFAULT_PORT"]

DEFAULT_PORT = 18944

_IGTL_DTYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32,
                np.float64)


def _host(func, x):
    return host_array(func, x)


class IGTLUnavailable(BackendUnavailable, ImportError):
    """pyigtl is not installed: ``pip install 'usfast[igtl]'``."""


def _pyigtl():
    try:
        import pyigtl
    except ImportError as e:
        raise IGTLUnavailable("usfast.igtl needs the optional package pyigtl; install it with "
                              "pip install 'usfast[igtl]' (or pip install pyigtl)") from e
    return pyigtl


def image_to_world(geometry, slice_thickness_mm=1.0):
    """4x4 matrix from voxel index (i = column, j = row, k = 0) to the Image frame in mm:
    X = x0 + i*dx (lateral), Y = z0 + j*dz (depth), Z = k*slice_thickness_mm."""
    (dz, dx), (z0, x0) = geometry.spacing_mm, geometry.origin_mm
    m = np.eye(4)
    m[0, 0], m[1, 1], m[2, 2] = dx, dz, float(slice_thickness_mm)
    m[0, 3], m[1, 3] = x0, z0
    return m


def tip_to_image(state):
    """4x4 pose of the needle tip in the Image frame: origin at ``tip_mm`` (x, z) -> (X, Y, 0);
    X axis along the needle ``direction`` (into the tissue), Z axis out of the image plane."""
    ux, uz = state.direction
    n = math.hypot(ux, uz)
    ux, uz = (ux / n, uz / n) if n > 1e-12 else (0.0, 1.0)
    m = np.eye(4)
    m[:3, 0] = (ux, uz, 0.0)
    m[:3, 1] = (-uz, ux, 0.0)
    m[0, 3], m[1, 3] = state.tip_mm
    return m


_HEADER = struct.Struct("> H 12s 20s I I Q Q")   # OpenIGTLink v1 header, 58 bytes
_CRC_CHUNK = 1 << 16
_crc64 = None


def _encode(msg, ts):
    """Bytes of one OpenIGTLink (header version 1) message: pyigtl's encoding of the body,
    with the CRC-64 of large bodies computed in chunks that let the producer thread run in
    between (one call over a 1 MiB image would hold the interpreter for milliseconds)."""
    global _crc64
    content = getattr(msg, "_pack_content", None)
    if content is None:                         # an unknown pyigtl: its own packing
        return msg.pack()
    body = content()
    if _crc64 is None:
        import crcmod   # a dependency of pyigtl
        _crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, rev=False, initCrc=0, xorOut=0)
    crc = 0
    view = memoryview(body)
    for i in range(0, len(body), _CRC_CHUNK):
        crc = _crc64(view[i:i + _CRC_CHUNK], crc)
        if len(body) > _CRC_CHUNK:
            time.sleep(0)                        # give the interpreter to other threads
    sec = int(ts)
    frac = min(int((ts - sec) * 4294967296.0), 0xFFFFFFFF)
    head = _HEADER.pack(1, msg.message_type.encode("ascii"), msg.device_name.encode("ascii"),
                        sec, frac, len(body), crc)
    return head + body


class _Client:
    __slots__ = ("sock", "addr", "buf", "off", "seq")

    def __init__(self, sock, addr):
        self.sock, self.addr = sock, addr
        self.buf, self.off, self.seq = None, 0, 0


class Streamer:
    """OpenIGTLink server that streams processed frames and the needle tip to 3D Slicer.

    port: TCP port (OpenIGTLink's default 18944; 0 picks a free one, see :attr:`port`). A port
        already in use raises :class:`usfast.InputError` naming it, at once.
    geometry: :class:`usfast.ImageGeometry` of the frames (or pass it to each :meth:`send`).
    host: interface to listen on; ``"127.0.0.1"`` (default) for this machine only, ``""`` or
        ``"0.0.0.0"`` for every interface.
    image_name, tip_name: OpenIGTLink device names (at most 20 ASCII characters).
    slice_thickness_mm: out-of-plane spacing given to the 2-D image.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, port=DEFAULT_PORT, *, geometry=None, host="127.0.0.1",
                 image_name="Image", tip_name="NeedleTipToImage", slice_thickness_mm=1.0):
        f = "Streamer"
        self._igtl = _pyigtl()
        if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or \
                not (0 <= int(port) <= 65535):
            raise fail(f, "port", "a TCP port number in [0, 65535]", repr(port))
        port = int(port)
        if geometry is not None and not isinstance(geometry, ImageGeometry):
            raise fail(f, "geometry", "an ImageGeometry or None", type(geometry).__name__)
        for name, v in (("image_name", image_name), ("tip_name", tip_name)):
            if not isinstance(v, str) or not v or len(v) > 20 or not v.isascii():
                raise fail(f, name, "an ASCII device name of 1 to 20 characters", repr(v))
        st = float(slice_thickness_mm)
        if not (math.isfinite(st) and st > 0):
            raise fail(f, "slice_thickness_mm", "a positive thickness in mm", slice_thickness_mm)
        self.geometry = geometry
        self.image_name, self.tip_name, self.slice_thickness_mm = image_name, tip_name, st
        self.host = host

        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if sys.platform.startswith("win"):
                lsock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", 0) or
                                 socket.SO_REUSEADDR, 1)
            else:   # lets a restarted streamer reuse a port in TIME_WAIT; a listener still wins
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((host, port))
            lsock.listen(8)
            lsock.setblocking(False)
        except OSError as e:
            lsock.close()
            why = e.strerror or str(e)
            raise fail(f, "port", f"a free TCP port on {host or '0.0.0.0'}",
                       f"{port}, which cannot be used ({why})") from e
        self._lsock = lsock
        self.port = lsock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

        self._lock = threading.Lock()
        self._latest = None         # (seq, frame) of the newest submitted frame
        self._seq = 0
        self._stop = False
        self._closed = False
        self._nclients = 0
        self.frames_submitted = 0
        self.frames_sent = 0        # complete frames delivered, summed over clients
        self.last_error = None      # the last error met by the sending thread, if any
        self._thread = threading.Thread(target=self._serve, name=f"usfast-igtl-{self.port}",
                                        daemon=True)
        self._thread.start()

    # -- producer side ---------------------------------------------------------------------
    @property
    def clients(self):
        """Number of clients connected now."""
        return self._nclients

    @property
    def closed(self):
        return self._closed

    def send(self, image, state=None, *, geometry=None, timestamp=None):
        """Hand one processed frame to the streamer; returns at once.

        image: ``(rows, cols)`` (uint8, int8/16/32, uint16/32, float32 or float64; other floats
            become float32, bool uint8) or an RGB(A) uint8 ``(rows, cols, 3 or 4)`` rendering.
            It is copied, so the caller may reuse its buffer.
        state: a :class:`usfast.NeedleState` / :class:`usfast.NeedleEstimate`, or None. The tip
            transform goes out only when ``state.found``.
        geometry: overrides the streamer's geometry for this frame.
        timestamp: seconds since 1970 for both messages (default: now).
        """
        f = "Streamer.send"
        if self._closed:
            raise RuntimeError(f"{f}: the streamer on port {self.port} is closed")
        geometry = self.geometry if geometry is None else geometry
        if not isinstance(geometry, ImageGeometry):
            raise fail(f, "geometry", "an ImageGeometry (here or in Streamer(geometry=...)) "
                       "for the image's spacing and origin", type(geometry).__name__)
        img = _host(f, image)
        rgb = img.ndim == 3 and img.shape[-1] in (3, 4) and img.dtype == np.uint8
        if not (img.ndim == 2 or rgb):
            raise fail(f, "image", "a 2-D image (rows, cols) or an RGB(A) uint8 image "
                       "(rows, cols, 3|4)", f"shape {img.shape}, dtype {img.dtype}")
        if min(img.shape[:2]) < 1 or max(img.shape[:2]) > 65535:
            raise fail(f, "image", "1 to 65535 rows and columns", img.shape)
        geometry.check_image(f, "image", img.shape[:2])
        if img.dtype == np.bool_:
            img = img.astype(np.uint8)
        elif np.issubdtype(img.dtype, np.floating) and img.dtype not in (np.float32,
                                                                         np.float64):
            img = img.astype(np.float32)
        dt = next((d for d in _IGTL_DTYPES if img.dtype == d), None)
        if dt is None:
            raise fail(f, "image", "integer or floating-point pixels OpenIGTLink can carry",
                       img.dtype)
        if state is not None and not isinstance(state, NeedleEstimate):
            raise fail(f, "state", "a NeedleState, NeedleEstimate or None", type(state).__name__)
        if timestamp is None:
            timestamp = time.time()
        else:
            try:
                timestamp = float(timestamp)
            except (TypeError, ValueError):
                raise fail(f, "timestamp", "seconds since 1970", repr(timestamp)) from None
            if not (math.isfinite(timestamp) and 0 <= timestamp < 2 ** 32):
                raise fail(f, "timestamp", "seconds since 1970 (0 to 2**32)", timestamp)
        voxels = np.array(img, dtype=np.dtype(dt).newbyteorder("="), order="C", copy=True)
        voxels = voxels.reshape((1, *voxels.shape))        # (k, j, i[, components])
        frame = (voxels, image_to_world(geometry, self.slice_thickness_mm),
                 tip_to_image(state) if state is not None and state.found else None, timestamp)
        with self._lock:
            self._seq += 1
            self._latest = (self._seq, frame)
        self.frames_submitted += 1
        self._wake()

    def close(self):
        """Stop the sending thread, disconnect the clients and free the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake()
        self._thread.join(timeout=5.0)
        for s in (self._lsock, self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._closed else f"{self._nclients} client(s)"
        return f"Streamer(port={self.port}, host={self.host!r}, {state})"

    def _wake(self):
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass      # already awake (pipe full) or closing

    # -- sending thread --------------------------------------------------------------------
    def _pack(self, frame):
        voxels, ijk, tip, ts = frame
        ig = self._igtl
        out = _encode(ig.ImageMessage(voxels, ijk_to_world_matrix=ijk,
                                      world_coordinate_system="ras", timestamp=ts,
                                      device_name=self.image_name), ts)
        if tip is not None:
            out += _encode(ig.TransformMessage(tip, timestamp=ts, device_name=self.tip_name),
                           ts)
        return out

    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        clients = {}
        packed_seq, packed = 0, None

        def drop(c):
            clients.pop(c.sock, None)
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError, OSError):
                pass
            try:
                c.sock.close()
            except OSError:
                pass
            self._nclients = len(clients)

        def flush(c):
            while c.buf is not None:
                try:
                    n = c.sock.send(c.buf[c.off:c.off + (1 << 20)])
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    drop(c)
                    return
                c.off += n
                if c.off >= len(c.buf):
                    c.buf = None
                    self.frames_sent += 1

        try:
            while not self._stop:
                for key, mask in sel.select(timeout=0.5):
                    s = key.fileobj
                    if s is self._lsock:
                        while True:
                            try:
                                cs, addr = self._lsock.accept()
                            except (BlockingIOError, InterruptedError):
                                break
                            except OSError as e:
                                self.last_error = e
                                break
                            cs.setblocking(False)
                            cs.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                            c = _Client(cs, addr)
                            clients[cs] = c
                            sel.register(cs, selectors.EVENT_READ, c)
                            self._nclients = len(clients)
                    elif s is self._wake_r:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            break
                    else:
                        c = key.data
                        if mask & selectors.EVENT_READ:
                            # incoming messages (e.g. STATUS, GET_) are not used: read and drop;
                            # an empty read means the client has gone
                            try:
                                if not c.sock.recv(65536):
                                    drop(c)
                                    continue
                            except (BlockingIOError, InterruptedError):
                                pass
                            except OSError:
                                drop(c)
                                continue
                        if mask & selectors.EVENT_WRITE:
                            flush(c)
                if self._stop:
                    break
                with self._lock:
                    latest = self._latest
                if latest is not None:
                    seq, frame = latest
                    for c in list(clients.values()):
                        if c.buf is None and c.seq < seq:
                            if packed_seq != seq:
                                try:
                                    packed, packed_seq = self._pack(frame), seq
                                except Exception as e:      # never let the thread die
                                    self.last_error = e
                                    packed, packed_seq = None, seq
                            if packed is None:
                                c.seq = seq
                                continue
                            c.buf, c.off, c.seq = memoryview(packed), 0, seq
                            flush(c)
                for c in list(clients.values()):
                    want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.buf is not None
                                                   else 0)
                    try:
                        if sel.get_key(c.sock).events != want:
                            sel.modify(c.sock, want, c)
                    except (KeyError, ValueError, OSError):
                        drop(c)
        except Exception as e:   # pragma: no cover - reported, never raised into the producer
            self.last_error = e
        finally:
            for c in list(clients.values()):
                drop(c)
            sel.close()
            self._nclients = 0
