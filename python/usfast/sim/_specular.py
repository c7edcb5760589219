"""Speckle-free (specular) echoes: the needle shaft and the top surfaces of fascia.

A specular reflector is drawn analytically as the PSF-blurred image of a straight segment: in
the frame of the local beam (lateral, axial) the PSF is a Gaussian with widths (sx, sz), so a
segment at an angle ``delta`` to the beam-perpendicular becomes a ridge whose cross-section has
variance ``sx^2 sin^2 delta + sz^2 cos^2 delta`` and whose ends are erf steps of variance
``sx^2 cos^2 delta + sz^2 sin^2 delta``. The ridge centre line is exactly the segment, so the
ground truth is where the bright line is. The complex value is added to the tissue field before
envelope detection, so the echo interferes with the surrounding speckle as a real one does.

Reverberation (comet tail): copies of the ridge shifted down the beam by multiples of a spacing,
decaying geometrically, each a quarter period (90 degrees) ahead of the previous one. Being in
quadrature, neighbouring echoes add their energies where they overlap instead of interfering,
so the tail brightens the region below the shaft without moving the shaft's own echo off the
true line (random phases would bias the ridge by up to a pixel when the copies overlap it).

Shadow: a factor < 1 on the scatterer amplitudes below the segment along each beam (applied
before the PSF, so its edges blur).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy.ndimage import gaussian_filter1d

_REACH = 4.5  # sigmas


@dataclass
class Specular:
    """A straight specular segment from ``p_back`` to ``p_front`` (mm, (x, z)).

    amp: peak amplitude (tissue RMS units) at normal incidence. phase: radians.
    gain_fn: incidence angle (deg) -> amplitude factor. along: callable of the distance s (mm)
    from p_back -> amplitude factor (texture, fade), or None. blob: extra amplitude (relative
    to amp) of a PSF-sized spot at p_front (bright tip). tail_*: comet tail.
    """

    p_back: np.ndarray
    p_front: np.ndarray
    amp: float
    phase: float = 0.0
    gain_fn: object = None
    along: object = None
    blob: float = 0.0
    tail_count: int = 0
    tail_decay: float = 0.5
    tail_spacing_mm: float = 0.7
    tail_fn: object = None

    def __post_init__(self):
        self.p_back = np.asarray(self.p_back, dtype=np.float64)
        self.p_front = np.asarray(self.p_front, dtype=np.float64)
        d = self.p_front - self.p_back
        self.length = float(math.hypot(d[0], d[1]))
        self.u = d / self.length if self.length > 0 else np.array([1.0, 0.0])


def evaluate(spec: Specular, x, z, sx, sz, sin_t, cos_t):
    """Real amplitude (without ``amp`` and phase) of the ridge at points (x, z) mm, with PSF
    sigmas sx (lateral), sz (axial) in mm and beam direction (sin_t, cos_t) per point; and the
    relative amplitude of its comet tail there (``tail_fn`` of the incidence, or 1)."""
    ux, uz = spec.u
    rx = x - spec.p_back[0]
    rz = z - spec.p_back[1]
    s = rx * ux + rz * uz
    d = rz * ux - rx * uz
    ub = ux * sin_t + uz * cos_t                 # sin(incidence)
    sd2 = ub * ub
    cd2 = 1.0 - sd2
    sx2, sz2 = sx * sx, sz * sz
    vperp = sx2 * sd2 + sz2 * cd2
    vpar = sx2 * cd2 + sz2 * sd2
    rpar = 1.0 / np.sqrt(2.0 * vpar)
    val = np.exp(-0.5 * d * d / vperp) * 0.5 * (special.erf(s * rpar)
                                                 - special.erf((s - spec.length) * rpar))
    if spec.along is not None:
        val = val * spec.along(s)
    if spec.blob:
        ex = x - spec.p_front[0]
        ez = z - spec.p_front[1]
        lat = ex * cos_t - ez * sin_t
        ax = ex * sin_t + ez * cos_t
        val = val + spec.blob * np.exp(-0.5 * (lat * lat / sx2 + ax * ax / sz2))
    tail = 1.0
    if spec.gain_fn is not None or spec.tail_fn is not None:
        inc = np.degrees(np.arcsin(np.minimum(np.abs(ub), 1.0)))
        if spec.gain_fn is not None:
            val = val * spec.gain_fn(inc)
        if spec.tail_fn is not None:
            tail = spec.tail_fn(inc)
    return val, tail


def add_to_field(F, spec: Specular, rows, cols, val, tail_step_rows: int):
    """Add ``amp * exp(j phase) * val`` at (rows, cols) of complex field F, plus the tail."""
    val, tail = val
    a = spec.amp * complex(math.cos(spec.phase), math.sin(spec.phase))
    F[rows, cols] += (a * val).astype(F.dtype)
    if spec.tail_count and tail_step_rows > 0:
        val = val * tail
        nr = F.shape[0]
        for k in range(1, spec.tail_count + 1):
            rr = rows + k * tail_step_rows
            ok = rr < nr
            if not ok.any():
                break
            ak = a * spec.tail_decay ** k * (1j ** k)
            F[rr[ok], cols[ok]] += (ak * val[ok]).astype(F.dtype)


def draw_cartesian(F, spec: Specular, geometry, sx_rows_mm, sz_mm):
    """Draw ``spec`` into complex field F (rows, cols) on ImageGeometry pixels; vertical beams
    (linear probe). ``sx_rows_mm``: lateral PSF sigma for each row."""
    nr, nc = F.shape
    dz, dx = geometry.spacing_mm
    z0, x0 = geometry.origin_mm
    reach = _REACH * max(float(np.max(sx_rows_mm)), sz_mm)
    xa = min(spec.p_back[0], spec.p_front[0]) - reach
    xb = max(spec.p_back[0], spec.p_front[0]) + reach
    za = min(spec.p_back[1], spec.p_front[1]) - reach
    zb = max(spec.p_back[1], spec.p_front[1]) + reach
    c0 = max(int(math.floor((xa - x0) / dx)), 0)
    c1 = min(int(math.ceil((xb - x0) / dx)) + 1, nc)
    r0 = max(int(math.floor((za - z0) / dz)), 0)
    step = max(int(round(spec.tail_spacing_mm / dz)), 1)
    r1 = min(int(math.ceil((zb - z0) / dz)) + 1, nr)
    if c1 <= c0 or r1 <= r0:
        return
    xs = (x0 + np.arange(c0, c1) * dx)[None, :]
    zs = (z0 + np.arange(r0, r1) * dz)[:, None]
    rr, cc = np.nonzero(_near(spec, xs, zs, reach))
    if rr.size == 0:
        return
    rows = rr + r0
    cols = cc + c0
    x = x0 + cols * dx
    z = z0 + rows * dz
    sx = np.asarray(sx_rows_mm)[rows]
    val = evaluate(spec, x, z, sx, sz_mm, 0.0, 1.0)
    add_to_field(F, spec, rows, cols, val, step)


def _near(spec: Specular, x, z, reach):
    """Mask of the points (x, z) (mm, broadcast) within ``reach`` of the segment of ``spec``."""
    ux, uz = spec.u
    rx = x - spec.p_back[0]
    rz = z - spec.p_back[1]
    d = rz * ux - rx * uz
    s = rx * ux + rz * uz
    return (np.abs(d) < reach) & (s > -reach) & (s < spec.length + reach)


def draw_points(F, spec: Specular, X, Z, sx_rows_mm, sz_mm, sin_cols, cos_cols, step_rows):
    """Draw ``spec`` into complex field F whose pixels lie at mm positions X, Z (same shape as
    F), with the beam of column j pointing along (sin_cols[j], cos_cols[j]) (beam space)."""
    reach = _REACH * max(float(np.max(sx_rows_mm)), sz_mm)
    rows, cols = np.nonzero(_near(spec, X, Z, reach))
    if rows.size == 0:
        return
    val = evaluate(spec, X[rows, cols], Z[rows, cols], np.asarray(sx_rows_mm)[rows], sz_mm,
                   sin_cols[cols], cos_cols[cols])
    add_to_field(F, spec, rows, cols, val, step_rows)


def shadow_factor(shape, spec: Specular, to_rc, strength, onset_rows, step_mm):
    """Multiplicative amplitude factor for the region below ``spec`` along each column (beam).

    to_rc: callable mapping mm points (x, z) arrays to fractional (row, col) arrays of the
    target array. Returns ``(row_slice, col_slice, factor)`` or None when nothing is shadowed.
    """
    if strength <= 0 or spec.length <= 0:
        return None
    nr, nc = shape
    n = max(int(spec.length / step_mm) + 2, 2)
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = spec.p_back[None, :] + t * (spec.p_front - spec.p_back)[None, :]
    r, c = to_rc(pts[:, 0], pts[:, 1])
    ci = np.rint(c).astype(np.int64)
    ok = (ci >= 0) & (ci < nc) & (r < nr) & np.isfinite(r)
    if not ok.any():
        return None
    cross = np.full(nc, np.inf)
    np.minimum.at(cross, ci[ok], r[ok])
    cov = np.nonzero(np.isfinite(cross))[0]
    a = max(int(cov[0]) - 4, 0)
    b = min(int(cov[-1]) + 5, nc)
    cols = np.arange(a, b)
    S = np.isfinite(cross[a:b]).astype(np.float64) * strength
    S = gaussian_filter1d(S, 1.0, mode="constant")
    cr = np.interp(cols, cov, cross[cov])
    row0 = min(max(int(math.floor(cr.min())), 0), nr - 1)
    rr = np.arange(row0, nr, dtype=np.float32)[:, None]
    ramp = np.clip((rr - cr[None, :].astype(np.float32) - onset_rows) / 1.5 + 0.5, 0.0, 1.0)
    fac = 1.0 - S[None, :].astype(np.float32) * ramp
    return slice(row0, nr), slice(a, b), fac.astype(np.float32)
