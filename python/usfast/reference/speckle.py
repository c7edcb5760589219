"""Reference speckle reduction (float64, from the papers): the oracle of the compiled backends.

Conventions shared with the kernels (cpp/kernels/localstats.cuh, diffusion.cuh):

* windows ``w = 2h + 1`` clipped to the image; a window mean divides by the pixels inside;
* the speckle model ``I = R u`` with noise coefficient of variation ``Cu`` (``cu2 = Cu**2``);
* ``TINY`` is added to squared means, variances and denominators (no 0/0 anywhere);
* diffusion: the conservative 4-neighbour scheme of Yu & Acton with Neumann borders,
  ``I' = I + dt * sum(fluxes)``, stable for ``dt <= 1/4``.

All functions take ``(rows, cols)`` or ``(frames, rows, cols)`` and return float64.
"""
from __future__ import annotations

import math

import numpy as np

TINY = 1e-30
Q0_MAX_TILES = 1024
CV_BINS = 640


def _frames(x, fn, *args):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return fn(x, *args)
    return np.stack([fn(f, *args) for f in x])


# ---- window statistics ---------------------------------------------------------------------
def box_sum(a, h):
    """Sum over the (2h+1)^2 window clipped to the image, via cumulative sums."""
    R, C = a.shape
    s = np.zeros((R + 1, C + 1))
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    r = np.arange(R)
    c = np.arange(C)
    r0, r1 = np.maximum(r - h, 0), np.minimum(r + h, R - 1) + 1
    c0, c1 = np.maximum(c - h, 0), np.minimum(c + h, C - 1) + 1
    return (s[r1][:, c1] - s[r0][:, c1] - s[r1][:, c0] + s[r0][:, c0])


def box_count(shape, h):
    R, C = shape
    r = np.arange(R)
    c = np.arange(C)
    nr = np.minimum(r + h, R - 1) - np.maximum(r - h, 0) + 1
    nc = np.minimum(c + h, C - 1) - np.maximum(c - h, 0) + 1
    return np.outer(nr, nc).astype(np.float64)


def local_moments(x, h):
    """Window mean and variance (>= 0)."""
    n = box_count(x.shape, h)
    m = box_sum(x, h) / n
    v = np.maximum(box_sum(x * x, h) / n - m * m, 0.0)
    return m, v


# ---- Lee, Kuan, Frost ------------------------------------------------------------------------
def _lee(x, h, cu2):
    m, v = local_moments(x, h)
    w = np.clip((v - cu2 * m * m) / (v + TINY), 0.0, 1.0)  # 1 - Cu^2/Ci^2
    return m + w * (x - m)


def lee(x, window, cu2):
    """Lee (1980): y = m + W (x - m), W = 1 - Cu^2/Ci^2 clamped to [0, 1]."""
    return _frames(x, _lee, window // 2, cu2)


def _kuan(x, h, cu2):
    m, v = local_moments(x, h)
    w = np.clip((v - cu2 * m * m) / (v * (1 + cu2) + TINY), 0.0, 1.0)
    return m + w * (x - m)


def kuan(x, window, cu2):
    """Kuan et al. (1985): W = (1 - Cu^2/Ci^2) / (1 + Cu^2) clamped to [0, 1]."""
    return _frames(x, _kuan, window // 2, cu2)


def _frost(x, h, cu2, damping):
    R, C = x.shape
    m, v = local_moments(x, h)
    a = (damping / cu2) * v / (m * m + TINY)  # K Ci^2, K = damping / Cu^2
    num = np.zeros_like(x)
    den = np.zeros_like(x)
    xp = np.pad(x, h)
    valid = np.pad(np.ones_like(x), h)
    for dr in range(-h, h + 1):
        for dc in range(-h, h + 1):
            wgt = np.exp(-a * (abs(dr) + abs(dc)))  # exp(-a |t|), city-block |t|
            sl = (slice(h + dr, h + dr + R), slice(h + dc, h + dc + C))
            num += wgt * xp[sl]
            den += wgt * valid[sl]
    return num / den


def frost(x, window, cu2, damping):
    """Frost et al. (1982): weights exp(-K Ci^2 |t|) with K = damping / Cu^2, |t| = |dr|+|dc|."""
    return _frames(x, _frost, window // 2, cu2, damping)


def _guided(p, g, h, eps):
    n = box_count(p.shape, h)
    mi = box_sum(g, h) / n
    mp = box_sum(p, h) / n
    vi = np.maximum(box_sum(g * g, h) / n - mi * mi, 0.0)
    cov = box_sum(g * p, h) / n - mi * mp
    a = cov / (vi + eps)
    b = mp - a * mi
    return (box_sum(a, h) / n) * g + box_sum(b, h) / n


def guided(p, window, eps, guide=None):
    """Guided filter (He, Sun & Tang 2013), box form: mean(a) I + mean(b)."""
    p = np.asarray(p, dtype=np.float64)
    g = p if guide is None else np.asarray(guide, dtype=np.float64)
    if p.ndim == 2:
        return _guided(p, g, window // 2, eps)
    return np.stack([_guided(pf, gf, window // 2, eps) for pf, gf in zip(p, g)])


# ---- diffusion -------------------------------------------------------------------------------
def _neighbours(x):
    """N, S, W, E neighbours with Neumann (replicate) borders."""
    n = np.concatenate([x[:1], x[:-1]], axis=0)
    s = np.concatenate([x[1:], x[-1:]], axis=0)
    w = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    e = np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    return n, s, w, e


def icov2(x):
    """Yu & Acton's instantaneous coefficient of variation, squared:
    (1/2 |grad I|^2/I^2 - 1/16 (lap I)^2/I^2) / (1 + lap I/(4 I))^2, written with I^2 cleared
    from numerator and denominator (the denominator becomes the neighbours' mean squared)."""
    n, s, w, e = _neighbours(x)
    d = [n - x, s - x, w - x, e - x]
    lap = d[0] + d[1] + d[2] + d[3]
    grad2 = d[0] ** 2 + d[1] ** 2 + d[2] ** 2 + d[3] ** 2
    m4 = x + lap / 4
    return (0.5 * grad2 - lap ** 2 / 16) / (m4 * m4 + TINY)


def diffusion_step(x, coef, dt):
    """I + dt [c (I_N - I) + c_S (I_S - I) + c (I_W - I) + c_E (I_E - I)], Neumann borders."""
    n, s, w, e = _neighbours(x)
    cs = np.concatenate([coef[1:], coef[-1:]], axis=0)
    ce = np.concatenate([coef[:, 1:], coef[:, -1:]], axis=1)
    return x + dt * (coef * (n - x) + cs * (s - x) + coef * (w - x) + ce * (e - x))


def q0_tile_size(rows, cols):
    t = 32
    while math.ceil(rows / t) * math.ceil(cols / t) > Q0_MAX_TILES:
        t *= 2
    return t


def _cv2(z):
    m = z.mean()
    return max(z.var(), 0.0) / max(m * m, TINY)


def q0sq_tiles(x):
    """Median over T x T tiles of var/mean^2 (lower middle value for an even count)."""
    R, C = x.shape
    t = q0_tile_size(R, C)
    vals = sorted(_cv2(x[r:r + t, c:c + t]) for r in range(0, R, t) for c in range(0, C, t))
    return vals[(len(vals) - 1) // 2]


def _srad(x, iterations, dt, mode, roi, q0, decay):
    for it in range(iterations):
        if mode == "tiles":
            q0sq = q0sq_tiles(x)
        elif mode == "roi":
            r0, nr, c0, nc = roi
            q0sq = _cv2(x[r0:r0 + nr, c0:c0 + nc])
        else:
            q0sq = (q0 * math.exp(-decay * dt * it)) ** 2
        # c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2))), clamped to [0, 1]
        q2 = icov2(x)
        coef = np.clip(q0sq * (1 + q0sq) / (q2 + q0sq * q0sq + TINY), 0.0, 1.0)
        x = diffusion_step(x, coef, dt)
    return x


def srad(x, iterations, dt, mode="tiles", roi=None, q0=0.0, decay=0.0):
    """SRAD (Yu & Acton 2002). mode: 'tiles' (median tile var/mean^2 each iteration), 'roi'
    (var/mean^2 inside roi = (row0, rows, col0, cols) each iteration), 'given'
    (q0 exp(-decay t), t = iteration * dt)."""
    return _frames(x, _srad, iterations, dt, mode, roi, q0, decay)


def cv2_bins(v):
    """Histogram bin of each value: 16 bins per octave over [2^-32, 2^8), clamped."""
    v = np.asarray(v, dtype=np.float64)
    m, e = np.frexp(v)  # v = m 2^e, m in [0.5, 1)
    b = 16 * (e - 1 + 32) + np.floor((2 * m - 1) * 16).astype(np.int64)
    return np.where(v > 0, np.clip(b, 0, CV_BINS - 1), 0)


def cv2_bin_edge(b):
    if b <= 0:
        return 0.0
    return 2.0 ** (b // 16 - 32) * (1 + (b % 16) / 16)


def hist_median(v):
    """The histogram median of DPAD's noise estimate (see diffusion.cuh)."""
    counts = np.bincount(cv2_bins(v).ravel(), minlength=CV_BINS).astype(np.float64)
    half = 0.5 * v.size
    below = np.concatenate([[0.0], np.cumsum(counts)[:-1]])
    b = int(np.nonzero((counts > 0) & (below + counts >= half))[0][0])
    lo, hi = cv2_bin_edge(b), cv2_bin_edge(b + 1)
    return lo + (hi - lo) * (half - below[b]) / counts[b]


def _dpad(x, iterations, dt, h):
    for _ in range(iterations):
        m, v = local_moments(x, h)
        ci2 = v / (m * m + TINY)
        cn2 = hist_median(ci2)
        # Kuan's coefficient (1 + 1/Ci^2) / (1 + 1/Cn^2), clamped to [0, 1]
        coef = np.clip(cn2 * (1 + ci2) / (ci2 * (1 + cn2) + TINY), 0.0, 1.0)
        x = diffusion_step(x, coef, dt)
    return x


def dpad(x, iterations, dt, window):
    """DPAD (Aja-Fernandez & Alberola-Lopez 2006) with the SRAD scheme."""
    return _frames(x, _dpad, iterations, dt, window // 2)
