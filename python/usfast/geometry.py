"""Geometry of beam space and of scan-converted images.

Conventions (DESIGN.md): things shaped like arrays (spacing, origin, shapes) follow array axis
order ``(z, x)`` = (rows/depth, columns/lateral). Points are ``(x, z)``: x lateral to the right
(column), z depth downward (row). Lengths in millimetres, angles in degrees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._errors import fail

__all__ = ["ImageGeometry", "ProbeGeometry"]


def _positive(func, name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise fail(func, name, "a positive number", repr(v)) from None
    if not (math.isfinite(v) and v > 0):
        raise fail(func, name, "a positive finite number", v)
    return v


def _finite(func, name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise fail(func, name, "a finite number", repr(v)) from None
    if not math.isfinite(v):
        raise fail(func, name, "a finite number", v)
    return v


@dataclass(frozen=True)
class ImageGeometry:
    """Pixel grid of a scan-converted image.

    spacing_mm: ``(dz, dx)`` millimetres per pixel along rows (depth) and columns (lateral).
    origin_mm:  ``(z0, x0)`` position in mm of the centre of pixel (row 0, col 0).
    shape:      optional ``(rows, cols)`` of the image this geometry describes.

    Pixel (col, row) = point (x_px, z_px) maps to ``x_mm = x0 + x_px*dx``, ``z_mm = z0 + z_px*dz``.
    """

    spacing_mm: tuple = (0.1, 0.1)
    origin_mm: tuple = (0.0, 0.0)
    shape: tuple | None = None

    def __post_init__(self):
        f = "ImageGeometry"
        sp = tuple(self.spacing_mm) if np.ndim(self.spacing_mm) else (self.spacing_mm,) * 2
        if len(sp) != 2:
            raise fail(f, "spacing_mm", "(dz, dx) of two positive numbers", self.spacing_mm)
        sp = (_positive(f, "spacing_mm", sp[0]), _positive(f, "spacing_mm", sp[1]))
        org = tuple(self.origin_mm)
        if len(org) != 2:
            raise fail(f, "origin_mm", "(z0, x0) of two finite numbers", self.origin_mm)
        org = (_finite(f, "origin_mm", org[0]), _finite(f, "origin_mm", org[1]))
        object.__setattr__(self, "spacing_mm", sp)
        object.__setattr__(self, "origin_mm", org)
        if self.shape is not None:
            shp = tuple(int(s) for s in self.shape)
            if len(shp) != 2 or min(shp) < 1:
                raise fail(f, "shape", "(rows, cols) of two positive integers", self.shape)
            object.__setattr__(self, "shape", shp)

    # -- conversions ------------------------------------------------------------------------
    def px_to_mm(self, pts_px):
        """Points ``(..., 2)`` as (x, z) in pixels -> (x, z) in mm (float64)."""
        p = np.asarray(pts_px, dtype=np.float64)
        dz, dx = self.spacing_mm
        z0, x0 = self.origin_mm
        out = np.empty_like(p)
        out[..., 0] = x0 + p[..., 0] * dx
        out[..., 1] = z0 + p[..., 1] * dz
        return out

    def mm_to_px(self, pts_mm):
        """Points ``(..., 2)`` as (x, z) in mm -> (x, z) in (fractional) pixels (float64)."""
        p = np.asarray(pts_mm, dtype=np.float64)
        dz, dx = self.spacing_mm
        z0, x0 = self.origin_mm
        out = np.empty_like(p)
        out[..., 0] = (p[..., 0] - x0) / dx
        out[..., 1] = (p[..., 1] - z0) / dz
        return out

    def with_shape(self, shape) -> "ImageGeometry":
        return ImageGeometry(self.spacing_mm, self.origin_mm, tuple(shape))

    def extent_mm(self, shape=None):
        """``(x_min, x_max, z_min, z_max)`` of pixel centres in mm."""
        shape = shape or self.shape
        if shape is None:
            raise fail("ImageGeometry.extent_mm", "shape", "a shape (rows, cols)")
        dz, dx = self.spacing_mm
        z0, x0 = self.origin_mm
        return (x0, x0 + (shape[1] - 1) * dx, z0, z0 + (shape[0] - 1) * dz)

    def check_image(self, func: str, arg: str, shape) -> None:
        """Raise InputError when this geometry carries a shape that differs from ``shape``."""
        if self.shape is not None and tuple(shape[-2:]) != self.shape:
            raise fail(func, arg, f"an image of shape {self.shape} to match its geometry",
                       tuple(shape[-2:]))

    def to_dict(self):
        return {"spacing_mm": list(self.spacing_mm), "origin_mm": list(self.origin_mm),
                "shape": list(self.shape) if self.shape else None}


_KINDS = ("linear", "curvilinear", "phased")


@dataclass(frozen=True)
class ProbeGeometry:
    """Beam space of a probe: where each RF sample ``(sample i, line j)`` lies in the image plane.

    kind: ``"linear"``, ``"curvilinear"`` or ``"phased"``.
    n_lines: number of beamformed lines (columns of the RF array).
    start_depth_mm, end_depth_mm: depth of the first and last sample along each beam, measured
        from the probe face (the element arc for curvilinear probes, the apex for phased).
    pitch_mm: line spacing of a linear probe.
    radius_mm: radius of curvature of a curvilinear probe (0 for others).
    sector_deg: full angle spanned by the lines of curvilinear and phased probes.
    sound_speed_m_s: speed of sound used to turn time into depth.

    Image-plane coordinates (mm): x lateral (0 at the probe centre), z depth (0 at the probe face
    at its centre, downward).
    """

    kind: str
    n_lines: int
    start_depth_mm: float
    end_depth_mm: float
    pitch_mm: float = 0.0
    radius_mm: float = 0.0
    sector_deg: float = 0.0
    sound_speed_m_s: float = 1540.0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        f = "ProbeGeometry"
        if self.kind not in _KINDS:
            raise fail(f, "kind", f"one of {_KINDS}", repr(self.kind))
        if int(self.n_lines) != self.n_lines or self.n_lines < 1:
            raise fail(f, "n_lines", "a positive integer", self.n_lines)
        if not (math.isfinite(self.start_depth_mm) and self.start_depth_mm >= 0):
            raise fail(f, "start_depth_mm", "a finite depth >= 0", self.start_depth_mm)
        if not (math.isfinite(self.end_depth_mm) and self.end_depth_mm > self.start_depth_mm):
            raise fail(f, "end_depth_mm", "a finite depth > start_depth_mm", self.end_depth_mm)
        _positive(f, "sound_speed_m_s", self.sound_speed_m_s)
        if self.kind == "linear":
            _positive(f, "pitch_mm", self.pitch_mm)
        else:
            if not (0 < self.sector_deg < 180):
                raise fail(f, "sector_deg", "a sector angle in (0, 180) degrees", self.sector_deg)
        if self.kind == "curvilinear":
            _positive(f, "radius_mm", self.radius_mm)
        elif self.radius_mm < 0:
            raise fail(f, "radius_mm", "a radius >= 0", self.radius_mm)

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def linear(cls, *, n_elements=None, n_lines=None, pitch_mm=0.3, width_mm=None,
               start_depth_mm=0.0, end_depth_mm=40.0, sound_speed_m_s=1540.0):
        """Linear array: lines parallel, ``pitch_mm`` apart (or ``width_mm`` across all lines)."""
        n = n_lines if n_lines is not None else n_elements
        if n is None:
            raise fail("ProbeGeometry.linear", "n_elements", "the element or line count")
        if width_mm is not None:
            pitch_mm = _positive("ProbeGeometry.linear", "width_mm", width_mm) / max(int(n) - 1, 1)
        return cls("linear", int(n), float(start_depth_mm), float(end_depth_mm),
                   pitch_mm=float(pitch_mm), sound_speed_m_s=float(sound_speed_m_s))

    @classmethod
    def curvilinear(cls, *, n_elements=None, n_lines=None, radius_mm=40.0, sector_deg=60.0,
                    pitch_mm=None, start_depth_mm=0.0, end_depth_mm=120.0,
                    sound_speed_m_s=1540.0):
        """Convex array of ``radius_mm``; lines fan over ``sector_deg`` (or ``pitch_mm`` along
        the arc between adjacent lines)."""
        n = n_lines if n_lines is not None else n_elements
        if n is None:
            raise fail("ProbeGeometry.curvilinear", "n_elements", "the element or line count")
        radius_mm = float(radius_mm)
        if radius_mm <= 0 or not math.isfinite(radius_mm):
            raise fail("ProbeGeometry.curvilinear", "radius_mm", "a positive radius", radius_mm)
        if pitch_mm is not None:
            sector_deg = math.degrees(float(pitch_mm) * (int(n) - 1) / radius_mm)
        return cls("curvilinear", int(n), float(start_depth_mm), float(end_depth_mm),
                   radius_mm=radius_mm, sector_deg=float(sector_deg),
                   sound_speed_m_s=float(sound_speed_m_s))

    @classmethod
    def phased(cls, *, n_lines=128, sector_deg=90.0, start_depth_mm=0.0, end_depth_mm=150.0,
               sound_speed_m_s=1540.0):
        """Phased array: lines steered from one apex over ``sector_deg``."""
        return cls("phased", int(n_lines), float(start_depth_mm), float(end_depth_mm),
                   sector_deg=float(sector_deg), sound_speed_m_s=float(sound_speed_m_s))

    # -- beam space -> image plane -----------------------------------------------------------
    def line_angles_deg(self):
        """Steering angle of each line (0 for linear probes)."""
        if self.kind == "linear":
            return np.zeros(self.n_lines)
        if self.n_lines == 1:
            return np.zeros(1)
        return np.linspace(-self.sector_deg / 2, self.sector_deg / 2, self.n_lines)

    def sample_depths_mm(self, n_samples: int):
        """Depth along the beam of each of ``n_samples`` samples, start to end inclusive."""
        if n_samples == 1:
            return np.array([self.start_depth_mm])
        return np.linspace(self.start_depth_mm, self.end_depth_mm, int(n_samples))

    def beam_to_mm(self, sample, line, n_samples: int):
        """Fractional (sample, line) indices -> image-plane (x_mm, z_mm) arrays."""
        sample = np.asarray(sample, dtype=np.float64)
        line = np.asarray(line, dtype=np.float64)
        dr = (self.end_depth_mm - self.start_depth_mm) / max(n_samples - 1, 1)
        r = self.start_depth_mm + sample * dr
        if self.kind == "linear":
            return (line - (self.n_lines - 1) / 2.0) * self.pitch_mm, r
        dth = math.radians(self.sector_deg) / max(self.n_lines - 1, 1)
        th = (line - (self.n_lines - 1) / 2.0) * dth
        rr = r + self.radius_mm
        return rr * np.sin(th), rr * np.cos(th) - self.radius_mm

    def mm_to_beam(self, x_mm, z_mm, n_samples: int):
        """Image-plane (x_mm, z_mm) -> fractional (sample, line) indices (inverse of beam_to_mm)."""
        x = np.asarray(x_mm, dtype=np.float64)
        z = np.asarray(z_mm, dtype=np.float64)
        dr = (self.end_depth_mm - self.start_depth_mm) / max(n_samples - 1, 1)
        if self.kind == "linear":
            return (z - self.start_depth_mm) / dr, x / self.pitch_mm + (self.n_lines - 1) / 2.0
        zz = z + self.radius_mm
        rr = np.hypot(x, zz)
        th = np.arctan2(x, zz)
        dth = math.radians(self.sector_deg) / max(self.n_lines - 1, 1)
        return (rr - self.radius_mm - self.start_depth_mm) / dr, th / dth + (self.n_lines - 1) / 2.0

    def extent_mm(self):
        """``(x_min, x_max, z_min, z_max)`` of the field of view in mm."""
        if self.kind == "linear":
            half = (self.n_lines - 1) / 2.0 * self.pitch_mm
            return (-half, half, self.start_depth_mm, self.end_depth_mm)
        half = math.radians(self.sector_deg) / 2
        r0 = self.radius_mm + self.start_depth_mm
        r1 = self.radius_mm + self.end_depth_mm
        xmax = r1 * math.sin(half)
        zmin = r0 * math.cos(half) - self.radius_mm
        return (-xmax, xmax, min(zmin, self.start_depth_mm), self.end_depth_mm)

    def to_dict(self):
        return {"kind": self.kind, "n_lines": self.n_lines, "start_depth_mm": self.start_depth_mm,
                "end_depth_mm": self.end_depth_mm, "pitch_mm": self.pitch_mm,
                "radius_mm": self.radius_mm, "sector_deg": self.sector_deg,
                "sound_speed_m_s": self.sound_speed_m_s}
