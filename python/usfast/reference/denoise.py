"""Reference speckle-reduction filters (float64 NumPy, straight from the definitions).

Each function takes one image ``(rows, cols)`` or a batch ``(frames, rows, cols)`` and filters
every frame on its own. Slow and plain on purpose: the oracle for the compiled backends.
"""
from __future__ import annotations

import numpy as np


def _frames(x):
    a = np.asarray(x, dtype=np.float64)
    return a, (a[None] if a.ndim == 2 else a)


def _box_sum(a, n):
    """Sums over every n x n window of ``a`` fully inside it (shape reduced by n - 1)."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    return s[n:, n:] - s[:-n, n:] - s[n:, :-n] + s[:-n, :-n]


def nlm(x, patch_size, search_size, h, sigma=0.0):
    """Non-local means (Buades et al. 2005), every offset of the search window:

    ssd(p, d) = sum over the centred patch_size^2 patch of (x[p + k] - x[p + d + k])^2,
    w = exp(-max(ssd / patch_size^2 - 2 sigma^2, 0) / h^2), y[p] = sum w x[p + d] / sum w,
    borders reflect-101 (numpy 'reflect')."""
    a, fr = _frames(x)
    o, d = patch_size // 2, search_size // 2
    reach = o + d
    out = np.empty_like(fr)
    for i, u in enumerate(fr):
        R, C = u.shape
        up = np.pad(u, reach, mode="reflect")
        base = up[d:d + R + 2 * o, d:d + C + 2 * o]  # every patch of the image, with its halo
        num = np.zeros((R, C))
        den = np.zeros((R, C))
        for dy in range(-d, d + 1):
            for dx in range(-d, d + 1):
                moved = up[d + dy:d + dy + R + 2 * o, d + dx:d + dx + C + 2 * o]
                ssd = _box_sum((base - moved) ** 2, patch_size)
                w = np.exp(-np.maximum(ssd / patch_size**2 - 2 * sigma**2, 0.0) / h**2)
                num += w * up[reach + dy:reach + dy + R, reach + dx:reach + dx + C]
                den += w
        out[i] = num / den
    return out.reshape(a.shape)


def median(x, size):
    """Median of every size x size window, borders replicated (numpy 'edge')."""
    a, fr = _frames(x)
    h = size // 2
    out = np.empty_like(fr)
    for i, u in enumerate(fr):
        win = np.lib.stride_tricks.sliding_window_view(np.pad(u, h, mode="edge"), (size, size))
        out[i] = np.median(win, axis=(-2, -1))
    return out.reshape(a.shape)


def bilateral(x, diameter, sigma_color, sigma_space):
    """Bilateral filter (Tomasi & Manduchi 1998) over the disc of radius diameter // 2:
    w = exp(-(x[q] - x[p])^2 / (2 sigma_color^2) - |q - p|^2 / (2 sigma_space^2)),
    borders reflect-101 (the conventions of cv2.bilateralFilter)."""
    a, fr = _frames(x)
    r = diameter // 2
    out = np.empty_like(fr)
    for i, u in enumerate(fr):
        R, C = u.shape
        up = np.pad(u, r, mode="reflect")
        num = np.zeros((R, C))
        den = np.zeros((R, C))
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy * dy + dx * dx > r * r:
                    continue
                v = up[r + dy:r + dy + R, r + dx:r + dx + C]
                w = np.exp(-((v - u) ** 2) / (2 * sigma_color**2)
                           - (dy * dy + dx * dx) / (2 * sigma_space**2))
                num += w * v
                den += w
        out[i] = num / den
    return out.reshape(a.shape)
