"""Filter design for B-mode formation: windowed-sinc FIR taps (linear phase, odd length).

These compute small coefficient tables once per configuration; the filtering itself runs in the
core. Windowed-sinc design as in Oppenheim & Schafer, "Discrete-Time Signal Processing", 7.5.
"""
from __future__ import annotations

import math

import numpy as np

from ._errors import fail

__all__ = ["lowpass_taps", "bandpass_taps", "hilbert_taps", "default_taps"]


def _window(n: int, window: str) -> np.ndarray:
    k = np.arange(n)
    if n == 1:
        return np.ones(1)
    x = 2 * np.pi * k / (n - 1)
    if window == "hamming":
        return 0.54 - 0.46 * np.cos(x)
    if window == "hann":
        return 0.5 - 0.5 * np.cos(x)
    if window == "blackman":
        return 0.42 - 0.5 * np.cos(x) + 0.08 * np.cos(2 * x)
    raise fail("design", "window", "'hamming', 'hann' or 'blackman'", repr(window))


def _check_taps(func, ntaps):
    if int(ntaps) != ntaps or ntaps < 1 or ntaps % 2 == 0:
        raise fail(func, "taps", "an odd number of taps >= 1 (linear phase, zero delay)", ntaps)
    return int(ntaps)


def default_taps(fs_hz: float, transition_hz: float, lo: int = 15, hi: int = 255) -> int:
    """Odd tap count for a Hamming design with the given transition width (~3.3 fs / df)."""
    n = int(math.ceil(3.3 * fs_hz / max(transition_hz, 1e-9)))
    n = min(max(n, lo), hi)
    return n if n % 2 else n + 1


def lowpass_taps(ntaps: int, cutoff_hz: float, fs_hz: float, window: str = "hamming") -> np.ndarray:
    """Low-pass FIR, unit gain at DC (scipy.signal.firwin(ntaps, cutoff, fs=fs) convention)."""
    ntaps = _check_taps("lowpass_taps", ntaps)
    fc = cutoff_hz / (fs_hz / 2.0)
    m = np.arange(ntaps) - (ntaps - 1) / 2.0
    h = fc * np.sinc(fc * m) * _window(ntaps, window)
    return h / h.sum()


def bandpass_taps(ntaps: int, low_hz: float, high_hz: float, fs_hz: float,
                  window: str = "hamming", remove_dc: bool = True) -> np.ndarray:
    """Band-pass FIR with unit gain at the band centre (firwin(pass_zero=False) convention).

    With ``remove_dc`` the taps are corrected to sum exactly to zero (a window-shaped offset,
    a change below the window's stop-band ripple), so the filter removes any DC offset of the
    record (ADC offsets) exactly.
    """
    ntaps = _check_taps("bandpass_taps", ntaps)
    nyq = fs_hz / 2.0
    f1, f2 = low_hz / nyq, high_hz / nyq
    m = np.arange(ntaps) - (ntaps - 1) / 2.0
    w = _window(ntaps, window)
    h = (f2 * np.sinc(f2 * m) - f1 * np.sinc(f1 * m)) * w
    fc = 0.5 * (f1 + f2)
    h /= np.sum(h * np.cos(np.pi * m * fc))
    if remove_dc:
        h = h - w * (h.sum() / w.sum())
    return h


def hilbert_taps(ntaps: int, window: str = "blackman") -> np.ndarray:
    """FIR Hilbert transformer (type III: odd length, antisymmetric): h[m] = 2/(pi m) for odd m,
    0 for even m, windowed. Convolving gives the quadrature part with delay (ntaps-1)/2."""
    ntaps = _check_taps("hilbert_taps", ntaps)
    if ntaps < 3:
        raise fail("hilbert_taps", "taps", "at least 3 taps", ntaps)
    m = np.arange(ntaps) - (ntaps - 1) // 2
    h = np.zeros(ntaps)
    odd = (m % 2) != 0
    h[odd] = 2.0 / (np.pi * m[odd])
    return h * _window(ntaps, window)
