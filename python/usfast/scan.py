"""Scan conversion: beam-space data ``(samples, lines)`` to a Cartesian image in millimetres.

``ScanConverter`` is a plan: the bilinear sampling map is computed once (float64 geometry, stored
as float32 (row, col) pairs), kept on each device it is used on, and every frame after that is
one pass of the ``remap`` kernel (kernels/scan.cuh).
"""
from __future__ import annotations

import math

import numpy as np

from ._dispatch import Call, frames_of, i32, i64
from ._errors import fail
from .geometry import ImageGeometry, ProbeGeometry
from .reference import bmode as ref

__all__ = ["ScanConverter"]


class ScanConverter:
    """Plan for scan-converting frames of one probe geometry.

    geometry: the :class:`ProbeGeometry` of the beam-space input.
    in_shape: ``(samples, lines)`` of the input (lines must equal ``geometry.n_lines``), or
        just the sample count.
    out_shape: ``(rows, cols)`` of the output image (square pixels chosen to fit the field of
        view), or pixel_mm: pixel size in mm (the shape follows from the field of view).
    Interpolate envelope or display (dB) data, never RF. Pixels outside the field of view are
    0; ``mask`` is True inside. ``image_geometry`` describes the output in mm.
    """

    def __init__(self, geometry: ProbeGeometry, in_shape, *, out_shape=None, pixel_mm=None):
        fn = "ScanConverter"
        if not isinstance(geometry, ProbeGeometry):
            raise fail(fn, "geometry", "a usfast.ProbeGeometry", type(geometry).__name__)
        shp = (int(in_shape), geometry.n_lines) if np.ndim(in_shape) == 0 else tuple(
            int(s) for s in in_shape)
        if len(shp) != 2 or shp[0] < 2 or shp[1] < 1:
            raise fail(fn, "in_shape", "(samples >= 2, lines >= 1)", in_shape)
        if shp[1] != geometry.n_lines:
            raise fail(fn, "in_shape", f"{geometry.n_lines} lines to match geometry.n_lines",
                       shp[1])
        if (out_shape is None) == (pixel_mm is None):
            raise fail(fn, "out_shape", "exactly one of out_shape or pixel_mm")
        x0, x1, z0, z1 = geometry.extent_mm()
        if pixel_mm is not None:
            px = float(pixel_mm)
            if not (math.isfinite(px) and px > 0):
                raise fail(fn, "pixel_mm", "a positive pixel size in mm", pixel_mm)
            rows = int(math.floor((z1 - z0) / px)) + 1
            cols = int(math.floor((x1 - x0) / px)) + 1
            if rows * cols > 64e6:
                raise fail(fn, "pixel_mm", "a pixel size giving at most 64 Mpixel", pixel_mm)
        else:
            o = tuple(int(s) for s in np.atleast_1d(out_shape))
            if len(o) != 2 or min(o) < 2:
                raise fail(fn, "out_shape", "(rows >= 2, cols >= 2)", out_shape)
            rows, cols = o
            px = max((z1 - z0) / (rows - 1), (x1 - x0) / (cols - 1))
        # centre the field of view laterally, start at its top
        xc = 0.5 * (x0 + x1)
        origin = (z0, xc - px * (cols - 1) / 2.0)
        self.probe_geometry = geometry
        self.in_shape = shp
        self.out_shape = (rows, cols)
        self.image_geometry = ImageGeometry(spacing_mm=(px, px), origin_mm=origin,
                                            shape=(rows, cols))
        zz, xx = np.meshgrid(origin[0] + px * np.arange(rows), origin[1] + px * np.arange(cols),
                             indexing="ij")
        s, l = geometry.mm_to_beam(xx, zz, shp[0])
        eps = 1e-6
        inside = (s >= -eps) & (s <= shp[0] - 1 + eps) & (l >= -eps) & (l <= shp[1] - 1 + eps)
        s = np.clip(s, 0, shp[0] - 1)
        l = np.clip(l, 0, shp[1] - 1)
        m = np.empty((rows, cols, 2), np.float32)
        m[..., 0] = np.where(inside, s, -1.0)
        m[..., 1] = np.where(inside, l, -1.0)
        self.map = m
        self.map.setflags(write=False)
        self.mask = inside
        self._device_maps = {}

    @property
    def geometry(self) -> ImageGeometry:
        return self.image_geometry

    def _map_on(self, c: Call):
        if c.xp is np:
            return self.map
        dev = c.xp.cuda.Device().id
        m = self._device_maps.get(dev)
        if m is None:
            m = self._device_maps[dev] = c.xp.asarray(self.map)
        return m

    def __call__(self, data, *, out=None, backend=None, stream=None, check_finite=True):
        """Scan-convert ``data`` (samples, lines) or (frames, samples, lines), float32 (or uint8
        display data, rounded). Returns ``(rows, cols)`` / ``(frames, rows, cols)``."""
        fn = "scan_convert"
        c = Call(fn, data, backend, stream)
        x = c.input("data", data, (np.dtype(np.float32), np.dtype(np.uint8)),
                    check_finite=check_finite)
        if tuple(x.shape[-2:]) != self.in_shape:
            raise fail(fn, "data", f"beam-space frames of shape {self.in_shape}", x.shape)
        F = frames_of(x.shape)[0]
        R, C = self.out_shape
        o = c.output(out, x.shape[:-2] + (R, C), x.dtype)
        if c.backend == "reference":
            v = ref.remap_bilinear(x, self.map)
            o[...] = v if x.dtype == np.float32 else np.clip(np.floor(v + 0.5), 0, 255)
            return c.result(o)
        mp = self._map_on(c)
        sfx = "f32" if x.dtype == np.float32 else "u8"
        if c.backend == "cupy":
            dx, do = c.desc(x), c.desc(o)
            c.launch("scan", f"usfast_remap_{sfx}", R, C, F,
                     (x, i64(dx[4]), i64(dx[5]), i32(self.in_shape[0]), i32(self.in_shape[1]), o,
                      i64(do[4]), i64(do[5]), i32(R), i32(C), mp))
        else:
            c.core(f"remap_{sfx}", c.desc(x), c.desc(o), c.ptr(mp))
        return c.result(o)
