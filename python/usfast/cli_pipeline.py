"""``usfast demo``, ``usfast process`` and ``usfast bench``: thin shells around
:class:`usfast.Pipeline`."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._errors import InputError, fail
from ._version import __version__


# ---- argument parsers ---------------------------------------------------------------------------
def add_demo(add):
    s = add("demo", "Simulate a needle insertion and run the whole pipeline on it.")
    s.add_argument("--out", default="usfast-demo", help="output folder (default usfast-demo/)")
    s.add_argument("--frames", type=int, default=90, help="frames to simulate (default 90)")
    s.add_argument("--fps", type=float, default=20.0, help="frame rate of the simulated clip")
    s.add_argument("--seed", type=int, default=7, help="simulation seed")
    s.add_argument("--look", choices=["default", "random"], default="default",
                   help="imaging and needle appearance: the simulator's defaults, or drawn "
                        "from the seed (faint needles, fading tips, other PSFs)")
    s.add_argument("--backend", choices=["cpu", "cuda", "cupy", "reference"],
                   help="backend (default: the best present)")
    s.add_argument("--speckle", default="guided", help="speckle filter (or 'none')")
    s.add_argument("--quiet", action="store_true", help="no progress bar or table")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def add_process(add):
    s = add("process", "Run the pipeline on a file: DICOM, video, image folder, .npy/.npz, "
                       "PLUS .mha/.seq.nrrd.")
    s.add_argument("input", help="input file or image folder")
    s.add_argument("-o", "--out", required=True, help="output folder")
    s.add_argument("--config", help="TOML file; keys are the pipeline functions' parameters")
    s.add_argument("--backend", choices=["cpu", "cuda", "cupy", "reference"])
    s.add_argument("--spacing-mm", type=float, nargs="+", metavar="MM",
                   help="pixel spacing (one value, or dz dx) when the file has none")
    s.add_argument("--fps", type=float, help="frame rate when the file has none")
    s.add_argument("--speckle", help="speckle filter (overrides the config), or 'none'")
    s.add_argument("--angle-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="needle angle prior in degrees")
    s.add_argument("--side", choices=["left", "right"], help="side the needle enters from")
    s.add_argument("--target-mm", type=float, nargs=2, metavar=("X", "Z"),
                   help="target point for the overlay")
    s.add_argument("--max-frames", type=int, help="stop after this many frames")
    s.add_argument("--no-video", action="store_true", help="skip the overlay video")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def add_bench(add):
    s = add("bench", "A quick table of per-stage latency and frames/s.")
    s.add_argument("--size", type=int, default=512, help="output image size (default 512)")
    s.add_argument("--frames", type=int, default=30, help="frames to time (default 30)")
    s.add_argument("--backend", choices=["cpu", "cuda", "cupy", "reference"])
    s.add_argument("--speckle", default="guided")
    s.add_argument("--json", action="store_true")


# ---- shared helpers ---------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr, only on a terminal and when not quiet."""

    def __init__(self, total, label, quiet=False):
        self.total, self.label = total, label
        self.on = (not quiet) and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def update(self, i):
        if not self.on:
            return
        n = i + 1
        frac = n / self.total if self.total else 0
        bar = "#" * int(30 * frac)
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r{self.label} [{bar:<30s}] {n}/{self.total or '?'} "
                         f"{n / max(el, 1e-9):5.1f} frames/s")
        sys.stderr.flush()

    def close(self):
        if self.on:
            sys.stderr.write("\n")


def tip_to_image_matrix(state, geometry):
    """4x4 NeedleTipToImage: PLUS Image coordinates are pixels (x = column, y = row); the tip
    frame's x axis points along the needle into the tissue."""
    if state is None or not state.found:
        return None
    tx, tz = state.tip_px
    dz_mm, dx_mm = geometry.spacing_mm
    ux, uz = state.direction
    px, pz = ux / dx_mm, uz / dz_mm
    n = math.hypot(px, pz) or 1.0
    px, pz = px / n, pz / n
    m = np.eye(4)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = px, -pz, pz, px
    m[0, 3], m[1, 3] = tx, tz
    return m


def _state_dict(res):
    st = res.state if res.state is not None else res.estimate
    d = {"times_ms": {k: round(v, 4) for k, v in res.times_ms.items()}}
    if st is not None:
        d["needle"] = st.to_dict()
    if res.primitives is not None:
        d["overlay"] = res.primitives.to_dict()
    return d


def _f(v, nd=2):
    return "n/a" if v is None else f"{v:.{nd}f}"


def _print_table(rows, file=sys.stdout):
    w = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{w}}  {val}", file=file)


def _best_backend(backend):
    from . import _backend
    if backend:
        return backend
    return "cpu" if _backend.available("cpu") else "reference"


# ---- demo ---------------------------------------------------------------------------------------
def cmd_demo(args):
    from . import demo
    summary = demo.run(out=args.out, frames=args.frames, fps=args.fps, seed=args.seed,
                       backend=args.backend, speckle=args.speckle, quiet=args.quiet,
                       overwrite=args.overwrite, look=args.look)
    if not args.quiet:
        _print_summary(summary)
    return 0


def _print_summary(s):
    print(f"usfast demo: {s['frames']} frames, backend {s['backend']}, written to {s['out']}")
    rows = []
    for k, v in s["latency_ms"].items():
        rows.append((k, f"{v['median_ms']:8.2f} ms median  {v['p95_ms']:8.2f} ms p95  "
                        f"{v['fps']:8.1f} frames/s"))
    for who in ("detector", "tracked"):
        acc = s["accuracy"][who]
        rows.append((f"{who} tip error", f"median {_f(acc['tip_error_median_mm'])} mm, "
                                          f"p95 {_f(acc['tip_error_p95_mm'])} mm"))
        rows.append((f"{who} angle error", f"median {_f(acc['angle_error_median_deg'])} deg, "
                                            f"p95 {_f(acc['angle_error_p95_deg'])} deg"))
        rows.append((f"{who} detection", f"{_f(100 * (acc['detection_rate'] or 0), 1)} % of "
                                          f"{acc['frames_evaluated']} frames with >= 5 mm visible"))
    _print_table(rows)


# ---- process --------------------------------------------------------------------------------------
def _process_config(args, source):
    from .pipeline import load_config
    cfg = load_config(args.config) if args.config else {}
    for k in cfg:
        if k not in ("speckle", "needle", "tracking", "overlay", "backend"):
            raise fail("process", f"--config {k}", "sections speckle, needle, tracking, overlay "
                       "(image input: no bmode/scan)", "an unknown section")
    cfg = dict(cfg)
    if args.backend:
        cfg["backend"] = args.backend
    if args.speckle:
        cfg["speckle"] = {"method": args.speckle} if args.speckle != "none" else False
    needle = dict(cfg.get("needle") or {})
    if args.angle_range:
        needle["angle_range_deg"] = tuple(args.angle_range)
    if args.side:
        needle["side"] = args.side
    cfg["needle"] = needle
    ov = dict(cfg.get("overlay") or {})
    if args.target_mm:
        ov["target_mm"] = tuple(args.target_mm)
    cfg["overlay"] = ov
    cfg["input"] = "image"
    cfg["geometry"] = source.geometry
    return cfg


def cmd_process(args):
    from . import io as usio
    from .pipeline import Pipeline

    spacing = None
    if args.spacing_mm:
        if len(args.spacing_mm) not in (1, 2) or min(args.spacing_mm) <= 0:
            raise fail("process", "--spacing-mm", "one or two positive values (dz dx)",
                       args.spacing_mm)
        spacing = tuple(args.spacing_mm) if len(args.spacing_mm) == 2 else (args.spacing_mm[0],) * 2
    if not os.path.exists(args.input):
        raise fail("process", "INPUT", "an existing file or folder", repr(args.input))
    source = usio.open_input(args.input, spacing_mm=spacing, fps=args.fps)
    cfg = _process_config(args, source)
    geometry = cfg.pop("geometry")
    pipe = Pipeline(input="image", geometry=geometry, backend=cfg.get("backend"),
                    speckle=cfg.get("speckle"), needle=cfg.get("needle"),
                    tracking=cfg.get("tracking"), overlay=cfg.get("overlay"))
    out = Path(args.out)
    n_total = source.n_frames
    if args.max_frames:
        n_total = min(n_total or args.max_frames, args.max_frames)
    prog = Progress(n_total, "usfast process", args.quiet)
    fps = None
    ts = source.timestamps
    if ts is not None and len(ts) > 1:
        d = np.diff(np.asarray(ts, float))
        d = d[d > 0]
        fps = 1.0 / float(np.median(d)) if d.size else None
    fps = fps or args.fps or 20.0
    rows, cols = geometry.shape
    n = 0
    with usio.AtomicDirectory(out, overwrite=args.overwrite) as tmp:
        video = None if args.no_video else usio.open_video_writer(tmp / "overlay.mp4", fps,
                                                                   (rows, cols))
        seq = usio.PlusSequenceWriter(tmp / "processed.seq.nrrd", geometry)
        try:
            with open(tmp / "results.json", "w") as rj:
                rj.write('{"frames": [\n')
                for i, t, frame in source.frames():
                    if args.max_frames and n >= args.max_frames:
                        break
                    res = pipe(frame, t=t)
                    d = {"index": int(i), "t_s": None if t is None else float(t)}
                    d.update(_state_dict(res))
                    rj.write(("" if n == 0 else ",\n") + json.dumps(d))
                    st = res.state if res.state is not None else res.estimate
                    m = tip_to_image_matrix(st, res.geometry)
                    seq.append(np.clip(res.image, 0, 1), t,
                               transforms={"NeedleTipToImage": m},
                               statuses={"NeedleTipToImage": "OK" if m is not None else "INVALID"})
                    if video is not None:
                        import cv2
                        video.write(cv2.cvtColor(pipe.render(res), cv2.COLOR_RGB2BGR))
                    prog.update(n)
                    n += 1
                if n == 0:
                    raise fail("process", "INPUT", "at least one frame", "none")
                timings = pipe.timings()
                rj.write('\n], "timings": ' + json.dumps(timings) + "}\n")
            seq.close()
            video_path = None
            if video is not None:
                video.close()
                video_path = Path(video.path).name
        except BaseException:
            seq.abort()
            if video is not None:
                video.abort() if hasattr(video, "abort") else None
            raise
        manifest = {
            "usfast_version": __version__,
            "command": "process",
            "input": {"path": os.path.abspath(args.input), "sha256": source.metadata.get("sha256"),
                      "kind": source.metadata.get("kind"), "frames_read": n},
            "backend": _best_backend(cfg.get("backend")),
            "config": pipe.config(),
            "outputs": [p for p in ("results.json", "processed.seq.nrrd", video_path) if p],
            "timings": timings,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    prog.close()
    if not args.quiet:
        print(f"usfast process: {n} frames -> {out}")
        t = timings.get("total")
        if t:
            print(f"  total {t['median_ms']:.2f} ms median, {t['fps']:.1f} frames/s")
    return 0


# ---- bench --------------------------------------------------------------------------------------
def cmd_bench(args):
    from . import demo
    rows = demo.bench(size=args.size, frames=args.frames, backend=args.backend,
                      speckle=args.speckle)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"usfast bench: {args.size}x{args.size} output, {args.frames} frames, "
          f"backend {_best_backend(args.backend)}")
    _print_table([(k, f"{v['median_ms']:8.3f} ms median  {v['p95_ms']:8.3f} ms p95  "
                      f"{v['fps']:9.1f} frames/s") for k, v in rows.items()])
    return 0
