"""``usfast.Pipeline``: the whole chain a frame goes through, as the demo, ``usfast process``
and a frame-rate prototype all use it.

Stages, each optional and configured by the parameter names of the function it calls:

=========  ================================================================================
bmode      RF/IQ -> display image: :func:`usfast.bmode` (``fs_hz``, ``f0_hz``, ``decimation``,
           ``dynamic_range_db``, ``gain_db``, ``reference``, ``tgc_db``, ...)
scan       beam space -> Cartesian: :class:`usfast.ScanConverter` (``pixel_mm`` or
           ``out_shape``); needs ``probe`` (a :class:`usfast.ProbeGeometry`)
speckle    ``method`` = one of ``srad dpad lee kuan frost guided median bilateral nlm`` (or
           none) plus that filter's parameters
needle     :func:`usfast.locate_needle` parameters (``angle_range_deg``, ``side``, ``roi``...)
tracking   :class:`usfast.NeedleTracker` parameters
overlay    :class:`usfast.overlay.Overlay` parameters (``target_mm``, ``guide_angles_deg``...)
=========  ================================================================================

Buffers are allocated once per frame shape and reused; per-stage timings are kept (median,
p95). NumPy frames run on the CPU backend, CuPy frames on the GPU, as for every function.
"""
from __future__ import annotations

import copy
import inspect
from collections import deque
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ._errors import fail
from .geometry import ImageGeometry, ProbeGeometry

__all__ = ["Pipeline", "PipelineResult", "SPECKLE_METHODS", "load_config"]

SPECKLE_METHODS = ("srad", "dpad", "lee", "kuan", "frost", "guided", "median", "bilateral", "nlm")
STAGES = ("bmode", "scan", "speckle", "needle", "tracking", "overlay")
_TOP_KEYS = ("input", "backend", "probe", "geometry") + STAGES
TIMING_WINDOW = 4096


@dataclass
class PipelineResult:
    """One processed frame: the display image (float32 [0, 1], ``geometry``), the tracked
    needle, the overlay primitives, and this frame's stage times in ms."""

    image: object
    geometry: ImageGeometry
    state: object = None
    estimate: object = None
    primitives: object = None
    times_ms: dict = field(default_factory=dict)


def load_config(path) -> dict:
    """Read a TOML configuration file into a dict (sections = stages)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise fail("load_config", "path", "an existing TOML file", repr(str(path))) from None
    except tomllib.TOMLDecodeError as e:
        raise fail("load_config", "path", "valid TOML", f"{path}: {e}") from None


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_params(stage, func, params, skip=()):
    """Unknown keys are an InputError naming the key and the stage."""
    sig = inspect.signature(func)
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    has_var = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    for k in params:
        if k in skip:
            continue
        if k not in names and not has_var:
            raise fail("Pipeline", f"{stage}.{k}",
                       f"a parameter of {getattr(func, '__qualname__', func)} "
                       f"({', '.join(sorted(n for n in names if n not in skip))})",
                       "an unknown key")


class Pipeline:
    """Process frames one at a time: ``result = pipeline(frame, t=None)``.

    input: ``"rf"`` (int16/float32 beamformed RF, ``(samples, lines)``), ``"iq"`` (complex64) or
        ``"image"`` (a display image in [0, 1] or uint8, already scan-converted).
    probe: :class:`ProbeGeometry` of RF/IQ input (enables the scan stage); geometry:
        :class:`ImageGeometry` of image input (or of beam-space data without a probe).
    Stage sections as in the module docstring; a section set to ``None`` or ``False`` (or
    ``{"enabled": False}``) turns the stage off.
    """

    def __init__(self, *, input="image", probe=None, geometry=None, bmode=None, scan=None,
                 speckle=None, needle=None, tracking=None, overlay=None, backend=None):
        import usfast as us

        f = "Pipeline"
        if input not in ("rf", "iq", "image"):
            raise fail(f, "input", "'rf', 'iq' or 'image'", repr(input))
        self.input = input
        if probe is not None and not isinstance(probe, ProbeGeometry):
            raise fail(f, "probe", "a usfast.ProbeGeometry", type(probe).__name__)
        if geometry is not None and not isinstance(geometry, ImageGeometry):
            raise fail(f, "geometry", "a usfast.ImageGeometry", type(geometry).__name__)
        if input != "image" and probe is None and geometry is None:
            raise fail(f, "probe", "a ProbeGeometry (or geometry) for RF/IQ input")
        if input == "image" and geometry is None:
            raise fail(f, "geometry", "the ImageGeometry of the input images")
        self.probe, self.geometry, self.backend = probe, geometry, backend

        def section(name, v, default):
            if v is None:
                v = default
            if v is False or v is None:
                return None
            if not isinstance(v, dict):
                raise fail(f, name, "a table of parameters (or false to turn it off)",
                           type(v).__name__)
            v = dict(v)
            if v.pop("enabled", True) is False:
                return None
            return v

        self.cfg = {
            "bmode": section("bmode", bmode, {} if input != "image" else None),
            "scan": section("scan", scan, {} if probe is not None else None),
            "speckle": section("speckle", speckle, {"method": "guided"}),
            "needle": section("needle", needle, {}),
            "tracking": section("tracking", tracking, {}),
            "overlay": section("overlay", overlay, {}),
        }
        c = self.cfg
        if c["bmode"] is not None:
            if input == "image":
                raise fail(f, "bmode", "no B-mode stage for image input")
            _check_params("bmode", us.bmode, c["bmode"], skip=("rf", "out", "backend", "stream"))
            if input == "rf":
                for k in ("fs_hz", "f0_hz"):
                    if k not in c["bmode"]:
                        raise fail(f, f"bmode.{k}", "a value for RF input")
        if c["scan"] is not None:
            if probe is None:
                raise fail(f, "scan", "a probe geometry to scan-convert")
            allowed = {"pixel_mm", "out_shape"}
            for k in c["scan"]:
                if k not in allowed:
                    raise fail(f, f"scan.{k}", f"one of {sorted(allowed)}", "an unknown key")
            if not c["scan"]:
                c["scan"]["pixel_mm"] = 0.1
        sp = c["speckle"]
        self._speckle_fn = None
        if sp is not None:
            method = sp.get("method", "guided")
            if method in (None, "none", False):
                c["speckle"] = None
            else:
                if method not in SPECKLE_METHODS:
                    raise fail(f, "speckle.method", f"one of {SPECKLE_METHODS} or 'none'",
                               repr(method))
                fn = getattr(us, method, None)
                if fn is None:
                    raise fail(f, "speckle.method", "a filter present in this build", method)
                params = {k: v for k, v in sp.items() if k != "method"}
                _check_params("speckle", fn, params, skip=("img", "out", "backend", "stream"))
                self._speckle_fn = fn
        if c["needle"] is not None:
            _check_params("needle", us.locate_needle, c["needle"], skip=("img", "geometry"))
            # the needle stage reads the tip's contrast in the display range B-mode made
            b = c["bmode"]
            if b is not None and "dynamic_range_db" in b and \
                    c["needle"].get("scale", "display") == "display":
                c["needle"].setdefault("dynamic_range_db", b["dynamic_range_db"])
        if c["tracking"] is not None:
            _check_params("tracking", us.NeedleTracker, c["tracking"], skip=("geometry",))
        if c["overlay"] is not None:
            from .overlay import Overlay
            _check_params("overlay", Overlay, c["overlay"], skip=("geometry",))
        self._shape = None
        # the last TIMING_WINDOW frames per stage: bounded memory on endless streams
        self._times = {s: deque(maxlen=TIMING_WINDOW) for s in STAGES + ("total",)}

    # -- configuration ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config=None, **overrides):
        """Build from a dict or a TOML path; ``overrides`` (same layout) take precedence.
        Top-level keys: input, backend, probe ({kind, ...} for ProbeGeometry), geometry
        ({spacing_mm, origin_mm}), and the stage sections."""
        cfg = load_config(config) if isinstance(config, (str, bytes)) or hasattr(
            config, "__fspath__") else dict(config or {})
        cfg = _merge(cfg, overrides)
        for k in cfg:
            if k not in _TOP_KEYS:
                raise fail("Pipeline", k, f"a key among {_TOP_KEYS}", "an unknown key")
        probe = cfg.get("probe")
        if isinstance(probe, dict):
            p = dict(probe)
            kind = p.pop("kind", "linear")
            probe = ProbeGeometry(kind, **p)
        geom = cfg.get("geometry")
        if isinstance(geom, dict):
            geom = ImageGeometry(**geom)
        kw = {k: cfg[k] for k in STAGES if k in cfg}
        return cls(input=cfg.get("input", "image"), probe=probe, geometry=geom,
                   backend=cfg.get("backend"), **kw)

    def config(self) -> dict:
        """The effective configuration (JSON-serialisable)."""
        out = {"input": self.input, "backend": self.backend}
        if self.probe is not None:
            out["probe"] = self.probe.to_dict()
        if self.geometry is not None:
            out["geometry"] = self.geometry.to_dict()
        for s in STAGES:
            out[s] = _jsonable(self.cfg[s]) if self.cfg[s] is not None else False
        return out

    # -- per-shape setup ------------------------------------------------------------------------
    def _setup(self, frame):
        import usfast as us

        xp = np if isinstance(frame, np.ndarray) else __import__("cupy")
        self._xp = xp
        shape = frame.shape
        c = self.cfg
        bshape = shape
        if c["bmode"] is not None and self.input == "rf":
            dec = int(c["bmode"].get("decimation", 1))
            bshape = ((shape[0] + dec - 1) // dec, shape[1])
            od = np.dtype(c["bmode"].get("out_dtype", np.float32))
            self._bmode_out = xp.empty(bshape, od)
        elif c["bmode"] is not None:
            self._bmode_out = xp.empty(bshape, np.float32)
        if c["scan"] is not None:
            self._sc = us.ScanConverter(self.probe, bshape, **c["scan"])
            self.out_geometry = self._sc.image_geometry
            self._scan_out = xp.empty(self._sc.out_shape, np.float32)
            ishape = self._sc.out_shape
        else:
            g = self.geometry
            if g is None:  # beam space shown as is: 1 sample per pixel in depth
                g = ImageGeometry((1.0, 1.0), (0.0, 0.0))
            self.out_geometry = g.with_shape(bshape)
            ishape = bshape
        self._speckle_out = xp.empty(ishape, np.float32) if self._speckle_fn else None
        self._tracker = None
        if c["tracking"] is not None:
            self._tracker = us.NeedleTracker(self.out_geometry, **c["tracking"])
        self._overlay = None
        if c["overlay"] is not None:
            from .overlay import Overlay
            self._overlay = Overlay(self.out_geometry, **c["overlay"])
        self._shape = shape

    # -- one frame ------------------------------------------------------------------------------
    def __call__(self, frame, t=None) -> PipelineResult:
        import usfast as us

        tic = time.perf_counter
        t_all = tic()
        if getattr(frame, "ndim", 0) != 2:
            raise fail("Pipeline", "frame", "one 2-D frame", getattr(frame, "shape", type(frame)))
        if self._shape != frame.shape:
            self._setup(frame)
        c = self.cfg
        times = {}
        img = frame
        be = self.backend
        if c["bmode"] is not None:
            t0 = tic()
            p = c["bmode"]
            if self.input == "rf":
                img = us.bmode(frame, out=self._bmode_out, backend=be, **p)
            else:
                lp = {k: v for k, v in p.items() if k in ("dynamic_range_db", "gain_db",
                                                          "reference", "out_dtype")}
                img = us.log_compress(frame, out=self._bmode_out, backend=be, **lp)
            times["bmode"] = tic() - t0
        if img.dtype == np.uint8:
            img = img.astype(np.float32) / 255.0
        if c["scan"] is not None:
            t0 = tic()
            img = self._sc(img, out=self._scan_out, backend=be)
            times["scan"] = tic() - t0
        elif img.dtype != np.float32:
            img = img.astype(np.float32)
        if self._speckle_fn is not None:
            t0 = tic()
            p = {k: v for k, v in c["speckle"].items() if k != "method"}
            img = self._speckle_fn(img, out=self._speckle_out, backend=be, **p)
            times["speckle"] = tic() - t0
        est = state = prims = None
        if c["needle"] is not None:
            t0 = tic()
            est = us.locate_needle(img, geometry=self.out_geometry, **c["needle"])
            times["needle"] = tic() - t0
        if self._tracker is not None and est is not None:
            t0 = tic()
            state = self._tracker.update_estimate(est, t=t)
            times["tracking"] = tic() - t0
        if self._overlay is not None:
            t0 = tic()
            prims = self._overlay.primitives(state if state is not None else est)
            times["overlay"] = tic() - t0
        times["total"] = tic() - t_all
        for k, v in times.items():
            self._times[k].append(v)
        return PipelineResult(image=img, geometry=self.out_geometry, state=state, estimate=est,
                              primitives=prims, times_ms={k: 1e3 * v for k, v in times.items()})

    def render(self, result: PipelineResult):
        """The result drawn with its overlay: RGB uint8 (rows, cols, 3)."""
        img = result.image
        if not isinstance(img, np.ndarray):
            img = img.get()
        if self._overlay is None:
            from .overlay import Overlay
            self._overlay = Overlay(self.out_geometry, ruler=True)
        return self._overlay.render(img, primitives=result.primitives) if result.primitives \
            is not None else self._overlay.render(img, result.state or result.estimate)

    def timings(self) -> dict:
        """Per stage over the last TIMING_WINDOW frames: frames, median and p95 latency (ms) and
        frames/s at the median."""
        out = {}
        for k, v in self._times.items():
            if not v:
                continue
            a = 1e3 * np.asarray(v)
            med = float(np.median(a))
            out[k] = {"frames": int(a.size), "median_ms": med,
                      "p95_ms": float(np.percentile(a, 95)),
                      "fps": (1e3 / med) if med > 0 else math.inf}
        return out

    def reset_timings(self):
        for v in self._times.values():
            v.clear()


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, type) or isinstance(v, np.dtype):
        return np.dtype(v).name
    return v
