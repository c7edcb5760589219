"""Reference B-mode formation and scan conversion (float64, from the formulas)."""
from __future__ import annotations

import numpy as np


def fir_axial(x, h):
    """y[r] = sum_k h[k] x[r + d - k], d = (len(h)-1)/2, zero outside the record (axis -2)."""
    x = np.asarray(x)
    x = x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
    n = len(h)
    d = (n - 1) // 2
    R = x.shape[-2]
    pad = [(0, 0)] * x.ndim
    pad[-2] = (n, n)
    xp = np.pad(x, pad)
    y = np.zeros_like(x)
    for k in range(n):
        s = d - k  # sample offset r + s
        y += h[k] * xp[..., n + s:n + s + R, :]
    return y


def tgc(x, gain):
    return np.asarray(x, dtype=np.float64) * np.asarray(gain, dtype=np.float64)[:, None]


def demodulate(rf, h, decimation, mixer):
    """Mix to baseband with ``mixer`` (2 g[n] exp(-i 2 pi f0 n/fs)), low-pass, decimate."""
    base = np.asarray(rf, dtype=np.float64) * np.asarray(mixer, dtype=np.complex128)[:, None]
    return fir_axial(base, h)[..., ::decimation, :]


def envelope_rf(rf, hh):
    x = np.asarray(rf, dtype=np.float64)
    return np.sqrt(x * x + fir_axial(x, hh) ** 2)


def log_compress(mag, inv_ref, gain_db, dr_db):
    """20 log10(|x| * inv_ref) + gain, clamped to [-DR, 0], mapped to [0, 1]."""
    a = np.abs(np.asarray(mag)).astype(np.float64)
    ir = np.asarray(inv_ref, dtype=np.float64)
    ir = ir.reshape((-1,) + (1,) * 2) if a.ndim == 3 else ir.reshape(())
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(np.maximum(a * ir, 1e-30)) + gain_db
    return (np.clip(db, -dr_db, 0.0) + dr_db) / dr_db


def remap_bilinear(src, mp):
    """Bilinear sample of src (rows, cols) at map[..., 0] = row, map[..., 1] = col; 0 outside."""
    src = np.asarray(src, dtype=np.float64)
    r = mp[..., 0].astype(np.float64)
    c = mp[..., 1].astype(np.float64)
    R, C = src.shape[-2:]
    valid = (r >= 0) & (c >= 0) & (r <= R - 1) & (c <= C - 1)
    rr = np.where(valid, r, 0)
    cc = np.where(valid, c, 0)
    r0 = np.minimum(np.floor(rr).astype(int), max(R - 2, 0))
    c0 = np.minimum(np.floor(cc).astype(int), max(C - 2, 0))
    r1 = np.minimum(r0 + 1, R - 1)
    c1 = np.minimum(c0 + 1, C - 1)
    fr = rr - r0
    fc = cc - c0
    v = ((1 - fr) * (1 - fc) * src[..., r0, c0] + (1 - fr) * fc * src[..., r0, c1]
         + fr * (1 - fc) * src[..., r1, c0] + fr * fc * src[..., r1, c1])
    return np.where(valid, v, 0.0)


def persistence(frames, alpha, init=None):
    x = np.asarray(frames, dtype=np.float64)
    y = np.empty_like(x)
    s = x[0] if init is None else np.asarray(init, dtype=np.float64)
    for f in range(x.shape[0]):
        s = alpha * s + (1 - alpha) * x[f]
        y[f] = s
    return y
