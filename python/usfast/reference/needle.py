"""Reference needle enhancement and line accumulator (float64, from the formulas).

Conventions as the kernels (cpp/kernels/ridge.cuh, linefilter.cuh, hough.cuh): images
``(rows, cols)`` or ``(frames, rows, cols)``; points ``(x = column, z = row)`` in pixels; angles
in degrees. The Gaussian derivatives come from ``scipy.ndimage.gaussian_filter1d`` (an
independent implementation of the same sampled, normalised taps and "reflect" borders).
"""
from __future__ import annotations

import numpy as np

RIDGE_FRANGI = 0
RIDGE_STRENGTH = 1
RIDGE_NORM = 2


def _batch(x):
    x = np.asarray(x)
    return (x[None], True) if x.ndim == 2 else (x, False)


def _unbatch(y, single):
    return y[0] if single else y


def gaussian_taps(sigma, radius):
    """Sampled Gaussian derivative taps of order 0, 1, 2 as scipy.ndimage builds them:
    g0(k) = exp(-k^2 / 2 s^2) / sum, g1 = -k/s^2 g0, g2 = (k^2/s^4 - 1/s^2) g0; shape (3, 2r+1),
    tap k + radius = g(k)."""
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    s2 = float(sigma) ** 2
    g0 = np.exp(-0.5 * k * k / s2)
    g0 /= g0.sum()
    return np.stack([g0, -k / s2 * g0, (k * k / (s2 * s2) - 1.0 / s2) * g0])


def box_decimate(x, factor, scale):
    """Mean over factor x factor blocks (clipped at the edges) times scale."""
    xb, single = _batch(x)
    xb = xb.astype(np.float64)
    F, R, C = xb.shape
    RO, CO = -(-R // factor), -(-C // factor)
    out = np.empty((F, RO, CO))
    for r in range(RO):
        for c in range(CO):
            blk = xb[:, r * factor:(r + 1) * factor, c * factor:(c + 1) * factor]
            out[:, r, c] = blk.mean(axis=(1, 2)) * scale
    return _unbatch(out, single)


def hessian(img, sigma, radius):
    """Scale-normalised Hessian (xx, xz, zz) = sigma^2 * second Gaussian derivatives, with
    scipy's 'reflect' borders. img: (rows, cols)."""
    from scipy import ndimage as ndi  # here: `import usfast` does not load SciPy (0.2 s)

    x = np.asarray(img, dtype=np.float64)

    def d(order_z, order_x):
        y = ndi.gaussian_filter1d(x, sigma, axis=1, order=order_x, mode="reflect", radius=radius)
        return ndi.gaussian_filter1d(y, sigma, axis=0, order=order_z, mode="reflect",
                                     radius=radius)

    s2 = float(sigma) ** 2
    return s2 * d(0, 2), s2 * d(1, 1), s2 * d(2, 0)


def ridge_measure(hxx, hxz, hzz, measure, beta=0.5, c=1.0):
    """Response and ridge orientation (degrees, (-90, 90]) from the normalised Hessian."""
    m = 0.5 * (hxx + hzz)
    q = np.sqrt((0.5 * (hxx - hzz)) ** 2 + hxz ** 2)
    hi, lo = m + q, m - q
    lo_big = np.abs(lo) >= np.abs(hi)
    l1 = np.where(lo_big, hi, lo)
    l2 = np.where(lo_big, lo, hi)
    if measure == RIDGE_FRANGI:
        with np.errstate(divide="ignore", invalid="ignore"):
            rb = np.where(l2 < 0, np.abs(l1) / np.where(l2 < 0, -l2, 1.0), 0.0)
        v = np.exp(-rb ** 2 / (2 * beta ** 2)) * (1 - np.exp(-(l1 ** 2 + l2 ** 2) / (2 * c * c)))
        resp = np.where(l2 < 0, v, 0.0)
    elif measure == RIDGE_STRENGTH:
        resp = np.maximum(0.0, -l2 - np.abs(l1))
    else:
        resp = np.sqrt(l1 ** 2 + l2 ** 2)
    orient = 0.5 * np.degrees(np.arctan2(2 * hxz, hxx - hzz))
    return resp, orient


def ridge(img, sigmas, radii, measure, beta=0.5, c=1.0):
    """Multiscale maximum of the ridge response; orientation of the winning scale."""
    xb, single = _batch(img)
    resp = np.zeros(xb.shape)
    orient = np.zeros(xb.shape)
    for f in range(xb.shape[0]):
        for i, (s, rad) in enumerate(zip(sigmas, radii)):
            r, o = ridge_measure(*hessian(xb[f], s, rad), measure, beta, c)
            if i == 0:
                resp[f], orient[f] = r, o
            else:
                take = r > resp[f]
                resp[f] = np.where(take, r, resp[f])
                orient[f] = np.where(take, o, orient[f])
    return _unbatch(resp, single), _unbatch(orient, single)


def angle_weight(theta, intervals, soft_deg):
    """1 inside any [lo, hi] interval, falling linearly to 0 over soft_deg outside."""
    th = np.asarray(theta, dtype=np.float64)
    w = np.zeros_like(th)
    for lo, hi in intervals:
        if lo > hi:
            continue
        d = np.where(th < lo, lo - th, np.where(th > hi, th - hi, 0.0))
        w = np.maximum(w, 1 - d / soft_deg)
    return np.maximum(w, 0.0)


def needle_gate(resp, orient, intervals, soft_deg, img=None, background=None, gain=0.0, ref=1.0):
    """Ridge strength times the angle-prior weight times the temporal factor
    1 + gain * clip((img - background) / ref, 0, 1)."""
    e = np.asarray(resp, np.float64) * angle_weight(orient, intervals, soft_deg)
    if background is not None:
        t = np.clip((np.asarray(img, np.float64) - np.asarray(background, np.float64)) / ref, 0, 1)
        e = e * (1 + gain * t)
    return e


def bilinear_clamped(img, x, z):
    """Bilinear sample of img (rows, cols) at (x, z) with coordinates clamped to the image."""
    a = np.asarray(img, dtype=np.float64)
    R, C = a.shape
    x = np.clip(np.asarray(x, np.float64), 0, C - 1)
    z = np.clip(np.asarray(z, np.float64), 0, R - 1)
    c0 = np.minimum(np.floor(x).astype(int), max(C - 2, 0))
    r0 = np.minimum(np.floor(z).astype(int), max(R - 2, 0))
    c1 = np.minimum(c0 + 1, C - 1)
    r1 = np.minimum(r0 + 1, R - 1)
    fx, fz = x - c0, z - r0
    top = a[r0, c0] + fx * (a[r0, c1] - a[r0, c0])
    bot = a[r1, c0] + fx * (a[r1, c1] - a[r1, c0])
    return top + fz * (bot - top)


def oriented_line_filter(img, dirs, angles, n, step, side, scale=1.0):
    """Best oriented line response over the bank and its angle (see linefilter.cuh)."""
    xb, single = _batch(img)
    F, R, C = xb.shape
    zz, xx = np.mgrid[0:R, 0:C].astype(np.float64)
    t = (np.arange(n) - 0.5 * (n - 1)) * step
    best = np.full((F, R, C), -np.inf)
    ang = np.zeros((F, R, C))
    dirs = np.asarray(dirs, np.float64).reshape(-1, 4)
    for f in range(F):
        for a, (ux, uz, nx, nz) in enumerate(dirs):
            sc = np.zeros((R, C))
            ss = np.zeros((R, C))
            for tk in t:
                x, z = xx + tk * ux, zz + tk * uz
                sc += bilinear_clamped(xb[f], x, z)
                ss += (bilinear_clamped(xb[f], x + side * nx, z + side * nz)
                       + bilinear_clamped(xb[f], x - side * nx, z - side * nz))
            v = (sc - 0.5 * ss) / n
            take = v > best[f]
            best[f] = np.where(take, v, best[f])
            ang[f] = np.where(take, angles[a], ang[f])
    return _unbatch(best * scale, single), _unbatch(ang, single)


def band_sample(img, params, T, W, dt, dw, scale=1.0):
    """band[f, t, w] = scale * bilinear(img[f], p0 + t dt u + (w - (W-1)/2) dw (-uz, ux))."""
    xb, single = _batch(img)
    params = np.asarray(params, np.float64).reshape(-1, 4)
    out = np.empty((xb.shape[0], T, W))
    tt = (np.arange(T) * dt)[:, None]
    ww = ((np.arange(W) - 0.5 * (W - 1)) * dw)[None, :]
    for f in range(xb.shape[0]):
        x0, z0, ux, uz = params[f]
        out[f] = scale * bilinear_clamped(xb[f], x0 + tt * ux - ww * uz, z0 + tt * uz + ww * ux)
    return _unbatch(out, single)


def hough_lines(resp, orient, cs, prior, n_angles, n_offsets, theta0, dtheta, rho0, drho,
                tol_deg, threshold, roi):
    """Weighted line accumulator (frames, A, NR) as hough.cuh, in float64.

    roi = (r0, r1, c0, c1): only pixels in rows [r0, r1) and cols [c0, c1) vote."""
    rb, single = _batch(resp)
    ob, _ = _batch(orient)
    F, R, C = rb.shape
    A, NR = n_angles, n_offsets
    cs = np.asarray(cs, np.float64).reshape(A, 2)
    prior = np.asarray(prior, np.float64)
    K = int(np.ceil(tol_deg / dtheta))
    cx, cz = 0.5 * (C - 1), 0.5 * (R - 1)
    r0, r1, c0, c1 = roi
    acc = np.zeros((F, A, NR))
    zz, xx = np.mgrid[0:R, 0:C]
    for f in range(F):
        w = rb[f].astype(np.float64)
        phi = ob[f].astype(np.float64)
        sel = (w > threshold) & (zz >= r0) & (zz < r1) & (xx >= c0) & (xx < c1)
        x, z, w, phi = xx[sel].astype(float), zz[sel].astype(float), w[sel], phi[sel]
        # nearest bin exactly as the kernel computes it (float32 arithmetic)
        a0 = np.floor((phi.astype(np.float32) - np.float32(theta0)) / np.float32(dtheta)
                      + np.float32(0.5)).astype(int) % A
        for j in range(-K, K + 1):
            a = (a0 + j) % A
            d = phi - (theta0 + a * dtheta)
            d -= 180.0 * np.floor((d + 90.0) / 180.0)
            ag = np.maximum(0.0, 1.0 - (d / tol_deg) ** 2)
            v = w * prior[a] * ag
            rho = -(x - cx) * cs[a, 1] + (z - cz) * cs[a, 0]
            u = (rho - rho0) / drho
            i0 = np.floor(u).astype(int)
            fr = u - i0
            for i, val in ((i0, v * (1 - fr)), (i0 + 1, v * fr)):
                ok = (i >= 0) & (i < NR) & (v > 0)
                np.add.at(acc[f], (a[ok], i[ok]), val[ok])
    return _unbatch(acc, single)
