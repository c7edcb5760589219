"""Lee, Kuan, Frost and the guided filter: every backend against the float64 reference on random
data, odd sizes, batches, strided views and poisoned outputs; bad input; quality on simulated
speckle phantoms (the phantom helpers here serve tests/test_speckle_diffusion.py too)."""
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

import usfast.speckle as sp
from usfast import InputError, metrics
from usfast.reference import speckle as ref
from conftest import ODD_SIZES, assert_matches, poisoned, strided_view, to_numpy

LOCAL = ["lee", "kuan", "frost", "guided"]


def on(backend, a):
    """Move a host array to where ``backend`` runs (GPU backends take CuPy arrays)."""
    if backend in ("cuda", "cupy"):
        import cupy
        return cupy.asarray(a)
    return a


def speckle_image(shape, seed=0):
    """Rayleigh speckle (unit scale) on a slowly varying positive background: random data with
    the statistics the filters are made for."""
    rng = np.random.default_rng(seed)
    rows, cols = np.arange(shape[-2]), np.arange(shape[-1])
    base = 1.0 + 0.5 * np.sin(cols / 7.0) * np.cos(rows / 5.0)[:, None]
    return (base * rng.rayleigh(1.0, shape)).astype(np.float32)


# ---- a fully developed speckle phantom with known noise-free image ----------------------------
def speckle_phantom(shape=(256, 256), seed=0, lesion_db=-10.0, bright_db=6.0, psf_sigma=(1.0, 1.5)):
    """Envelope of complex Gaussian scatterers (intensity = echogenicity) through a Gaussian PSF
    of unit energy: fully developed speckle (Rayleigh, mean/std 1.91) over a background of 0 dB
    with a round lesion (lesion_db) left of centre and a bright disk (bright_db) right of it.

    Returns dict(env float32, clean = the expected envelope sqrt(pi/4 * echo (*) psf^2),
    bg = homogeneous background mask, lesion = lesion core mask, edges = ideal edge map).
    """
    rng = np.random.default_rng(seed)
    R, C = shape
    rr, cc = np.mgrid[0:R, 0:C]
    echo = np.ones(shape)
    dl = np.hypot(rr - R * 0.5, cc - C * 0.33)
    db = np.hypot(rr - R * 0.5, cc - C * 0.72)
    echo[dl < R * 0.14] = 10 ** (lesion_db / 10)
    echo[db < R * 0.12] = 10 ** (bright_db / 10)
    z = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * np.sqrt(echo / 2)

    def psf(a):
        return ndi.gaussian_filter(a, psf_sigma, mode="wrap")

    delta = np.zeros(shape)
    delta[R // 2, C // 2] = 1.0
    k = psf(delta)
    energy = (k ** 2).sum()
    env = np.abs(psf(z.real) + 1j * psf(z.imag)) / math.sqrt(energy)
    k2 = np.roll(k ** 2 / energy, (-(R // 2), -(C // 2)), axis=(0, 1))
    intensity = np.real(np.fft.ifft2(np.fft.fft2(echo) * np.fft.fft2(k2)))
    clean = np.sqrt(np.pi / 4 * np.maximum(intensity, 0))
    margin = 8
    bg = (dl > R * 0.22) & (db > R * 0.2) & (rr >= margin) & (rr < R - margin) & \
        (cc >= margin) & (cc < C - margin)
    edges = (echo != ndi.grey_erosion(echo, size=3)) & (echo != 1)  # inner borders
    return dict(env=env.astype(np.float32), clean=clean.astype(np.float32), bg=bg,
                lesion=dl < R * 0.10, edges=edges)


def detected_edges(img):
    """Canny edges (sigma 3, the strongest 3-10 % of gradients) of the log-compressed image."""
    from skimage.feature import canny
    lg = 20 * np.log10(np.maximum(img, 1e-6 * float(img.max())))
    return canny(lg, sigma=3, low_threshold=0.9, high_threshold=0.97, use_quantiles=True)


def quality(img, ph):
    return dict(snr=metrics.snr(img, ph["bg"]), cnr=metrics.cnr(img, ph["lesion"], ph["bg"]),
                gcnr=metrics.gcnr(img, ph["lesion"], ph["bg"]),
                fom=metrics.pratt_fom(detected_edges(img), ph["edges"]))


def check_quality(name, filt, min_snr_gain, seeds=(0, 1, 2)):
    """The thresholds every speckle filter must meet on the phantom, for each seed:
    speckle SNR in the background raised by min_snr_gain (x), lesion CNR not lower, gCNR not
    lower by more than 0.01, Pratt's FOM of Canny edges not lower (in practice all rise)."""
    for seed in seeds:
        ph = speckle_phantom(seed=seed)
        q0 = quality(ph["env"], ph)
        q = quality(filt(ph["env"]), ph)
        assert 1.8 < q0["snr"] < 2.05, q0  # the phantom is fully developed speckle
        assert q["snr"] >= min_snr_gain * q0["snr"], (name, seed, q0, q)
        assert q["cnr"] >= q0["cnr"], (name, seed, q0, q)
        assert q["gcnr"] >= q0["gcnr"] - 0.01, (name, seed, q0, q)
        assert q["fom"] >= q0["fom"], (name, seed, q0, q)


# ---- each filter on each backend against the reference ---------------------------------------
def _run(name, backend, x, **kw):
    return getattr(sp, name)(x, backend=backend, **kw)


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("shape", ODD_SIZES + [(3, 31, 17)])
def test_matches_reference(backend, name, shape):
    x = speckle_image(shape)
    kw = dict(eps=0.05) if name == "guided" else {}
    out = on(backend, poisoned(shape, np.float32))
    got = _run(name, backend, on(backend, x), out=out, **kw)
    assert got is out
    expected = _run(name, "reference", x, **kw)
    assert np.isfinite(to_numpy(got)).all()
    assert_matches(name, got, expected)


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("window", [3, 5, 11, 31])
def test_windows_including_larger_than_the_image(backend, name, window):
    x = speckle_image((23, 40), seed=window)
    kw = dict(window=window, **(dict(eps=0.1) if name == "guided" else {}))
    got = _run(name, backend, on(backend, x), **kw)
    assert_matches(name, got, _run(name, "reference", x, **kw))


@pytest.mark.parametrize("name", LOCAL)
def test_strided_input_and_output(backend, name):
    x = speckle_image((2, 45, 38), seed=3)
    kw = dict(eps=0.05) if name == "guided" else dict(enl=2.0)
    xs = strided_view(x)
    out_big = poisoned((2, 50, 50), np.float32)
    out = out_big[:, 2:47, 5:43]
    if backend == "cpu":
        got = _run(name, backend, xs, out=out, **kw)
        assert got is out
        assert np.isnan(out_big[:, :2]).all() and np.isnan(out_big[:, :, :5]).all()
    else:
        import cupy
        got = _run(name, backend, cupy.asarray(xs), **kw)
    assert_matches(name, got, _run(name, "reference", x, **kw))


@pytest.mark.parametrize("kw", [dict(noise_cv=0.3), dict(enl=1.0), dict(enl=10.0)])
@pytest.mark.parametrize("name", ["lee", "kuan", "frost"])
def test_noise_level_parameters(backend, name, kw):
    x = speckle_image((40, 33), seed=5)
    got = _run(name, backend, on(backend, x), **kw)
    assert_matches(name, got, _run(name, "reference", x, **kw))


@pytest.mark.parametrize("damping", [0.0, 0.3, 4.0])
def test_frost_damping(backend, damping):
    x = speckle_image((37, 29), seed=6)
    assert_matches("frost", sp.frost(on(backend, x), damping=damping, backend=backend),
                   sp.frost(x, damping=damping, backend="reference"))


def test_frost_zero_damping_is_the_box_mean():
    x = speckle_image((30, 31), seed=7)
    got = sp.frost(x, damping=0.0, window=5)
    m, _ = ref.local_moments(x.astype(np.float64), 2)
    np.testing.assert_allclose(got, m, rtol=1e-5, atol=1e-6)


def test_guided_with_a_guide(backend):
    x = speckle_image((2, 33, 41), seed=8)
    g = speckle_image((2, 33, 41), seed=9)
    got = sp.guided(on(backend, x), guide=on(backend, g), eps=0.02, window=5, backend=backend)
    assert_matches("guided", got, sp.guided(x, guide=g, eps=0.02, window=5, backend="reference"))


def test_guided_default_eps_is_the_image_variance():
    x = speckle_image((40, 40))
    np.testing.assert_allclose(sp.guided(x), sp.guided(x, eps=float(np.var(x.astype(np.float64)))),
                               rtol=1e-6)


# ---- independent checks of the model ------------------------------------------------------------
def test_lee_against_scipy_uniform_filter_inside():
    """Away from the border the clipped window is the full window: scipy's uniform_filter gives
    the same local statistics."""
    x = speckle_image((60, 70), seed=11).astype(np.float64)
    m = ndi.uniform_filter(x, 7)
    v = ndi.uniform_filter(x * x, 7) - m * m
    cu2 = sp.RAYLEIGH_CV ** 2
    w = np.clip(1 - cu2 * m * m / v, 0, 1)
    expected = m + w * (x - m)
    got = sp.lee(x.astype(np.float32))
    np.testing.assert_allclose(got[3:-3, 3:-3], expected[3:-3, 3:-3], rtol=1e-4, atol=1e-5)


def test_guided_against_opencv_ximgproc_free_formula():
    """He et al.'s box-filter algorithm, written out with scipy for the full-window interior."""
    x = speckle_image((50, 52), seed=12).astype(np.float64)
    eps, r = 0.05, 2

    def box(a):
        return ndi.uniform_filter(a, 2 * r + 1)

    mi = box(x)
    a = (box(x * x) - mi * mi) / (box(x * x) - mi * mi + eps)
    b = mi - a * mi
    expected = box(a) * x + box(b)
    got = sp.guided(x.astype(np.float32), window=5, eps=eps)
    s = slice(2 * r, -2 * r)
    np.testing.assert_allclose(got[s, s], expected[s, s], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", LOCAL)
def test_constant_and_zero_images_are_returned_unchanged(backend, name):
    for v in (0.0, 3.5):
        x = np.full((17, 23), v, np.float32)
        got = to_numpy(_run(name, backend, on(backend, x)))
        np.testing.assert_allclose(got, x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", LOCAL)
def test_batch_frames_are_independent(name):
    x = speckle_image((3, 30, 26), seed=13)
    kw = dict(eps=0.05) if name == "guided" else {}
    got = getattr(sp, name)(x, **kw)
    for f in range(3):
        np.testing.assert_array_equal(got[f], getattr(sp, name)(x[f], **kw))


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("window", [2, 4, 1, 0, -3, 3.0, "7"])
def test_bad_window(name, window):
    with pytest.raises(InputError, match="window"):
        getattr(sp, name)(speckle_image((10, 10)), window=window)


def test_frost_window_limit():
    with pytest.raises(InputError, match="window"):
        sp.frost(speckle_image((10, 10)), window=33)


@pytest.mark.parametrize("kw", [dict(enl=0), dict(enl=-1), dict(noise_cv=0), dict(noise_cv=np.nan),
                                dict(enl=1, noise_cv=1), dict(enl=math.inf)])
@pytest.mark.parametrize("name", ["lee", "kuan", "frost"])
def test_bad_noise_level(name, kw):
    with pytest.raises(InputError):
        getattr(sp, name)(speckle_image((10, 10)), **kw)


@pytest.mark.parametrize("kw", [dict(eps=0), dict(eps=-1.0), dict(eps=np.nan),
                                dict(guide=np.ones((9, 10), np.float32))])
def test_guided_bad_parameters(kw):
    with pytest.raises(InputError):
        sp.guided(speckle_image((10, 10)), **kw)


@pytest.mark.parametrize("name", LOCAL + ["srad", "dpad"])
def test_nan_input_is_rejected(name):
    x = speckle_image((12, 12))
    x[3, 4] = np.nan
    with pytest.raises(InputError, match="finite"):
        getattr(sp, name)(x)


@pytest.mark.parametrize("name", LOCAL + ["srad", "dpad"])
def test_output_sharing_the_input_is_rejected(name):
    x = speckle_image((12, 12))
    with pytest.raises(InputError, match="share memory"):
        getattr(sp, name)(x, out=x)
    with pytest.raises(InputError, match="share memory"):
        getattr(sp, name)(x[:, :6], out=x[:, 3:9])


@pytest.mark.parametrize("name", LOCAL)
def test_dtype_and_shape_errors(name):
    with pytest.raises(InputError, match="dtype"):
        getattr(sp, name)(np.ones((8, 8)))
    with pytest.raises(InputError):
        getattr(sp, name)(np.ones(8, np.float32))
    with pytest.raises(InputError, match="out"):
        getattr(sp, name)(speckle_image((8, 8)), out=np.empty((8, 9), np.float32))


# ---- quality on phantoms ------------------------------------------------------------------------
# Thresholds (stated here, checked on 3 seeds): background speckle SNR (1.9 before) raised at
# least 2x by Lee/Kuan (measured ~2.5x) and 1.5x by Frost (damping 1, ~1.65x) and the guided
# filter (~1.9x); lesion CNR not lower, gCNR not lower by more than 0.01; edge FOM not lower.
@pytest.mark.parametrize("name,gain", [("lee", 2.0), ("kuan", 2.0), ("frost", 1.5),
                                       ("guided", 1.5)])
def test_quality_on_speckle_phantom(name, gain):
    check_quality(name, getattr(sp, name), gain)


def test_quality_on_usfast_sim_phantom():
    """The simulator's fully developed speckle with a -12 dB lesion: every filter raises the
    background SNR and the lesion CNR."""
    sim = pytest.importorskip("usfast.sim")
    g = sim.default_geometry((256, 256))
    lesion = sim.Inclusion(center_mm=(0.0, 10.0), radius_mm=3.0, contrast_db=-12.0)
    ph = sim.Phantom(attenuation_db_cm_mhz=0.0, inclusions=(lesion,))
    env = sim.render(ph, g, seed=4)
    xs, zs = np.meshgrid(*[np.arange(n) for n in (256, 256)])
    pts = g.px_to_mm(np.stack([xs, zs], -1))
    d = np.hypot(pts[..., 0] - 0.0, pts[..., 1] - 10.0)
    inside, outside = d < 2.0, (d > 5.0) & (pts[..., 1] > 2.0)
    q0s, q0c = metrics.snr(env, outside), metrics.cnr(env, inside, outside)
    assert 1.7 < q0s < 2.1
    for name in LOCAL:
        out = getattr(sp, name)(env)
        assert metrics.snr(out, outside) > 1.4 * q0s, name
        assert metrics.cnr(out, inside, outside) > q0c, name
