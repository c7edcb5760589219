"""Fast B-mode-like rendering on a Cartesian grid (an :class:`usfast.ImageGeometry`).

How a frame is made (linear probe, beams vertical):

1. **Scatterers**: one complex amplitude per pixel on a grid padded by the PSF reach:
   ``sqrt(echogenicity) * c`` with ``c`` circular complex Gaussian of unit variance (fully
   developed speckle) or ``sqrt(N / lambda) * c`` with ``N ~ Poisson(lambda)`` scatterers per
   pixel (``lambda`` from the phantom's density per resolution cell), so the mean intensity is
   the echogenicity either way. A sum of Gaussian terms stays Gaussian, so with full density the
   envelope is exactly Rayleigh.
2. **Shadow** of the needle: scatterer amplitudes below the shaft are scaled down.
3. **Lateral PSF**: per-row Gaussian (width from :func:`usfast.sim.psf.lateral_sigma_mm` at the
   row's depth) applied as an FFT along each row; sub-pixel probe motion is a phase ramp there.
4. **Electronic noise**: white complex Gaussian noise, added before the axial filter (so it has
   the pulse bandwidth) and before TGC (so it grows with depth where TGC lifts the signal).
5. **Axial PSF**: unit-energy Gaussian pulse envelope applied by FFT along the columns
   (sub-pixel axial motion is a phase ramp).
6. **Specular echoes** (fascia surfaces, needle shaft, comet tail, tip) are added analytically.
7. **Envelope** ``|field|`` times the per-row gain ``10**((gain_db + (tgc - 1) A(z)) / 20)``
   with ``A(z)`` the two-way attenuation.

Units: tissue of echogenicity 0 dB at a depth with no net attenuation has envelope RMS
``10**(gain_db/20)``. :func:`to_bmode` maps envelopes to [0, 1] for display with the full scale
(white) at :data:`FULL_SCALE_DB` = 40 dB above that tissue level.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from .._errors import fail
from ..geometry import ImageGeometry
from . import _check as ck
from . import psf as _psf
from ._specular import Specular, draw_cartesian, shadow_factor
from .look import Look
from .needle import Needle
from .phantom import Phantom

__all__ = ["render", "to_bmode", "default_geometry", "FULL_SCALE_DB"]

FULL_SCALE_DB = 40.0
_WORKERS = 1  # single-threaded FFTs measured faster than two workers at 512^2 here


def default_geometry(shape=(512, 512), spacing_mm=0.08, *, top_mm=0.0) -> ImageGeometry:
    """Image geometry of a linear probe: ``shape`` = (rows, cols), square pixels of
    ``spacing_mm`` (or (dz, dx)), x centred on the probe axis, the first row at ``top_mm``."""
    f = "default_geometry"
    rows, cols = ck.shape2(f, "shape", shape)
    if np.ndim(spacing_mm) == 0:
        dz = dx = ck.positive(f, "spacing_mm", spacing_mm)
    else:
        sp = tuple(spacing_mm)
        if len(sp) != 2:
            raise fail(f, "spacing_mm", "a spacing or (dz, dx)", spacing_mm)
        dz, dx = ck.positive(f, "spacing_mm", sp[0]), ck.positive(f, "spacing_mm", sp[1])
    top = ck.number(f, "top_mm", top_mm)
    return ImageGeometry((dz, dx), (top, -(cols - 1) / 2.0 * dx), (rows, cols))


def to_bmode(envelope, dynamic_range_db=60.0, gain_db=0.0, *, ref=None, out=None):
    """Log-compress an envelope for display: ``20 log10(env / ref) + gain_db``, clamped to
    ``[-dynamic_range_db, 0]`` and mapped linearly to [0, 1] (float32).

    ref: amplitude shown at 0 dB (white); default ``10**(FULL_SCALE_DB/20)`` = 100, so tissue at
    its nominal level sits 40 dB below white.
    """
    f = "to_bmode"
    dr = ck.positive(f, "dynamic_range_db", dynamic_range_db)
    g = ck.number(f, "gain_db", gain_db)
    ref = 10.0 ** (FULL_SCALE_DB / 20.0) if ref is None else ck.positive(f, "ref", ref)
    env = np.asarray(envelope)
    if env.dtype.kind not in "fiu":
        raise fail(f, "envelope", "a real array", env.dtype)
    tiny = np.float32(1e-30)
    db = np.log10(np.maximum(env.astype(np.float32, copy=False), tiny))
    db *= np.float32(20.0)
    db += np.float32(g - 20.0 * math.log10(ref) + dr)
    db *= np.float32(1.0 / dr)
    return np.clip(db, 0.0, 1.0, out=out)


# -- engine ------------------------------------------------------------------------------------
_FASCIA_SPEC_DEG = 30.0
_FASCIA_FLOOR = 10.0 ** (-10.0 / 20.0)


def _fascia_gain(inc_deg):
    return (1 - _FASCIA_FLOOR) * np.exp(-(np.asarray(inc_deg) / _FASCIA_SPEC_DEG) ** 2) \
        + _FASCIA_FLOOR


def layer_specular(layer, x_range, shift=(0.0, 0.0)):
    """Specular segment of a fascia layer over lateral range ``x_range`` of the image (mm), for
    a probe moved by ``shift`` = (dx, dz) mm; None if it has no specular echo there."""
    if layer.specular_db is None:
        return None
    dx, dz = shift
    s0, s1 = layer._span()
    xa = max(s0, x_range[0] + dx - 5.0)
    xb = min(s1, x_range[1] + dx + 5.0)
    if xb <= xa:
        return None
    pa = np.array([xa, float(layer.z_at(xa))])
    pb = np.array([xb, float(layer.z_at(xb))])
    ux = (pb - pa) / np.hypot(*(pb - pa))

    def along(s, pa=pa, ux=ux):
        return layer.patch_profile(pa[0] + s * ux[0])

    return Specular(pa - (dx, dz), pb - (dx, dz), 10.0 ** (layer.specular_db / 20.0),
                    phase=(layer.texture_seed % 6283) / 1000.0, gain_fn=_fascia_gain,
                    along=along)


class CartesianEngine:
    """Renders frames of one phantom on one geometry with one look (see the module docstring).

    The scatterer field is drawn once, in the tissue frame, with ``margin_mm`` = (x, z) of
    room for probe motion; :meth:`frame` then renders the view for a probe offset.
    """

    def __init__(self, phantom: Phantom, geometry: ImageGeometry, look: Look, seed: int,
                 margin_mm=(0.0, 0.0)):
        self.phantom, self.geometry, self.look = phantom, geometry, look
        R0, C0 = geometry.shape
        dz, dx = geometry.spacing_mm
        z0, x0 = geometry.origin_mm
        self.shape = (R0, C0)
        depth = np.maximum(z0 + np.arange(R0) * dz, 0.0)
        self.sz_mm = _psf.axial_sigma_mm(look)
        self.sz_px = self.sz_mm / dz
        self.sx_rows_mm = _psf.lateral_sigma_mm(look, depth)
        pz = int(math.ceil(_specular_reach(self.sz_px))) + 2
        pxl = int(math.ceil(_specular_reach(float(self.sx_rows_mm.max()) / dx))) + 2
        RP = sfft.next_fast_len(R0 + 2 * pz)
        CP = sfft.next_fast_len(C0 + 2 * pxl)
        mx = int(math.ceil(abs(margin_mm[0]) / dx)) + (1 if margin_mm[0] else 0)
        mz = int(math.ceil(abs(margin_mm[1]) / dz)) + (1 if margin_mm[1] else 0)
        self.pz, self.pxl, self.RP, self.CP, self.mx, self.mz = pz, pxl, RP, CP, mx, mz
        TR, TC = RP + 2 * mz, CP + 2 * mx
        zt = z0 + (np.arange(TR) - mz - pz) * dz
        xt = x0 + (np.arange(TC) - mx - pxl) * dx
        echo = phantom.echogenicity(xt[None, :], zt[:, None])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        amp = rng.standard_normal((TR, 2 * TC), dtype=np.float32).view(np.complex64)
        amp *= np.float32(math.sqrt(0.5))
        if phantom.density is not None:
            lam = phantom.density * dz * dx / _psf.resolution_cell_mm2(look)
            n = rng.poisson(lam, (TR, TC)).astype(np.float32)
            echo = echo * (n / np.float32(lam))
        amp *= np.sqrt(echo)
        self.tissue = amp
        # per-row lateral transfer of the window (window row i is image row i - pz)
        wdepth = np.maximum(z0 + (np.arange(RP) - pz) * dz, 0.0)
        self.H = _lateral_H(look, z0 - pz * dz, dz, dx, RP, CP)
        att = phantom.attenuation_db(wdepth, look.f0_mhz)
        self.noise_rows = None
        if look.noise_db is not None:
            self.noise_rows = (10.0 ** ((look.noise_db + att) / 20.0)).astype(np.float32)
        att_img = phantom.attenuation_db(depth, look.f0_mhz)
        self.row_gain = (10.0 ** ((look.gain_db + (look.tgc - 1.0) * att_img) / 20.0)
                         ).astype(np.float32)
        self.layer_x_range = (x0, x0 + (C0 - 1) * dx)
        self.rect = geometry.extent_mm()
        self.max_offset_mm = (mx - 1) * dx if mx else 0.0, (mz - 1) * dz if mz else 0.0

    def _to_window_rc(self, x, z):
        dz, dx = self.geometry.spacing_mm
        z0, x0 = self.geometry.origin_mm
        return (np.asarray(z) - z0) / dz + self.pz, (np.asarray(x) - x0) / dx + self.pxl

    def frame(self, *, offset_mm=(0.0, 0.0), needle: Needle | None = None, noise_seed=None,
              field_only=False):
        """Envelope (rows, cols) float32 of the view for a probe moved by ``offset_mm`` =
        (dx, dz) in the tissue frame, with an optional needle (given in image coordinates).
        ``noise_seed``: a SeedSequence entropy for the electronic noise of this frame."""
        R0, C0 = self.shape
        dz, dx = self.geometry.spacing_mm
        ox, oz = offset_mm[0] / dx, offset_mm[1] / dz
        ix, iz = int(math.floor(ox)), int(math.floor(oz))
        fx, fz = ox - ix, oz - iz
        if abs(ix) > self.mx or abs(iz) > self.mz or (fx and self.mx <= abs(ix)) \
                or (fz and self.mz <= abs(iz)):
            raise fail("CartesianEngine.frame", "offset_mm",
                       f"an offset within the motion margin {self.max_offset_mm}", offset_mm)
        win = self.tissue[self.mz + iz:self.mz + iz + self.RP,
                          self.mx + ix:self.mx + ix + self.CP]
        spec = None
        if needle is not None:
            spec = needle.specular(self.look, self.rect)
        if spec is not None and self.look.shadow > 0:
            onset = max(needle.diameter_mm / dz, 1.0)
            sh = shadow_factor((self.RP, self.CP), spec, lambda x, z: self._to_window_rc(x, z),
                               self.look.shadow, onset, 0.25 * min(dz, dx))
            if sh is not None:
                win = win.copy()
                win[sh[0], sh[1]] *= sh[2]
        X = sfft.fft(win, axis=1, workers=_WORKERS)
        X *= self.H
        if fx:
            X *= _psf.shift_ramp(self.CP, fx)[None, :]
        Y = sfft.ifft(X, axis=1, overwrite_x=True, workers=_WORKERS)
        Yc = Y[:, self.pxl:self.pxl + C0]
        if self.noise_rows is not None:
            rng = np.random.default_rng(np.random.SeedSequence(noise_seed if noise_seed
                                                               is not None else [0]))
            n = rng.standard_normal((self.RP, 2 * C0), dtype=np.float32)
            n *= (self.noise_rows * np.float32(math.sqrt(0.5)))[:, None]
            Yc += n.view(np.complex64)
        Z = sfft.fft(Yc, axis=0, workers=_WORKERS)
        Z *= _psf.axial_transfer(self.sz_px, self.RP, fz)[:, None]
        W = sfft.ifft(Z, axis=0, overwrite_x=True, workers=_WORKERS)
        F = W[self.pz:self.pz + R0]
        for layer in self.phantom.layers:
            ls = layer_specular(layer, self.layer_x_range, offset_mm)
            if ls is not None:
                draw_cartesian(F, ls, self.geometry, self.sx_rows_mm, self.sz_mm)
        if spec is not None:
            draw_cartesian(F, spec, self.geometry, self.sx_rows_mm, self.sz_mm)
        if field_only:
            return F
        env = np.abs(F)
        env *= self.row_gain[:, None]
        return env


_H_CACHE: dict = {}


def _lateral_H(look, z_first, dz, dx, n_rows, n_cols):
    """Per-row lateral transfer functions, cached (they depend only on the look and grid)."""
    key = (look.f0_mhz, look.focus_mm, look.aperture_mm, look.rx_f_number,
           look.sound_speed_m_s, z_first, dz, dx, n_rows, n_cols)
    H = _H_CACHE.get(key)
    if H is None:
        depth = np.maximum(z_first + np.arange(n_rows) * dz, 0.0)
        H = _psf.lateral_transfer(_psf.lateral_sigma_mm(look, depth) / dx, n_cols)
        H.flags.writeable = False
        if len(_H_CACHE) >= 8:
            _H_CACHE.pop(next(iter(_H_CACHE)))
        _H_CACHE[key] = H
    return H


def _specular_reach(sigma_px):
    return 4.0 * max(sigma_px, _psf.MIN_SIGMA_PX)


def render(phantom: Phantom, geometry: ImageGeometry, *, seed=0, look: Look | None = None,
           needle: Needle | None = None, shape=None) -> np.ndarray:
    """Render one envelope image (rows, cols) float32 of ``phantom`` on ``geometry``.

    geometry: an :class:`usfast.ImageGeometry` with a shape (or pass ``shape``); x lateral, z
        depth from the probe face, beams vertical (linear probe).
    seed: non-negative int; the same seed gives the same image bit for bit.
    look: imaging settings and needle appearance (default ``Look()``; ``Look.random(seed)``
        for variety).
    needle: an optional :class:`usfast.sim.Needle` in the geometry's mm; its ground truth is
        ``needle.truth(geometry)``.

    Returns the envelope in linear amplitude (tissue RMS = ``10**(look.gain_db/20)``); use
    :func:`to_bmode` for display. Raises InputError for bad arguments or a needle that has no
    visible part inside the image.
    """
    f = "render"
    if not isinstance(phantom, Phantom):
        raise fail(f, "phantom", "a usfast.sim.Phantom", type(phantom).__name__)
    if not isinstance(geometry, ImageGeometry):
        raise fail(f, "geometry", "a usfast.ImageGeometry", type(geometry).__name__)
    if shape is not None:
        geometry = geometry.with_shape(ck.shape2(f, "shape", shape))
    if geometry.shape is None:
        raise fail(f, "geometry", "an ImageGeometry with a shape (or pass shape=)", geometry)
    seed = ck.seed(f, "seed", seed)
    look = Look() if look is None else look
    if not isinstance(look, Look):
        raise fail(f, "look", "a usfast.sim.Look", type(look).__name__)
    if needle is not None:
        if not isinstance(needle, Needle):
            raise fail(f, "needle", "a usfast.sim.Needle", type(needle).__name__)
        if not needle.truth(geometry)["visible"]:
            raise fail(f, "needle", "a needle with a visible part inside the field of view "
                       f"{tuple(round(v, 3) for v in geometry.extent_mm())} mm",
                       f"tip {needle.tip_mm}, angle {needle.angle_deg}, side {needle.side!r}")
    eng = CartesianEngine(phantom, geometry, look, seed)
    return eng.frame(needle=needle, noise_seed=[seed, 2])
