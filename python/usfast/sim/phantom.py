"""Tissue phantoms: echogenicity maps with random scatterers.

A :class:`Phantom` describes tissue in millimetres in the image plane (points ``(x, z)``: x
lateral, z depth, 0 at the probe face): a homogeneous background, hypo- and hyperechoic
:class:`Inclusion` s (cysts, vessels with bright walls), horizontal or slightly tilted bright
:class:`Layer` s (fascia: a speckled hyperechoic band plus a smooth specular line, the classic
false needle), a smooth random texture, depth attenuation and the scatterer density.

Echogenicity is a linear *intensity* factor (0 dB = background tissue); the envelope of a
region with echogenicity ``e`` has RMS ``sqrt(e)`` times that of the background.

Scatterer density: ``density`` is the mean number of scatterers per resolution cell (axial FWHM
x lateral FWHM at the focus, see :func:`usfast.sim.psf.resolution_cell_mm2`). ``None`` (the
default) means many scatterers per cell: fully developed speckle, Rayleigh envelope, mean/std
= 1.91. Low densities (about 1 per cell or less) give partially developed speckle: a
K-distributed envelope whose mean/std falls below 1.91, dark gaps with sparse bright spots.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from . import _check as ck

__all__ = ["Phantom", "Inclusion", "Layer"]


def _db_to_intensity(db):
    return 0.0 if db == -math.inf else 10.0 ** (db / 10.0)


def _is_grid(x, z):
    return x.ndim == 2 and z.ndim == 2 and x.shape[0] == 1 and z.shape[1] == 1


def _block(x, z, x_lo, x_hi, z_lo, z_hi):
    """Slices of a grid (x row vector, z column vector, both sorted ascending) covering a box."""
    xv, zv = x[0], z[:, 0]
    c0, c1 = np.searchsorted(xv, x_lo), np.searchsorted(xv, x_hi, side="right")
    r0, r1 = np.searchsorted(zv, z_lo), np.searchsorted(zv, z_hi, side="right")
    return slice(r0, r1), slice(c0, c1)


@dataclass(frozen=True)
class Inclusion:
    """An elliptical region of different echogenicity (cyst, vessel, lesion).

    center_mm: (x, z). radius_mm: a radius or ``(rx, rz)`` semi-axes (before rotation).
    contrast_db: intensity relative to the surrounding tissue; ``-inf`` is anechoic.
    angle_deg: rotation of the ellipse. wall_db: optional bright rim (vessel wall) of width
    wall_mm, relative to the surroundings. edge_mm: width of the soft edge.
    """

    center_mm: tuple
    radius_mm: float | tuple = 3.0
    contrast_db: float = -math.inf
    angle_deg: float = 0.0
    wall_db: float | None = None
    wall_mm: float = 0.3
    edge_mm: float = 0.05

    def __post_init__(self):
        f = "Inclusion"
        s = object.__setattr__
        s(self, "center_mm", ck.point(f, "center_mm", self.center_mm))
        r = self.radius_mm
        if np.ndim(r) == 0:
            r = (r, r)
        if len(tuple(r)) != 2:
            raise ck.fail(f, "radius_mm", "a radius or (rx, rz) of positive numbers", r)
        s(self, "radius_mm", (ck.positive(f, "radius_mm", r[0]), ck.positive(f, "radius_mm", r[1])))
        if self.contrast_db != -math.inf:
            s(self, "contrast_db", ck.number(f, "contrast_db", self.contrast_db))
        s(self, "angle_deg", ck.number(f, "angle_deg", self.angle_deg))
        if self.wall_db is not None:
            s(self, "wall_db", ck.number(f, "wall_db", self.wall_db))
        s(self, "wall_mm", ck.positive(f, "wall_mm", self.wall_mm))
        s(self, "edge_mm", ck.positive(f, "edge_mm", self.edge_mm))

    def _apply(self, echo, x, z):
        cx, cz = self.center_mm
        rx, rz = self.radius_mm
        reach = max(rx, rz) + self.wall_mm + 2 * self.edge_mm
        if _is_grid(x, z):
            sl = _block(x, z, cx - reach, cx + reach, cz - reach, cz + reach)
            xs, zs, e = x[:, sl[1]], z[sl[0], :], echo[sl]
            if e.size == 0:
                return
        else:
            xs, zs, e = x, z, echo
        a = math.radians(self.angle_deg)
        dx, dz = xs - cx, zs - cz
        u = (dx * math.cos(a) + dz * math.sin(a)) / rx
        v = (-dx * math.sin(a) + dz * math.cos(a)) / rz
        rn = np.sqrt(u * u + v * v)
        reff = math.sqrt(rx * rz)
        dist = (rn - 1.0) * reff  # ~ signed distance to the boundary (mm), < 0 inside
        g = _db_to_intensity(self.contrast_db)
        w = np.clip(0.5 - dist / self.edge_mm, 0.0, 1.0)
        fac = 1.0 + w * (g - 1.0)
        if self.wall_db is not None:
            gw = _db_to_intensity(self.wall_db)
            ww = np.clip(0.5 - (np.abs(dist) - self.wall_mm / 2) / self.edge_mm, 0.0, 1.0)
            fac = fac * (1.0 + ww * (gw - 1.0))
        e *= fac.astype(np.float32)


@dataclass(frozen=True)
class Layer:
    """A fascia-like bright layer: a straight band across the image.

    depth_mm: depth of the layer's centre line at lateral position ``x_mm``.
    tilt_deg: slope of the layer, positive deeper to the right (|tilt| < 45; fascia are
        usually within 5 degrees of horizontal).
    thickness_mm: thickness of the hyperechoic band. contrast_db: its echogenicity relative to
        the background (speckled part).
    specular_db: amplitude of the smooth, speckle-free echo of the layer's top surface above
        tissue RMS (``None``: none). It has no comet tail and no shadow.
    span_mm: ``(x_start, x_end)`` of the layer; ``None`` runs across the whole image.
    patchiness: relative modulation of the specular echo along the layer (0 = uniform).
    texture_seed: seed of that modulation (it is part of the tissue, so it is fixed).
    """

    depth_mm: float
    tilt_deg: float = 0.0
    thickness_mm: float = 0.5
    contrast_db: float = 6.0
    specular_db: float | None = 15.0
    x_mm: float = 0.0
    span_mm: tuple | None = None
    patchiness: float = 0.3
    texture_seed: int = 0

    def __post_init__(self):
        f = "Layer"
        s = object.__setattr__
        s(self, "depth_mm", ck.number(f, "depth_mm", self.depth_mm))
        s(self, "tilt_deg", ck.in_range(f, "tilt_deg", self.tilt_deg, -45.0, 45.0,
                                        lo_open=True, hi_open=True))
        s(self, "thickness_mm", ck.positive(f, "thickness_mm", self.thickness_mm))
        s(self, "contrast_db", ck.number(f, "contrast_db", self.contrast_db))
        if self.specular_db is not None:
            s(self, "specular_db", ck.number(f, "specular_db", self.specular_db))
        s(self, "x_mm", ck.number(f, "x_mm", self.x_mm))
        if self.span_mm is not None:
            a, b = ck.point(f, "span_mm", self.span_mm)
            if not b > a:
                raise ck.fail(f, "span_mm", "(x_start, x_end) with x_end > x_start",
                              self.span_mm)
            s(self, "span_mm", (a, b))
        s(self, "patchiness", ck.in_range(f, "patchiness", self.patchiness, 0.0, 1.0))
        s(self, "texture_seed", ck.seed(f, "texture_seed", self.texture_seed))

    def z_at(self, x_mm):
        return self.depth_mm + (np.asarray(x_mm, dtype=np.float64) - self.x_mm) * math.tan(
            math.radians(self.tilt_deg))

    def _span(self):
        return self.span_mm if self.span_mm is not None else (-1e4, 1e4)

    def _apply(self, echo, x, z):
        g = _db_to_intensity(self.contrast_db)
        x0, x1 = self._span()
        if _is_grid(x, z):
            xv = x[0]
            xa, xb = max(x0, xv[0]), min(x1, xv[-1])
            if xb < xa:
                return
            za, zb = self.z_at([xa, xb])
            reach = self.thickness_mm + 0.2
            sl = _block(x, z, xa - 0.2, xb + 0.2, min(za, zb) - reach, max(za, zb) + reach)
            xs, zs, e = x[:, sl[1]], z[sl[0], :], echo[sl]
            if e.size == 0:
                return
        else:
            xs, zs, e = x, z, echo
        c = math.cos(math.radians(self.tilt_deg))
        d = np.abs(zs - self.z_at(xs)) * c
        edge = 0.05
        w = np.clip(0.5 - (d - self.thickness_mm / 2) / edge, 0.0, 1.0)
        if self.span_mm is not None:
            w = w * np.clip(0.5 + (xs - x0) / 0.2, 0, 1) * np.clip(0.5 + (x1 - xs) / 0.2, 0, 1)
        e *= (1.0 + w * (g - 1.0)).astype(np.float32)

    def patch_profile(self, x_mm):
        """Amplitude modulation (>= 0.1) of the specular echo at lateral positions x_mm."""
        x = np.asarray(x_mm, dtype=np.float64)
        if self.patchiness == 0:
            return np.ones_like(x)
        r = np.random.default_rng(np.random.SeedSequence([self.texture_seed, 7]))
        lam = r.uniform(3.0, 12.0, 3)
        ph = r.uniform(0, 2 * math.pi, 3)
        m = sum(np.sin(2 * math.pi * x / lam[k] + ph[k]) for k in range(3)) / math.sqrt(1.5)
        return np.maximum(1.0 + self.patchiness * m, 0.1)


@dataclass(frozen=True)
class Phantom:
    """Tissue content (see the module docstring).

    background_db: echogenicity of the background (0 dB = standard tissue).
    density: scatterers per resolution cell; ``None`` = fully developed speckle.
    attenuation_db_cm_mhz: one-way attenuation coefficient; the echo from depth z is
        attenuated by ``2 * a * f0 * z`` dB (TGC in :class:`Look` may make it up).
    inclusions, layers: sequences of :class:`Inclusion` and :class:`Layer`.
    texture_db, texture_mm, texture_seed: standard deviation (dB) and correlation length of a
        smooth random variation of the background echogenicity (0 = homogeneous).
    """

    background_db: float = 0.0
    density: float | None = None
    attenuation_db_cm_mhz: float = 0.5
    inclusions: tuple = ()
    layers: tuple = ()
    texture_db: float = 0.0
    texture_mm: float = 4.0
    texture_seed: int = 0

    def __post_init__(self):
        f = "Phantom"
        s = object.__setattr__
        s(self, "background_db", ck.number(f, "background_db", self.background_db))
        if self.density is not None:
            s(self, "density", ck.positive(f, "density", self.density))
        s(self, "attenuation_db_cm_mhz", ck.nonneg(f, "attenuation_db_cm_mhz",
                                                   self.attenuation_db_cm_mhz))
        inc = tuple(self.inclusions)
        for i in inc:
            if not isinstance(i, Inclusion):
                raise ck.fail(f, "inclusions", "a sequence of usfast.sim.Inclusion", repr(i))
        lay = tuple(self.layers)
        for i in lay:
            if not isinstance(i, Layer):
                raise ck.fail(f, "layers", "a sequence of usfast.sim.Layer", repr(i))
        s(self, "inclusions", inc)
        s(self, "layers", lay)
        s(self, "texture_db", ck.nonneg(f, "texture_db", self.texture_db))
        s(self, "texture_mm", ck.positive(f, "texture_mm", self.texture_mm))
        s(self, "texture_seed", ck.seed(f, "texture_seed", self.texture_seed))

    def replace(self, **changes) -> "Phantom":
        return replace(self, **changes)

    # -- maps -------------------------------------------------------------------------------
    def echogenicity(self, x_mm, z_mm) -> np.ndarray:
        """Linear intensity echogenicity at points ``(x_mm, z_mm)`` (broadcast arrays), float32.

        A row vector of x and a column vector of z (a grid) is evaluated block-wise, fast.
        """
        x = np.asarray(x_mm, dtype=np.float64)
        z = np.asarray(z_mm, dtype=np.float64)
        if x.ndim < 2 or z.ndim < 2:
            x, z = np.broadcast_arrays(x, z)
            x, z = np.atleast_2d(x), np.atleast_2d(z)
            out_shape = np.broadcast_shapes(np.shape(x_mm), np.shape(z_mm))
        else:
            out_shape = None
        shape = np.broadcast_shapes(x.shape, z.shape)
        echo = np.full(shape, 10.0 ** (self.background_db / 10.0), dtype=np.float32)
        if self.texture_db > 0:
            echo *= self._texture(x, z)
        for inc in self.inclusions:
            inc._apply(echo, x, z)
        for lay in self.layers:
            lay._apply(echo, x, z)
        return echo.reshape(out_shape) if out_shape is not None else echo

    def _texture(self, x, z):
        r = np.random.default_rng(np.random.SeedSequence([self.texture_seed, 3]))
        k_modes = 8
        kk = r.normal(0.0, 1.0 / self.texture_mm, (k_modes, 2))
        ph = r.uniform(0, 2 * math.pi, k_modes)
        amp = self.texture_db * math.sqrt(2.0 / k_modes)
        if _is_grid(x, z):
            # cos(a + b) = cos a cos b - sin a sin b: outer products of row and column vectors
            # (element-wise on purpose: a BLAS product can stall for milliseconds when another
            # OpenMP runtime shares the two cores)
            a = kk[:, 0][:, None] * x[0][None, :] + ph[:, None]        # (K, cols)
            b = kk[:, 1][:, None] * z[:, 0][None, :]                   # (K, rows)
            ca, sa = np.cos(a).astype(np.float32), np.sin(a).astype(np.float32)
            cb, sb = np.cos(b).astype(np.float32), np.sin(b).astype(np.float32)
            db = np.zeros((z.shape[0], x.shape[1]), dtype=np.float32)
            tmp = np.empty_like(db)
            for k in range(k_modes):
                db += np.multiply(cb[k][:, None], ca[k][None, :], out=tmp)
                db -= np.multiply(sb[k][:, None], sa[k][None, :], out=tmp)
        else:
            db = np.zeros(np.broadcast_shapes(x.shape, z.shape), dtype=np.float32)
            for k in range(k_modes):
                db += np.cos(kk[k, 0] * x + kk[k, 1] * z + ph[k]).astype(np.float32)
        db *= np.float32(amp * math.log(10.0) / 10.0)
        return np.exp(db, out=db)

    def attenuation_db(self, depth_mm, f0_mhz):
        """Two-way attenuation (dB) of the echo from ``depth_mm`` at ``f0_mhz``."""
        d = np.maximum(np.asarray(depth_mm, dtype=np.float64), 0.0)
        return 2.0 * self.attenuation_db_cm_mhz * f0_mhz * d / 10.0

    # -- variety ----------------------------------------------------------------------------
    @classmethod
    def random(cls, seed=0, extent_mm=(-20.0, 20.0, 0.0, 40.0), *, layers=None,
               inclusions=None, **fixed) -> "Phantom":
        """A phantom drawn from ``seed`` for a field of view ``extent_mm`` =
        ``(x_min, x_max, z_min, z_max)`` (or an ImageGeometry with a shape, or a ProbeGeometry).

        Draws: density fully developed (70 %) or 2-10 per cell; attenuation 0.3-0.7
        dB/cm/MHz; texture 0-2 dB; 0-3 inclusions (anechoic cysts, hypo/hyperechoic lesions,
        vessels with bright walls) and 0-3 fascia layers (tilt within 5 degrees, band +3..+10
        dB, specular +8..+22 dB). ``layers`` / ``inclusions`` fix the counts.
        """
        f = "Phantom.random"
        rng = ck.rng_from(f, "seed", seed, 202)
        x0, x1, z0, z1 = _extent(f, extent_mm)
        w, h = x1 - x0, z1 - z0
        u = rng.uniform
        n_inc = int(rng.integers(0, 4)) if inclusions is None else ck.count(f, "inclusions",
                                                                            inclusions)
        n_lay = int(rng.integers(0, 4)) if layers is None else ck.count(f, "layers", layers)
        incs = []
        for _ in range(n_inc):
            kind = rng.integers(4)
            c = (u(x0 + 0.1 * w, x1 - 0.1 * w), u(z0 + 0.2 * h, z1 - 0.1 * h))
            if kind == 0:
                incs.append(Inclusion(c, u(1.5, 4.0), -math.inf))
            elif kind == 1:
                incs.append(Inclusion(c, (u(2.0, 5.0), u(1.5, 4.0)), u(-15.0, -4.0),
                                      angle_deg=u(-30, 30), edge_mm=u(0.05, 1.0)))
            elif kind == 2:
                incs.append(Inclusion(c, (u(2.0, 5.0), u(1.5, 4.0)), u(3.0, 8.0),
                                      angle_deg=u(-30, 30), edge_mm=u(0.05, 1.0)))
            else:
                incs.append(Inclusion(c, (u(2.0, 4.5), u(1.5, 3.0)), -math.inf,
                                      wall_db=u(6.0, 10.0), wall_mm=u(0.2, 0.5)))
        lays = []
        for _ in range(n_lay):
            span = None
            if rng.random() < 0.4:
                a = u(x0 - 0.2 * w, x0 + 0.3 * w)
                span = (a, a + u(0.5, 1.2) * w)
            lays.append(Layer(u(z0 + 0.1 * h, z1 - 0.15 * h), tilt_deg=u(-5.0, 5.0),
                              thickness_mm=u(0.3, 0.8), contrast_db=u(3.0, 10.0),
                              specular_db=u(8.0, 22.0), x_mm=u(x0, x1), span_mm=span,
                              patchiness=u(0.1, 0.5), texture_seed=int(rng.integers(2**31))))
        v = dict(density=None if rng.random() < 0.7 else u(2.0, 10.0),
                 attenuation_db_cm_mhz=u(0.3, 0.7), inclusions=tuple(incs), layers=tuple(lays),
                 texture_db=u(0.0, 2.0), texture_mm=u(2.0, 6.0),
                 texture_seed=int(rng.integers(2**31)))
        v.update(fixed)
        return cls(**v)


def _extent(func, e):
    from ..geometry import ImageGeometry, ProbeGeometry
    if isinstance(e, ImageGeometry):
        if e.shape is None:
            raise ck.fail(func, "extent_mm", "an ImageGeometry with a shape", e)
        return e.extent_mm()
    if isinstance(e, ProbeGeometry):
        return e.extent_mm()
    try:
        t = tuple(float(a) for a in e)
    except (TypeError, ValueError):
        raise ck.fail(func, "extent_mm", "(x_min, x_max, z_min, z_max)", repr(e)) from None
    if len(t) != 4 or not (t[1] > t[0] and t[3] > t[2]) or not all(map(math.isfinite, t)):
        raise ck.fail(func, "extent_mm", "(x_min, x_max, z_min, z_max) with max > min", e)
    return t
