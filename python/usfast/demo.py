"""The embedded demo (``usfast demo``) and the quick stage benchmark (``usfast bench``).

The demo simulates a needle insertion with :mod:`usfast.sim` as beamformed RF from a linear
probe, runs the whole :class:`usfast.Pipeline` on it frame by frame (B-mode formation, scan
conversion, speckle reduction, needle localisation, tracking, overlay) and writes the overlay
video, a contact sheet, plots and metrics measured against the simulator's truth.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ._version import __version__

MIN_VISIBLE_MM = 5.0
# The simulated ADC: RF quantised to int16 with a fixed full scale (twice the first frame's
# peak) and a fixed log-compression reference, so brightness does not pump between frames.
REFERENCE = 32767.0


def _probe_for(geometry):
    """A linear probe whose beam space covers the sequence's image rectangle."""
    from .geometry import ProbeGeometry
    x0, x1, z0, z1 = geometry.extent_mm()
    return ProbeGeometry.linear(n_lines=192, width_mm=x1 - x0, start_depth_mm=max(z0, 0.0),
                                end_depth_mm=z1)


def _pipeline(seq, probe, fs_hz, f0_hz, backend, speckle, pixel_mm):
    from .pipeline import Pipeline
    dr = float(seq.look.dynamic_range_db)
    sp = {"method": speckle} if speckle and speckle != "none" else False
    return Pipeline(
        input="rf", probe=probe, backend=backend,
        bmode={"fs_hz": fs_hz, "f0_hz": f0_hz, "decimation": 4, "bandwidth_hz": 0.8 * f0_hz,
               "dynamic_range_db": dr, "reference": REFERENCE},
        scan={"pixel_mm": pixel_mm}, speckle=sp, needle={}, tracking={},
        overlay={"guide_angles_deg": (30.0, 45.0, 60.0), "guide_side": seq.truth["side"][0]})


def _errors(results, truth, key):
    """Accuracy of ``key`` ("estimate": the per-frame detector, or "state": the tracker) on
    frames with >= 5 mm of needle visible: detection rate there, and tip and angle errors on
    those of them where the tip itself is in view (tip error against the physical tip)."""
    rows = []
    for r, t in zip(results, truth):
        if not (t["visible"] and t["visible_length_mm"] >= MIN_VISIBLE_MM):
            continue
        st = r[key]
        found = st is not None and st.found
        if not found or not t["tip_visible"]:
            rows.append((found, math.nan, math.nan))
            continue
        e = math.hypot(st.tip_mm[0] - t["tip_x_mm"], st.tip_mm[1] - t["tip_z_mm"])
        rows.append((True, e, abs(st.angle_deg - t["angle_deg"])))
    found = np.array([r[0] for r in rows], bool)
    tip = np.array([r[1] for r in rows if np.isfinite(r[1])])
    ang = np.array([r[2] for r in rows if np.isfinite(r[2])])

    def q(a, p):
        return float(np.percentile(a, p)) if a.size else math.nan
    return {"frames_evaluated": int(len(rows)), "frames_with_tip_in_view": int(tip.size),
            "detection_rate": float(found.mean()) if len(rows) else math.nan,
            "tip_error_median_mm": q(tip, 50), "tip_error_p95_mm": q(tip, 95),
            "tip_error_rmse_mm": float(np.sqrt(np.mean(tip ** 2))) if tip.size else math.nan,
            "angle_error_median_deg": q(ang, 50), "angle_error_p95_deg": q(ang, 95)}


LOOKS = ("default", "random")


def run(out="usfast-demo", frames=90, fps=20.0, seed=7, backend=None, speckle="guided",
        quiet=True, overwrite=False, look="default"):
    """Simulate, process and write the demo outputs into ``out``; returns the summary dict.

    seed draws the insertion: its angle (15-65 deg), entry, gauge, events, hand tremor, probe
    motion, the tissue and the speckle. look: "default" images it with the simulator's
    documented defaults (:class:`usfast.sim.Look`: 7.5 MHz, a 30 dB needle echo, 60 dB
    display); "random" draws the imaging and the needle's appearance from the seed as well
    (``Look.random(seed)``: frequency, PSF, gain, dynamic range, needle brightness, bevel or
    fading tip), the variety the needle's accuracy tables are measured over, faint needles
    included."""
    import cv2

    from . import io as usio
    from . import sim
    from ._errors import fail
    from .cli_pipeline import Progress

    if int(frames) < 2:
        raise fail("demo", "frames", "at least 2 frames", frames)
    if look not in LOOKS:
        raise fail("demo", "look", "one of " + ", ".join(LOOKS), look)
    seq = sim.insertion(duration_s=frames / fps, fps=fps, seed=seed,
                        variety=(look == "random"))
    probe = _probe_for(seq.geometry)
    f0 = seq.look.f0_mhz * 1e6
    fs = 40e6 if f0 < 8e6 else 60e6
    pixel_mm = float(seq.geometry.spacing_mm[0])
    pipe = None
    results = []
    truth = seq.truth
    prog = Progress(len(seq), "usfast demo", quiet)
    sim_times = []
    out = Path(out)
    with usio.AtomicDirectory(out, overwrite=overwrite) as tmp:
        video = None
        contact = []
        pick = set(np.linspace(0, len(seq) - 1, 12).round().astype(int).tolist())
        for i in range(len(seq)):
            t0 = time.perf_counter()
            fr = sim.render_rf(seq.phantom, probe, seed=seed, look=seq.look,
                               needle=seq.needles[i], fs_hz=fs)
            if i == 0:
                full_scale = 2.0 * float(np.max(np.abs(fr.rf)))  # 6 dB of headroom
            rf16, _ = fr.to_int16(full_scale=full_scale)
            sim_times.append(time.perf_counter() - t0)
            if pipe is None:
                pipe = _pipeline(seq, probe, fr.fs_hz, fr.f0_hz, backend, speckle, pixel_mm)
            res = pipe(rf16, t=float(truth["t_s"][i]))
            rgb = pipe.render(res)
            if video is None:
                video = usio.open_video_writer(tmp / "demo.mp4", fps, rgb.shape[:2])
            video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if i in pick:
                contact.append(rgb)
            results.append({"t_s": float(truth["t_s"][i]), "state": res.state,
                            "estimate": res.estimate, "times_ms": res.times_ms})
            prog.update(i)
        prog.close()
        video_path = Path(video.close()).name
        _contact_sheet(contact, tmp / "demo_contact.png")
        acc = {"detector": _errors(results, truth, "estimate"),
               "tracked": _errors(results, truth, "state"),
               "definition": f"frames with >= {MIN_VISIBLE_MM:g} mm of needle visible; tip "
                             "and angle errors where the tip itself is in view, against the "
                             "physical tip"}
        lat = pipe.timings()
        summary = {
            "usfast_version": __version__, "backend": _backend_name(backend),
            "frames": len(seq), "fps_simulated": fps, "seed": seed, "look_drawn": look,
            "out": str(out),
            "video": video_path, "accuracy": acc, "latency_ms": lat,
            "simulation_ms_per_frame": 1e3 * float(np.median(sim_times)),
            "parameters": pipe.config(),
            "look": seq.look.to_dict() if hasattr(seq.look, "to_dict") else None,
        }
        per_frame = []
        for r, t in zip(results, truth):
            st = r["state"]
            per_frame.append({
                "t_s": r["t_s"], "times_ms": r["times_ms"],
                "needle": None if st is None else st.to_dict(),
                "detector": None if r["estimate"] is None else r["estimate"].to_dict(),
                "truth": {"tip_mm": [float(t["tip_x_mm"]), float(t["tip_z_mm"])],
                          "visible_tip_mm": [float(t["vis1_x_mm"]), float(t["vis1_z_mm"])],
                          "angle_deg": float(t["angle_deg"]),
                          "visible_length_mm": float(t["visible_length_mm"]),
                          "in_plane": bool(t["in_plane"]), "event": str(t["event"])}})
        metrics = dict(summary, per_frame=per_frame)
        (tmp / "metrics.json").write_text(json.dumps(_clean(metrics), indent=1))
        _report(results, truth, tmp / "report.png")
    return _clean(summary)


def _backend_name(backend):
    from . import _backend
    return backend or ("cpu" if _backend.available("cpu") else "reference")


def _clean(v):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _contact_sheet(frames, path, cols=4, width=320):
    import cv2
    tiles = []
    for f in frames:
        h = int(round(f.shape[0] * width / f.shape[1]))
        tiles.append(cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
    sheet = np.vstack(rows)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    Path(path).write_bytes(buf.tobytes())


def _report(results, truth, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def tips(key):
        return np.array([r[key].tip_mm if r[key] is not None and r[key].found
                         else (np.nan, np.nan) for r in results], float)

    t = np.array([r["t_s"] for r in results])
    trk = tips("state")
    vis = truth["tip_visible"] & (truth["visible_length_mm"] >= MIN_VISIBLE_MM)
    tx = np.where(truth["in_plane"], truth["tip_x_mm"], np.nan)
    tz = np.where(truth["in_plane"], truth["tip_z_mm"], np.nan)
    err = np.hypot(trk[:, 0] - tx, trk[:, 1] - tz)
    det = tips("estimate")
    err_det = np.hypot(det[:, 0] - tx, det[:, 1] - tz)
    fig, ax = plt.subplots(3, 1, figsize=(9, 10), constrained_layout=True)
    ax[0].plot(t, tx, "k-", lw=2, label="true tip x")
    ax[0].plot(t, tz, "k--", lw=2, label="true tip z")
    ax[0].plot(t, trk[:, 0], "o", color="#0072B2", ms=3, label="tracked x")
    ax[0].plot(t, trk[:, 1], "s", color="#D55E00", ms=3, label="tracked z")
    ax[0].set_ylabel("mm")
    ax[0].set_title("Tracked vs true needle tip")
    ax[0].legend(fontsize=8, ncol=2)
    ax[1].plot(t[vis], err_det[vis], ".", color="#999999", ms=5, label="detector")
    ax[1].plot(t[vis], err[vis], "o-", color="#009E73", ms=3, label="tracked")
    ax[1].axhline(0.3, color="grey", ls=":", label="0.3 mm")
    ax[1].set_ylabel("tip error (mm)")
    ax[1].set_title(f"Tip error per frame (tip in view, >= {MIN_VISIBLE_MM:g} mm visible)")
    ax[1].legend(fontsize=8)
    stages = [k for k in ("bmode", "scan", "speckle", "needle", "tracking", "overlay")
              if any(k in r["times_ms"] for r in results)]
    bottom = np.zeros(len(results))
    palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9"]
    for k, c in zip(stages, palette):
        v = np.array([r["times_ms"].get(k, 0.0) for r in results])
        ax[2].bar(t, v, bottom=bottom, width=(t[1] - t[0]) * 0.9 if len(t) > 1 else 0.04,
                  color=c, label=k)
        bottom += v
    # the first frame sets up filters and buffers: its bar would flatten the others
    if len(bottom) > 2 and bottom[0] > 3.0 * np.median(bottom[1:]):
        top = 2.0 * float(np.percentile(bottom[1:], 99))
        ax[2].set_ylim(0.0, top)
        ax[2].annotate(f"first frame {bottom[0]:.0f} ms (set-up)", xy=(t[0], top),
                       xytext=(t[0] + 0.05 * (t[-1] - t[0]), 0.9 * top), fontsize=8,
                       arrowprops={"arrowstyle": "->", "color": "grey"})
    ax[2].set_ylabel("ms")
    ax[2].set_xlabel("time (s)")
    ax[2].set_title("Per-stage time per frame")
    ax[2].legend(fontsize=8, ncol=3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bench(size=512, frames=30, backend=None, speckle="guided"):
    """Per-stage latency on simulated RF giving a ``size`` x ``size`` image."""
    from . import sim
    from .geometry import ImageGeometry

    px = 40.0 / size
    g = ImageGeometry((px, px), (0.0, -20.0 + px / 2), (size, size))
    seq = sim.insertion(duration_s=frames / 20.0, fps=20.0, seed=3, geometry=g)
    probe = _probe_for(seq.geometry)
    f0 = seq.look.f0_mhz * 1e6
    fr = sim.render_rf(seq.phantom, probe, seed=3, look=seq.look, needle=seq.needles[0],
                       fs_hz=40e6 if f0 < 8e6 else 60e6)
    pipe = _pipeline(seq, probe, fr.fs_hz, fr.f0_hz, backend, speckle, px)
    rfs = [fr.to_int16()[0]]
    for i in range(1, min(frames, 4)):
        rfs.append(sim.render_rf(seq.phantom, probe, seed=3, look=seq.look,
                                 needle=seq.needles[i * (len(seq) // 4)],
                                 fs_hz=fr.fs_hz).to_int16()[0])
    for i in range(frames):
        pipe(rfs[i % len(rfs)], t=i / 20.0)
    return pipe.timings()
