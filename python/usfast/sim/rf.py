"""Beam-space RF lines ``(samples, lines)`` for a :class:`usfast.ProbeGeometry`.

The same physics as the Cartesian renderer (:mod:`usfast.sim.cartesian`), laid out on the probe's
beam grid so that a B-mode chain (demodulation or Hilbert envelope, log compression, scan
conversion) can be tested end to end:

* sample ``i`` of every line lies at depth ``r_i`` along the beam (``probe.sample_depths_mm``),
  received at two-way time ``t_i = 2 r_i / c``; samples are spaced so that the sampling rate is
  (as close as the probe's depth range allows to) the requested ``fs_hz``; the exact rate is
  returned;
* scatterers are evaluated at each beam sample's image-plane position (``probe.beam_to_mm``),
  so curvilinear and phased sectors see the phantom in its true geometry;
* the lateral PSF width (mm) at depth ``r`` becomes a width in lines through the local line
  spacing (``pitch`` for linear, ``(R + r) dtheta`` for curvilinear, ``r dtheta`` for phased);
* the needle's incidence angle is taken against each line's own direction, so a needle under a
  curvilinear probe is brightest where the beams meet it square;
* ``iq`` is the complex baseband signal and ``rf = Re(iq * exp(j 2 pi f0 t))``; since the pulse
  bandwidth is below ``f0``, the Hilbert envelope of ``rf`` equals ``|iq|`` (``envelope``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from .._errors import fail
from ..geometry import ProbeGeometry
from . import _check as ck
from . import psf as _psf
from ._specular import draw_points, shadow_factor
from .look import Look
from .needle import Needle
from .phantom import Phantom
from .cartesian import _WORKERS, layer_specular

__all__ = ["render_rf", "RFFrame"]


@dataclass
class RFFrame:
    """Simulated beamformed RF and its metadata.

    rf: (samples, lines) float32. iq: complex64 baseband with ``rf = Re(iq exp(j 2 pi f0 t))``.
    envelope: ``|iq|`` float32 (the ideal detected envelope). fs_hz: sampling rate (exact).
    f0_hz: centre (carrier) frequency. probe: the ProbeGeometry. depths_mm, t_s: depth and
    two-way time of each sample. truth: the needle's ground truth (mm, and fractional
    ``tip_sample``/``tip_line``), or None without a needle.
    """

    rf: np.ndarray
    iq: np.ndarray
    envelope: np.ndarray
    fs_hz: float
    f0_hz: float
    probe: ProbeGeometry
    depths_mm: np.ndarray
    t_s: np.ndarray
    sound_speed_m_s: float
    truth: dict | None = None
    meta: dict = field(default_factory=dict)

    def to_int16(self, full_scale=None):
        """``(rf_int16, scale)``: RF quantised to int16 with ``rf ~= rf_int16 * scale``;
        ``full_scale`` (default the peak |rf|) maps to 32767; larger values clip."""
        fs = float(np.max(np.abs(self.rf))) if full_scale is None else \
            ck.positive("RFFrame.to_int16", "full_scale", full_scale)
        fs = fs or 1.0
        q = np.clip(np.rint(self.rf * (32767.0 / fs)), -32768, 32767).astype(np.int16)
        return q, fs / 32767.0


def _line_spacing_mm(probe, r):
    r = np.asarray(r, dtype=np.float64)
    if probe.kind == "linear":
        return np.full_like(r, probe.pitch_mm)
    dth = math.radians(probe.sector_deg) / max(probe.n_lines - 1, 1)
    if probe.kind == "curvilinear":
        return (probe.radius_mm + np.maximum(r, 0.0)) * dth
    return np.maximum(r, 1.0) * dth


def render_rf(phantom: Phantom, probe: ProbeGeometry, *, seed=0, look: Look | None = None,
              needle: Needle | None = None, fs_hz=40e6, f0_hz=None) -> RFFrame:
    """Beamformed RF lines of ``phantom`` seen by ``probe`` (see the module docstring).

    fs_hz: requested sampling rate; must exceed ``2 f0 (1 + bandwidth/2)``.
    f0_hz: centre frequency (default ``look.f0_mhz``; if given it replaces the look's).
    needle: optional :class:`Needle` in the probe's image-plane mm (x = 0 on the probe axis,
        z = 0 at the probe face centre).
    """
    f = "render_rf"
    if not isinstance(phantom, Phantom):
        raise fail(f, "phantom", "a usfast.sim.Phantom", type(phantom).__name__)
    if not isinstance(probe, ProbeGeometry):
        raise fail(f, "probe", "a usfast.ProbeGeometry", type(probe).__name__)
    seed = ck.seed(f, "seed", seed)
    look = Look() if look is None else look
    if not isinstance(look, Look):
        raise fail(f, "look", "a usfast.sim.Look", type(look).__name__)
    if f0_hz is not None:
        look = look.replace(f0_mhz=ck.positive(f, "f0_hz", f0_hz) / 1e6)
    f0 = look.f0_mhz * 1e6
    fs_req = ck.positive(f, "fs_hz", fs_hz)
    if fs_req < 2.0 * f0 * (1.0 + look.bandwidth / 2.0):
        raise fail(f, "fs_hz", f"a sampling rate >= 2 f0 (1 + bandwidth/2) = "
                   f"{2.0 * f0 * (1.0 + look.bandwidth / 2.0):.4g} Hz", fs_req)
    if needle is not None and not isinstance(needle, Needle):
        raise fail(f, "needle", "a usfast.sim.Needle", type(needle).__name__)

    c_mm_s = probe.sound_speed_m_s * 1e3
    span = probe.end_depth_mm - probe.start_depth_mm
    n = int(round(2.0 * span / c_mm_s * fs_req)) + 1
    if n > 65536:
        raise fail(f, "fs_hz", "a sampling rate giving at most 65536 samples per line", fs_req)
    fs = c_mm_s * (n - 1) / (2.0 * span)
    dr = span / (n - 1)
    L = probe.n_lines
    depths = probe.sample_depths_mm(n)

    sz_mm = _psf.axial_sigma_mm(look)
    ps = int(math.ceil(4.0 * max(sz_mm / dr, _psf.MIN_SIGMA_PX))) + 2
    RP = sfft.next_fast_len(n + 2 * ps)
    r_win = probe.start_depth_mm + (np.arange(RP) - ps) * dr
    r_win_c = np.maximum(r_win, 0.0)
    sx_win_mm = _psf.lateral_sigma_mm(look, r_win_c)
    sig_lines = np.minimum(sx_win_mm / _line_spacing_mm(probe, r_win_c), max(L / 8.0, 1.0))
    pl = min(int(math.ceil(4.0 * max(float(sig_lines.max()), _psf.MIN_SIGMA_PX))) + 2, 4 * L)
    CP = sfft.next_fast_len(L + 2 * pl)

    samp = np.arange(RP, dtype=np.float64)[:, None] - ps
    line = np.arange(CP, dtype=np.float64)[None, :] - pl
    X, Z = (np.ascontiguousarray(a)
            for a in np.broadcast_arrays(*probe.beam_to_mm(samp, line, n)))
    echo = phantom.echogenicity(X, Z)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    amp = rng.standard_normal((RP, 2 * CP), dtype=np.float32).view(np.complex64)
    amp *= np.float32(math.sqrt(0.5))
    if phantom.density is not None:
        cell = dr * _line_spacing_mm(probe, r_win_c)
        lam = (phantom.density / _psf.resolution_cell_mm2(look) * cell)[:, None]
        cnt = rng.poisson(np.broadcast_to(lam, (RP, CP)))
        echo = echo * (cnt / lam).astype(np.float32)
    amp *= np.sqrt(echo)

    spec = None
    rect = probe.extent_mm()
    truth = None
    if needle is not None:
        truth = _beam_truth(needle, probe, n, rect)
        if not truth["visible"]:
            raise fail(f, "needle", "a needle with a visible part inside the probe's field of "
                       "view", f"tip {needle.tip_mm}, angle {needle.angle_deg}, "
                       f"side {needle.side!r}")
        spec = needle.specular(look, rect)

    def to_rc(x, z):
        s_, l_ = probe.mm_to_beam(x, z, n)
        return s_ + ps, l_ + pl

    if spec is not None and look.shadow > 0:
        sh = shadow_factor((RP, CP), spec, to_rc, look.shadow, max(needle.diameter_mm / dr, 1.0),
                           0.25 * dr)
        if sh is not None:
            amp[sh[0], sh[1]] *= sh[2]

    H = _psf.lateral_transfer(sig_lines, CP)
    Xf = sfft.fft(amp, axis=1, workers=_WORKERS)
    Xf *= H
    Y = sfft.ifft(Xf, axis=1, overwrite_x=True, workers=_WORKERS)[:, pl:pl + L]
    att_win = phantom.attenuation_db(r_win_c, look.f0_mhz)
    if look.noise_db is not None:
        nrng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
        nz = nrng.standard_normal((RP, 2 * L), dtype=np.float32)
        nz *= (10.0 ** ((look.noise_db + att_win) / 20.0) * math.sqrt(0.5)).astype(
            np.float32)[:, None]
        Y = Y + nz.view(np.complex64)
    Zf = sfft.fft(Y, axis=0, workers=_WORKERS)
    Zf *= _psf.axial_transfer(sz_mm / dr, RP)[:, None]
    F = sfft.ifft(Zf, axis=0, overwrite_x=True, workers=_WORKERS)[ps:ps + n]

    Xc, Zc = X[ps:ps + n, pl:pl + L], Z[ps:ps + n, pl:pl + L]
    th = np.radians(probe.line_angles_deg())
    sin_c, cos_c = np.sin(th), np.cos(th)
    sx_rows = _psf.lateral_sigma_mm(look, np.maximum(depths, 0.0))
    xr = (rect[0], rect[1])
    for layer in phantom.layers:
        ls = layer_specular(layer, xr)
        if ls is not None:
            draw_points(F, ls, Xc, Zc, sx_rows, sz_mm, sin_c, cos_c, 0)
    if spec is not None:
        draw_points(F, spec, Xc, Zc, sx_rows, sz_mm, sin_c, cos_c,
                    max(int(round(needle.diameter_mm / dr)), 1))

    att = phantom.attenuation_db(np.maximum(depths, 0.0), look.f0_mhz)
    gain = (10.0 ** ((look.gain_db + (look.tgc - 1.0) * att) / 20.0)).astype(np.float32)
    iq = (F * gain[:, None]).astype(np.complex64)
    t = 2.0 * depths / c_mm_s
    carrier = np.exp(2j * math.pi * f0 * t).astype(np.complex64)
    rf = (iq * carrier[:, None]).real.astype(np.float32)
    env = np.abs(iq)
    return RFFrame(rf=np.ascontiguousarray(rf), iq=iq, envelope=env, fs_hz=fs, f0_hz=f0,
                   probe=probe, depths_mm=depths, t_s=t, sound_speed_m_s=probe.sound_speed_m_s,
                   truth=truth, meta={"look": look, "seed": seed, "n_samples": n})


def _beam_truth(needle, probe, n, rect):
    """Needle truth in mm plus beam coordinates; visibility judged inside the sector."""
    tip = np.asarray(needle.tip_mm, dtype=np.float64)
    out = {"tip_mm": tuple(tip), "angle_deg": needle.angle_deg, "side": needle.side}
    s_, l_ = probe.mm_to_beam(tip[0], tip[1], n)
    out["tip_sample"], out["tip_line"] = float(s_), float(l_)
    seg = needle.visible_segment(rect)
    vis_len = 0.0
    if seg is not None:
        p0, p1 = seg
        m = max(int(np.hypot(*(p1 - p0)) / 0.05), 2)
        t = np.linspace(0, 1, m)[:, None]
        pts = p0[None] + t * (p1 - p0)[None]
        ss, ll = probe.mm_to_beam(pts[:, 0], pts[:, 1], n)
        inside = (ss >= 0) & (ss <= n - 1) & (ll >= 0) & (ll <= probe.n_lines - 1)
        vis_len = float(inside.mean() * np.hypot(*(p1 - p0))) if inside.any() else 0.0
        if inside.any():
            out["vis0_mm"] = tuple(pts[np.argmax(inside)])
            out["vis1_mm"] = tuple(pts[len(inside) - 1 - np.argmax(inside[::-1])])
    out["visible"] = vis_len > 0
    out["visible_length_mm"] = vis_len
    return out
