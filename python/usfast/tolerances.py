"""Tolerances between a compiled backend (cpu, cuda, cupy) and the float64 ``reference``
backend, one table for every kernel. ``rtol``/``atol`` as in ``numpy.testing.assert_allclose``,
relative to the output's scale where noted. float32 arithmetic with fused multiply-add and
fast-math on the GPU bounds the differences; these are the agreed limits, not measurements.
"""
from __future__ import annotations

TABLE = {
    # B-mode formation (float32 accumulation over <= 255 taps)
    "fir_axial": dict(rtol=1e-4, atol=2e-5),
    "tgc": dict(rtol=1e-6, atol=1e-6),
    "demodulate": dict(rtol=1e-4, atol=2e-5),
    "envelope": dict(rtol=1e-4, atol=2e-5),
    # display values in [0, 1]; uint8 outputs may differ by one grey level at rounding edges
    "log_compress": dict(rtol=0, atol=2e-5),
    "log_compress_u8": dict(rtol=0, atol=1),
    "bmode": dict(rtol=0, atol=1e-4),
    "persistence": dict(rtol=1e-5, atol=1e-6),
    "scan_convert": dict(rtol=1e-5, atol=1e-5),
    "scan_convert_u8": dict(rtol=0, atol=1),
    # speckle reduction
    "srad": dict(rtol=1e-3, atol=1e-4),
    "dpad": dict(rtol=1e-3, atol=1e-4),
    "lee": dict(rtol=1e-4, atol=1e-5),
    "kuan": dict(rtol=1e-4, atol=1e-5),
    "frost": dict(rtol=1e-4, atol=1e-5),
    "guided": dict(rtol=1e-4, atol=1e-5),
    "nlm": dict(rtol=1e-3, atol=1e-4),
    "median": dict(rtol=0, atol=0),
    "bilateral": dict(rtol=1e-4, atol=1e-5),
    # needle enhancement
    "ridge": dict(rtol=1e-3, atol=1e-5),
    "oriented_line_filter": dict(rtol=1e-3, atol=1e-5),
    "hough": dict(rtol=1e-4, atol=1e-3),
}


def get(op: str) -> dict:
    """``dict(rtol=..., atol=...)`` for ``op``."""
    return dict(TABLE[op])
