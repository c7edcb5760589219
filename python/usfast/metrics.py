"""Image-quality metrics for speckle reduction and contrast: speckle SNR, ENL, CNR (envelope and
PICMUS dB forms), gCNR, PSNR, SSIM and Pratt's figure of merit.

NumPy arrays are measured with NumPy/SciPy; CuPy (or any ``__cuda_array_interface__``) arrays
on the device with CuPy, without a copy to the host. Every metric returns a Python float.

Regions (``region``, ``inside``, ``outside``): a boolean mask of the image's shape, slices
(``np.s_[10:50, 20:60]``), or None for the whole image. Statistics use the population
variance (``ddof = 0``).

Analytic values for fully developed speckle (envelope with Rayleigh statistics):
``snr = sqrt(pi / (4 - pi)) = 1.913``, ``enl = pi / (4 - pi) = 3.66``; two Rayleigh regions 20 dB
apart in mean intensity have ``gcnr = 0.945``.
"""
from __future__ import annotations

import math

import numpy as np

from . import _arrays
from ._errors import fail

__all__ = ["snr", "enl", "cnr", "cnr_db", "gcnr", "psnr", "ssim", "pratt_fom"]


def _xp(a):
    return _arrays.xp_of(a)


def _ndi(xp):
    if xp is np:
        from scipy import ndimage
        return ndimage
    from cupyx.scipy import ndimage
    return ndimage


def _array(fn, arg, a):
    a = _arrays.as_array(fn, arg, a)
    if a.dtype.kind not in "fiub":
        raise fail(fn, arg, "a real-valued array", a.dtype)
    if a.size == 0:
        raise fail(fn, arg, "a non-empty array", a.shape)
    return a


def _values(fn, arg, img, region):
    """The float64 values of ``img`` inside ``region``."""
    xp = _xp(img)
    if region is None:
        v = img
    elif isinstance(region, slice) or (
            isinstance(region, tuple) and all(isinstance(s, (slice, int)) for s in region)):
        v = img[region]
    else:
        m = _arrays.as_array(fn, arg, region)
        if m.shape != img.shape or m.dtype != bool:
            raise fail(fn, arg, f"a boolean mask of shape {img.shape} or a tuple of slices",
                       f"{m.dtype} {m.shape}")
        v = img[xp.asarray(m)]
    v = v.astype(xp.float64).ravel()
    if v.size < 2:
        raise fail(fn, arg, "a region of at least 2 pixels", v.size)
    if not bool(xp.isfinite(v).all()):
        raise fail(fn, arg, "finite values", "NaN or Inf")
    return v


def _mean_var(v):
    m = float(v.mean())
    return m, float(((v - m) ** 2).mean())


def snr(envelope, region=None):
    """Speckle signal-to-noise ratio mean / std of an envelope region (1.913 for fully
    developed speckle; higher after speckle reduction)."""
    fn = "snr"
    v = _values(fn, "region", _array(fn, "envelope", envelope), region)
    m, var = _mean_var(v)
    if var == 0.0:
        raise fail(fn, "region", "a region whose values are not all equal (std > 0)")
    return m / math.sqrt(var)


def enl(img, region=None):
    """Equivalent number of looks mean^2 / variance of a homogeneous region, measured on the data
    as given (3.66 for a Rayleigh envelope, 1 for single-look intensity). A speckle filter's
    noise coefficient of variation is ``1/sqrt(enl)``."""
    fn = "enl"
    v = _values(fn, "region", _array(fn, "img", img), region)
    m, var = _mean_var(v)
    if var == 0.0:
        raise fail(fn, "region", "a region whose values are not all equal (variance > 0)")
    return m * m / var


def cnr(img, inside, outside):
    """Contrast-to-noise ratio, envelope form: ``|mu_i - mu_o| / sqrt(var_i + var_o)`` on the
    image as given (an envelope; 1.913 for an anechoic cyst in fully developed speckle)."""
    fn = "cnr"
    a = _array(fn, "img", img)
    mi, vi = _mean_var(_values(fn, "inside", a, inside))
    mo, vo = _mean_var(_values(fn, "outside", a, outside))
    den = math.sqrt(vi + vo)
    if den == 0.0:
        raise fail(fn, "inside", "regions with some variance (CNR undefined for two flat regions)")
    return abs(mi - mo) / den


def cnr_db(img, inside, outside, *, log_compress=True):
    """Contrast-to-noise ratio in dB as in PICMUS (Liebgott et al., "The plane-wave imaging
    challenge in medical ultrasound", IEEE IUS 2016):
    ``20 log10(|mu_i - mu_o| / sqrt((var_i + var_o) / 2))`` with the means and variances taken
    on the log-compressed image.

    log_compress=True (default): ``img`` is a linear envelope and is compressed to
    ``20 log10(img)`` first (values <= 0 are floored at 1e-30 of the region maximum).
    log_compress=False: ``img`` is already log-compressed, in dB or as display values -- the
    ratio is the same for any affine dB scale (offset and gain cancel), so a B-mode image in
    [0, 1] from :func:`usfast.log_compress` gives the dB value directly (as long as it is not
    clipped at the dynamic range).
    """
    fn = "cnr_db"
    a = _array(fn, "img", img)
    vi = _values(fn, "inside", a, inside)
    vo = _values(fn, "outside", a, outside)
    if log_compress:
        xp = _xp(vi)
        floor = 1e-30 * max(float(vi.max()), float(vo.max()), 1e-300)
        vi = 20 * xp.log10(xp.maximum(vi, floor))
        vo = 20 * xp.log10(xp.maximum(vo, floor))
    mi, si = _mean_var(vi)
    mo, so = _mean_var(vo)
    num, den = abs(mi - mo), math.sqrt((si + so) / 2)
    if num == 0.0 or den == 0.0:
        raise fail(fn, "inside", "regions with different means and some variance")
    return 20 * math.log10(num / den)


def gcnr(img, inside, outside, *, bins=None):
    """Generalized contrast-to-noise ratio (Rodriguez-Molares et al., IEEE TUFFC 2020):
    ``1 - OVL``, the overlap of the two regions' intensity distributions, estimated with
    histograms over the same ``k`` equiprobable bins of the pooled samples (bin edges at the
    pooled quantiles), ``k = ceil(2 N^(2/5))`` with N the pooled sample count (the
    equal-probability-bin rule of Terrell & Scott) unless ``bins`` is given. 0: the regions are
    indistinguishable, 1: they do not overlap. Invariant to any monotonic transform of the
    image (envelope, intensity or dB give the same value)."""
    fn = "gcnr"
    a = _array(fn, "img", img)
    vi = _values(fn, "inside", a, inside)
    vo = _values(fn, "outside", a, outside)
    xp = _xp(vi)
    pooled = xp.concatenate([vi, vo])
    n = int(pooled.size)
    k = math.ceil(2 * n ** 0.4) if bins is None else int(bins)
    if k < 1:
        raise fail(fn, "bins", "a bin count >= 1", bins)
    edges = xp.unique(xp.quantile(pooled, xp.linspace(0.0, 1.0, k + 1)))
    if int(edges.size) < 2:
        return 0.0  # every sample equal: the regions cannot be told apart
    hi, _ = xp.histogram(vi, bins=edges)
    ho, _ = xp.histogram(vo, bins=edges)
    ovl = xp.minimum(hi / vi.size, ho / vo.size).sum()
    return float(1.0 - ovl)


def _pair(fn, img, ref):
    a = _array(fn, "img", img)
    b = _array(fn, "ref", ref)
    if a.shape != b.shape:
        raise fail(fn, "ref", f"the shape of img {a.shape}", b.shape)
    if _arrays.on_device(a) != _arrays.on_device(b):
        raise fail(fn, "ref", "an array on the same device as img")
    xp = _xp(a)
    a, b = a.astype(xp.float64), b.astype(xp.float64)
    if not (bool(xp.isfinite(a).all()) and bool(xp.isfinite(b).all())):
        raise fail(fn, "img", "finite values", "NaN or Inf")
    return xp, a, b


def _data_range(fn, data_range):
    try:
        r = float(data_range)
    except (TypeError, ValueError):
        raise fail(fn, "data_range", "a number (the range of the reference's scale, e.g. 1 "
                   "for [0, 1] images)", repr(data_range)) from None
    if not (math.isfinite(r) and r > 0):
        raise fail(fn, "data_range", "a finite range > 0", r)
    return r


def psnr(img, ref, *, data_range):
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB of ``img`` against the
    reference (noise-free) image ``ref``. data_range is required: the span of the scale the
    images live on (1 for display images in [0, 1], 255 for uint8). inf for identical images."""
    fn = "psnr"
    r = _data_range(fn, data_range)
    xp, a, b = _pair(fn, img, ref)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0.0 else 10 * math.log10(r * r / mse)


def ssim(img, ref, *, data_range, sigma=1.5, k1=0.01, k2=0.03, full=False):
    """Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004) of 2-D
    images with Wang's settings: Gaussian window sigma = 1.5 (truncated at 3.5 sigma: 11 x 11),
    population covariances, ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` with ``L = data_range``
    (required), K1 = 0.01, K2 = 0.03. Window statistics use mirror-reflected borders and the
    mean excludes a border of 5 pixels -- the convention of
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``, which gives the same value.
    full=True also returns the SSIM map. 1 for identical images."""
    fn = "ssim"
    r = _data_range(fn, data_range)
    xp, a, b = _pair(fn, img, ref)
    if a.ndim != 2:
        raise fail(fn, "img", "a 2-D image", a.shape)
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise fail(fn, "sigma", "a Gaussian width > 0", sigma)
    truncate = 3.5
    pad = int(truncate * sigma + 0.5)
    if min(a.shape) < 2 * pad + 1:
        raise fail(fn, "img", f"an image of at least {2 * pad + 1}x{2 * pad + 1} pixels", a.shape)
    nd = _ndi(xp)

    def g(z):
        return nd.gaussian_filter(z, sigma, mode="reflect", truncate=truncate)

    ux, uy = g(a), g(b)
    vx = g(a * a) - ux * ux
    vy = g(b * b) - uy * uy
    vxy = g(a * b) - ux * uy
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    m = float(s[pad:s.shape[0] - pad, pad:s.shape[1] - pad].mean())
    return (m, s) if full else m


def pratt_fom(edges, ideal_edges, *, alpha=1.0 / 9.0):
    """Pratt's figure of merit (Pratt, Digital Image Processing, 1978) of a detected edge map
    against the ideal one: ``1 / max(N_ideal, N_detected) * sum_i 1 / (1 + alpha d_i^2)`` over
    the detected edge pixels, d_i the distance (pixels) to the nearest ideal edge pixel;
    alpha = 1/9. 1 for a perfect map, towards 0 for missing, extra or displaced edges. Both
    inputs are boolean maps of the same shape (e.g. Canny edges of a filtered image and of the
    noise-free image)."""
    fn = "pratt_fom"
    d = _arrays.as_array(fn, "edges", edges)
    i = _arrays.as_array(fn, "ideal_edges", ideal_edges)
    if d.dtype != bool or i.dtype != bool or d.shape != i.shape:
        raise fail(fn, "edges", "two boolean edge maps of the same shape",
                   f"{d.dtype} {d.shape} and {i.dtype} {i.shape}")
    xp = _xp(i)
    d = xp.asarray(d)
    ni, nd_ = int(i.sum()), int(d.sum())
    if ni == 0:
        raise fail(fn, "ideal_edges", "at least one ideal edge pixel")
    if nd_ == 0:
        return 0.0
    dist = _ndi(xp).distance_transform_edt(~i)
    return float((1.0 / (1.0 + alpha * dist[d] ** 2)).sum() / max(ni, nd_))
