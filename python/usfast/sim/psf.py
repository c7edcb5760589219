"""Point-spread function of the simulated scanner.

The PSF is a separable complex-baseband Gaussian whose lateral width depends on depth:

* **Axial** (along the beam): a Gaussian pulse envelope. A pulse-echo spectrum with centre
  ``f0`` and fractional -6 dB bandwidth ``B`` has envelope ``exp(-t^2 / 2 sigma_t^2)`` with
  ``sigma_t = sqrt(2 ln 2) / (pi B f0)``; in depth ``sigma_z = c sigma_t / 2``.
* **Lateral**: product of a transmit and a receive beam profile (two-way amplitude), each a
  Gaussian with a full width at half maximum (FWHM) of

  - transmit, fixed focus ``zf`` with aperture ``D``: ``sqrt((lambda zf / D)^2 +
    (D |z - zf| / zf)^2)`` -- the diffraction limit at the focus and the geometric cone of the
    converging/diverging beam elsewhere;
  - receive, dynamic focusing at F-number ``F`` limited by the aperture: ``lambda max(F, z/D)``.

  so ``1/sigma_x^2 = 1/sigma_tx^2 + 1/sigma_rx^2``.

Energy normalisation: every discrete kernel built here has unit energy (sum of squares 1), so a
field of unit-variance complex Gaussian scatterers keeps unit variance after convolution, and
the envelope of echogenicity-1 tissue has RMS 1.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

__all__ = ["axial_sigma_mm", "lateral_sigma_mm", "axial_fwhm_mm", "lateral_fwhm_mm",
           "resolution_cell_mm2"]

_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma of a Gaussian


def axial_sigma_mm(look) -> float:
    """Standard deviation in depth (mm) of the Gaussian envelope of the pulse-echo."""
    c_mm_s = look.sound_speed_m_s * 1e3
    sigma_t = math.sqrt(2.0 * math.log(2.0)) / (math.pi * look.bandwidth * look.f0_mhz * 1e6)
    return c_mm_s * sigma_t / 2.0


def axial_fwhm_mm(look) -> float:
    return _FWHM * axial_sigma_mm(look)


def lateral_sigma_mm(look, depth_mm):
    """Two-way lateral standard deviation (mm) of the beam at ``depth_mm`` (array or scalar)."""
    z = np.maximum(np.asarray(depth_mm, dtype=np.float64), 1e-3)
    lam = look.wavelength_mm
    d = look.aperture_mm
    zf = look.focus_mm
    fw_tx = np.sqrt((lam * zf / d) ** 2 + (d * (z - zf) / zf) ** 2)
    fw_rx = lam * np.maximum(look.rx_f_number, z / d)
    s_tx = fw_tx / _FWHM
    s_rx = fw_rx / _FWHM
    return 1.0 / np.sqrt(1.0 / s_tx ** 2 + 1.0 / s_rx ** 2)


def lateral_fwhm_mm(look, depth_mm):
    return _FWHM * lateral_sigma_mm(look, depth_mm)


def resolution_cell_mm2(look) -> float:
    """Area (mm^2) of the resolution cell at the focus: axial FWHM x lateral FWHM. Scatterer
    densities "per resolution cell" are counted in this area."""
    return float(axial_fwhm_mm(look) * lateral_fwhm_mm(look, look.focus_mm))


# -- discrete kernels -------------------------------------------------------------------------
MIN_SIGMA_PX = 0.3


def lateral_transfer(sigma_px_rows, n: int) -> np.ndarray:
    """Per-row lateral transfer functions ``(len(sigma_px_rows), n)`` float32 for a length-``n``
    FFT along the rows: a Gaussian of the row's sigma (pixels), scaled to unit energy."""
    s = np.maximum(np.asarray(sigma_px_rows, dtype=np.float64), MIN_SIGMA_PX)[:, None]
    f = sfft.fftfreq(n)[None, :]
    h = np.exp(-2.0 * math.pi ** 2 * (s * f) ** 2)
    h /= np.sqrt(np.mean(h * h, axis=1, keepdims=True))
    return h.astype(np.float32)


def axial_transfer(sigma_px: float, n: int, shift_px: float = 0.0) -> np.ndarray:
    """Axial transfer function (length ``n`` complex64) of a unit-energy Gaussian of
    ``sigma_px`` that also moves the content by ``-shift_px`` (output row i shows input row
    ``i + shift_px``)."""
    s = max(float(sigma_px), MIN_SIGMA_PX)
    f = sfft.fftfreq(n)
    h = np.exp(-2.0 * math.pi ** 2 * (s * f) ** 2)
    h /= math.sqrt(float(np.mean(h * h)))
    if shift_px:
        h = h * np.exp(2j * math.pi * f * shift_px)
    return h.astype(np.complex64)


def shift_ramp(n: int, shift_px: float) -> np.ndarray:
    """Phase ramp (complex64, length n) that moves content by ``-shift_px`` along an FFT axis."""
    return np.exp(2j * math.pi * sfft.fftfreq(n) * shift_px).astype(np.complex64)
