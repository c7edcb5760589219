"""Tests for usfast.igtl: a Streamer on 127.0.0.1 and real pyigtl clients (and a raw socket
reading the wire format). Every wait is bounded; every server and client is closed."""
import math
import socket
import struct
import sys
import threading
import time

import numpy as np
import pytest

from usfast import ImageGeometry, InputError, NeedleEstimate
from usfast.tracking import NeedleState

# dz != dx and rows != cols, so a swapped axis shows
G = ImageGeometry(spacing_mm=(0.2, 0.1), origin_mm=(5.0, -12.0), shape=(60, 80))
TIP = (3.0, 20.0)
ANGLE = 30.0


@pytest.fixture
def pyigtl():
    return pytest.importorskip("pyigtl")


@pytest.fixture
def igtl(pyigtl):
    from usfast import igtl
    return igtl


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def streamer(igtl):
    s = igtl.Streamer(port=0, geometry=G)
    yield s
    s.close()


class Client:
    """A pyigtl client with bounded waits and a bounded stop."""

    def __init__(self, pyigtl, port):
        self.c = pyigtl.OpenIGTLinkClient("127.0.0.1", port)

    def wait(self, name, *, newer_than=-1.0, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.c.wait_for_message(name, timeout=max(0.0, end - time.monotonic()))
            if m is not None and m.timestamp > newer_than:
                return m
        return None

    def stop(self, timeout=5.0):
        th = threading.Thread(target=self.c.stop, daemon=True)
        th.start()
        th.join(timeout)
        assert not th.is_alive(), "pyigtl client did not stop"


def state(found=True, tip=TIP, angle=ANGLE):
    if not found:
        return NeedleState(found=False, status="lost")
    a = math.radians(angle)
    return NeedleState(found=True, tip_mm=tip, direction=(math.cos(a), math.sin(a)),
                       angle_deg=angle, confidence=0.9, status="tracking")


def image(k=0):
    return (np.arange(60 * 80, dtype=np.float32).reshape(60, 80) + 1000.0 * k)


def wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


# -- pure geometry (no network) ------------------------------------------------------------
def test_image_to_world_and_tip_matrices(igtl):
    m = igtl.image_to_world(G)
    # i (column) -> X lateral with dx = 0.1, j (row) -> Y depth with dz = 0.2, origin (x0, z0)
    assert np.allclose(m @ [0, 0, 0, 1], [-12.0, 5.0, 0, 1])
    assert np.allclose(m @ [79, 59, 0, 1], [-12.0 + 7.9, 5.0 + 11.8, 0, 1])
    t = igtl.tip_to_image(state())
    a = math.radians(ANGLE)
    assert np.allclose(t[:3, 3], [3.0, 20.0, 0.0])
    assert np.allclose(t[:3, 0], [math.cos(a), math.sin(a), 0.0])
    assert np.allclose(t[:3, :3].T @ t[:3, :3], np.eye(3)) and np.linalg.det(t[:3, :3]) > 0


# -- streaming -----------------------------------------------------------------------------
def test_client_receives_image_and_tip(pyigtl, streamer):
    cl = Client(pyigtl, streamer.port)
    try:
        assert wait_until(lambda: streamer.clients == 1)
        img = image(3)
        streamer.send(img, state(), timestamp=1700000000.25)
        im = cl.wait("Image")
        tr = cl.wait("NeedleTipToImage")
        assert im is not None and tr is not None
        # size and pixel values: (k, j, i) = (1, rows, cols)
        assert im.image.shape == (1, 60, 80)
        assert np.array_equal(im.image[0], img)
        # spacing and origin, read back through pyigtl's decoding of the centre
        m = np.asarray(im.ijk_to_world_matrix)
        assert np.allclose(np.linalg.norm(m[:3, :3], axis=0), [0.1, 0.2, 1.0], atol=1e-6)
        assert np.allclose(m[:3, 3], [-12.0, 5.0, 0.0], atol=1e-5)
        assert im.world_coordinate_system == "ras"
        # the tip
        assert np.allclose(tr.matrix[:3, 3], [3.0, 20.0, 0.0], atol=1e-5)
        a = math.radians(ANGLE)
        assert np.allclose(tr.matrix[:3, 0], [math.cos(a), math.sin(a), 0.0], atol=1e-6)
        # the same timestamp on both
        assert im.timestamp == pytest.approx(1700000000.25, abs=1e-6)
        assert tr.timestamp == im.timestamp
    finally:
        cl.stop()


def _recv_exact(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_wire_format_carries_the_image_centre(pyigtl, streamer):
    """Read the bytes: the IMAGE header's matrix holds the spacing-scaled axes and the
    position of the image centre, origin + ((cols-1)/2 dx, (rows-1)/2 dz) =
    (-12 + 3.95, 5 + 5.9) = (-8.05, 10.9)."""
    with socket.create_connection(("127.0.0.1", streamer.port), timeout=5) as s:
        assert wait_until(lambda: streamer.clients == 1)
        streamer.send(image(), state(), timestamp=1700000001.5)
        hdr = struct.Struct("> H 12s 20s I I Q Q")
        h = hdr.unpack(_recv_exact(s, hdr.size))
        assert h[1].rstrip(b"\0") == b"IMAGE" and h[2].rstrip(b"\0") == b"Image"
        body = _recv_exact(s, h[5])
        from pyigtl.messages import CRC64
        assert h[6] == CRC64(body)                     # the receiver's CRC check passes
        assert h[3] == 1700000001 and h[4] == 2 ** 31  # seconds, and 0.5 s as a fraction
        ih = struct.Struct("> H B B B B H H H 12f 6H")
        v = ih.unpack(body[:ih.size])
        assert v[2] == 10 and v[4] == 1               # float32; RAS
        assert v[5:8] == (80, 60, 1)                   # size i (cols), j (rows), k
        mat = np.array(v[8:20])
        assert np.allclose(mat[0:3], [0.1, 0, 0], atol=1e-7)      # i axis * spacing
        assert np.allclose(mat[3:6], [0, 0.2, 0], atol=1e-7)      # j axis * spacing
        assert np.allclose(mat[6:9], [0, 0, 1.0], atol=1e-7)
        assert np.allclose(mat[9:12], [-8.05, 10.9, 0.0], atol=1e-5)   # the centre
        vox = np.frombuffer(body[ih.size:], dtype="<f4").reshape(60, 80)
        assert np.array_equal(vox, image())
        h2 = hdr.unpack(_recv_exact(s, hdr.size))
        tbody = _recv_exact(s, h2[5])
        assert h2[6] == CRC64(tbody)
        assert h2[1].rstrip(b"\0") == b"TRANSFORM"
        assert h2[2].rstrip(b"\0") == b"NeedleTipToImage"
        assert h2[3:5] == h[3:5]                       # the same timestamp, to the bit
        t = struct.unpack("> 12f", tbody)
        assert np.allclose(t[9:12], [3.0, 20.0, 0.0])


def test_not_found_sends_the_image_and_no_stale_tip(pyigtl, streamer):
    cl = Client(pyigtl, streamer.port)
    try:
        assert wait_until(lambda: streamer.clients == 1)
        streamer.send(image(1), state(), timestamp=100.0)
        assert cl.wait("Image") is not None and cl.wait("NeedleTipToImage") is not None
        for k in range(3):
            streamer.send(image(2 + k), state(found=False), timestamp=101.0 + k)
            time.sleep(0.05)
        im = cl.wait("Image", newer_than=102.5)
        assert im is not None and np.array_equal(im.image[0], image(4))
        assert cl.wait("NeedleTipToImage", timeout=0.5) is None
        streamer.send(image(5), None, timestamp=110.0)          # no state at all
        assert cl.wait("Image", newer_than=109.0) is not None
        assert cl.wait("NeedleTipToImage", timeout=0.3) is None
    finally:
        cl.stop()


class Producer(threading.Thread):
    """Sends a frame every `period` s (frame index k in the pixel values) and times each
    send() call."""

    def __init__(self, streamer, shape=(60, 80), period=0.02):
        super().__init__(daemon=True)
        self.s, self.shape, self.period = streamer, shape, period
        self.stop_ev = threading.Event()
        self.k = 0
        self.durations = []

    def run(self):
        base = np.zeros(self.shape, np.float32)
        while not self.stop_ev.is_set():
            self.k += 1
            base.fill(self.k)                      # the same buffer, reused each frame
            t0 = time.perf_counter()
            self.s.send(base, state(tip=(3.0, 10.0 + 0.01 * self.k)), timestamp=1e9 + self.k)
            self.durations.append(time.perf_counter() - t0)
            time.sleep(self.period)

    def finish(self):
        self.stop_ev.set()
        self.join(5.0)
        assert not self.is_alive()


def test_connect_disconnect_reconnect_never_stops_the_producer(pyigtl, streamer):
    prod = Producer(streamer)
    prod.start()
    try:
        a = Client(pyigtl, streamer.port)
        ma = a.wait("Image")
        assert ma is not None
        ka = int(ma.image[0, 0, 0])
        assert ma.timestamp == pytest.approx(1e9 + ka)
        a.stop()
        assert wait_until(lambda: streamer.clients == 0)
        k_gap = prod.k
        assert wait_until(lambda: prod.k >= k_gap + 10)      # still producing, nobody listens
        b = Client(pyigtl, streamer.port)
        mb = b.wait("Image", newer_than=1e9 + k_gap + 5)
        assert mb is not None and int(mb.image[0, 0, 0]) > ka
        tb = b.wait("NeedleTipToImage", newer_than=1e9 + k_gap + 5)
        assert tb is not None
        # the tip travels with its frame: same frame index in timestamp and position
        kt = round(tb.timestamp - 1e9)
        assert tb.matrix[1, 3] == pytest.approx(10.0 + 0.01 * kt, abs=1e-4)
        # a second client at the same time
        c = Client(pyigtl, streamer.port)
        assert c.wait("Image", newer_than=mb.timestamp) is not None
        b.stop()
        c.stop()
    finally:
        prod.finish()
    assert streamer.last_error is None
    assert max(prod.durations) < 0.05                 # send() never waited for the network
    assert np.median(prod.durations) < 0.005


def test_a_client_that_never_reads_does_not_block_or_queue(pyigtl, streamer):
    """A stalled reader: 100 frames of 512 x 512 float32 (1 MiB each) pass while it sleeps;
    the producer is not slowed down, memory holds one frame per client, and a live client
    gets the newest frame."""
    geom = ImageGeometry(spacing_mm=(0.1, 0.1), shape=(512, 512))
    streamer.geometry = geom
    stalled = socket.create_connection(("127.0.0.1", streamer.port), timeout=5)
    live = Client(pyigtl, streamer.port)
    try:
        assert wait_until(lambda: streamer.clients == 2)
        img = np.zeros((512, 512), np.float32)
        durations = []
        for k in range(1, 101):
            img.fill(k)
            t0 = time.perf_counter()
            streamer.send(img, state(), timestamp=2e9 + k)
            durations.append(time.perf_counter() - t0)
            time.sleep(0.002)
        assert max(durations) < 0.1 and np.median(durations) < 0.01
        m = live.wait("Image", newer_than=2e9 + 99.5)
        assert m is not None and m.image[0, 0, 0] == 100.0
        # the streamer's thread holds the latest frame and at most one frame in flight per
        # client: the stalled socket took a few frames (its kernel buffers), not 100
        assert streamer.frames_sent <= streamer.frames_submitted + 10
    finally:
        stalled.close()
        live.stop()
    assert wait_until(lambda: streamer.clients == 0)


def test_close_is_prompt_and_frees_the_port(igtl, pyigtl):
    s = igtl.Streamer(port=0, geometry=G)
    port = s.port
    cl = Client(pyigtl, port)
    try:
        assert wait_until(lambda: s.clients == 1)
        s.send(image(), state())
        t0 = time.perf_counter()
        s.close()
        assert time.perf_counter() - t0 < 2.0
        s.close()                                             # idempotent
        assert s.closed
        with pytest.raises(RuntimeError, match=f"port {port} is closed"):
            s.send(image(), state())
    finally:
        cl.stop()
    s2 = igtl.Streamer(port=port, geometry=G)                 # the port is free again
    s2.close()


# -- bad input -----------------------------------------------------------------------------
def test_port_in_use_names_the_port(igtl):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        t0 = time.perf_counter()
        with pytest.raises(InputError, match=rf"Streamer\(port\): expected a free TCP port on "
                                             rf"127.0.0.1; got {port}, which cannot be used"):
            igtl.Streamer(port=port, geometry=G)
        assert time.perf_counter() - t0 < 1.0
    with igtl.Streamer(port=0, geometry=G) as first:
        with pytest.raises(InputError, match=str(first.port)):
            igtl.Streamer(port=first.port, geometry=G)


def test_bad_arguments(igtl, streamer):
    with pytest.raises(InputError, match=r"Streamer\(port\)"):
        igtl.Streamer(port=70000)
    with pytest.raises(InputError, match=r"Streamer\(port\)"):
        igtl.Streamer(port="18944")
    with pytest.raises(InputError, match=r"Streamer\(tip_name\)"):
        igtl.Streamer(port=0, tip_name="x" * 21)
    with pytest.raises(InputError, match=r"send\(image\): expected an image of shape \(60, 80\)"):
        streamer.send(np.zeros((80, 60), np.float32), state())
    with pytest.raises(InputError, match=r"send\(image\): expected a 2-D image"):
        streamer.send(np.zeros((2, 60, 80), np.float32), state())
    with pytest.raises(InputError, match=r"send\(image\): expected integer or floating"):
        streamer.send(np.zeros((60, 80), np.complex64), state())
    with pytest.raises(InputError, match=r"send\(state\)"):
        streamer.send(image(), {"found": True})
    with pytest.raises(InputError, match=r"send\(timestamp\)"):
        streamer.send(image(), state(), timestamp=float("nan"))
    with igtl.Streamer(port=0) as nogeom:
        with pytest.raises(InputError, match=r"send\(geometry\): expected an ImageGeometry"):
            nogeom.send(image(), state())
        nogeom.send(image(), state(), geometry=G)             # per-frame geometry is fine


def test_rgb_rendering_goes_out_as_a_3_component_image(pyigtl, streamer):
    cl = Client(pyigtl, streamer.port)
    try:
        assert wait_until(lambda: streamer.clients == 1)
        rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
        streamer.send(rgb, NeedleEstimate(), timestamp=5.0)
        m = cl.wait("Image")
        assert m is not None and m.image.shape == (1, 60, 80, 3)
        assert np.array_equal(m.image[0], rgb)
    finally:
        cl.stop()


def test_missing_pyigtl_names_the_extra(monkeypatch):
    from usfast import igtl
    monkeypatch.setitem(sys.modules, "pyigtl", None)           # import pyigtl -> ImportError
    with pytest.raises(ImportError, match=r"usfast\[igtl\]"):
        igtl.Streamer(port=0)
    with pytest.raises(igtl.IGTLUnavailable):
        igtl.Streamer(port=0)
