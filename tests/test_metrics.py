"""Image-quality metrics on analytic cases: Rayleigh speckle SNR and ENL, CNR of Rayleigh
regions, gCNR of two Rayleigh regions 20 dB apart, SSIM and PSNR against scikit-image, Pratt's
figure of merit on constructed edge maps; bad input; the CuPy path where a GPU is present."""
import math

import numpy as np
import pytest

from usfast import InputError, metrics

RAYLEIGH_SNR = math.sqrt(math.pi / (4 - math.pi))  # 1.913
RAYLEIGH_ENL = math.pi / (4 - math.pi)  # 3.66


def rayleigh(n, scale=1.0, seed=0):
    return np.random.default_rng(seed).rayleigh(scale, n)


# ---- speckle statistics -------------------------------------------------------------------------
def test_rayleigh_envelope_snr_and_enl():
    e = rayleigh((1000, 1000))
    assert abs(RAYLEIGH_SNR - 1.913) < 1e-3 and abs(RAYLEIGH_ENL - 3.66) < 5e-3
    assert metrics.snr(e) == pytest.approx(RAYLEIGH_SNR, rel=5e-3)
    assert metrics.enl(e) == pytest.approx(RAYLEIGH_ENL, rel=1e-2)
    half = np.s_[:500, :]
    assert metrics.snr(e.astype(np.float32), half) == pytest.approx(RAYLEIGH_SNR, rel=1e-2)


def test_intensity_speckle_has_one_look():
    inten = rayleigh(10 ** 6, seed=1) ** 2  # exponential
    assert metrics.enl(inten) == pytest.approx(1.0, rel=1e-2)
    assert metrics.snr(inten) == pytest.approx(1.0, rel=1e-2)


def test_regions_as_masks_and_slices():
    img = np.arange(100.0).reshape(10, 10)
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    assert metrics.snr(img, m) == metrics.snr(img, np.s_[2:5, 3:7])
    v = img[2:5, 3:7]
    assert metrics.enl(img, m) == pytest.approx(v.mean() ** 2 / v.var())


# ---- contrast -----------------------------------------------------------------------------------
def test_cnr_of_an_anechoic_region_is_the_speckle_snr():
    img = np.concatenate([np.zeros(10 ** 5), rayleigh(10 ** 6, seed=2)])
    inside = np.zeros(img.size, bool)
    inside[:10 ** 5] = True
    assert metrics.cnr(img, inside, ~inside) == pytest.approx(RAYLEIGH_SNR, rel=5e-3)


@pytest.mark.parametrize("contrast_db", [-20.0, -6.0, 6.0])
def test_cnr_of_two_rayleigh_regions(contrast_db):
    """|mu_i - mu_o| / sqrt(var_i + var_o) = 1.913 |1 - sqrt(r)| / sqrt(1 + r), r the intensity
    ratio."""
    r = 10 ** (contrast_db / 10)
    a, b = rayleigh(10 ** 6, math.sqrt(r), seed=3), rayleigh(10 ** 6, 1.0, seed=4)
    img = np.concatenate([a, b])
    inside = np.arange(img.size) < a.size
    expected = RAYLEIGH_SNR * abs(1 - math.sqrt(r)) / math.sqrt(1 + r)
    assert metrics.cnr(img, inside, ~inside) == pytest.approx(expected, rel=1e-2)


def test_picmus_cnr_db():
    """20 log10(|mu_i - mu_o| / sqrt((var_i + var_o)/2)) on 20 log10(envelope); the same from
    dB values or any affine display scale of them."""
    a, b = rayleigh(20000, 0.1, seed=5), rayleigh(20000, 1.0, seed=6)
    env = np.concatenate([a, b])
    inside = np.arange(env.size) < a.size
    db = 20 * np.log10(env)
    di, do = db[inside], db[~inside]
    expected = 20 * math.log10(abs(di.mean() - do.mean()) / math.sqrt((di.var() + do.var()) / 2))
    assert metrics.cnr_db(env, inside, ~inside) == pytest.approx(expected, rel=1e-12)
    assert metrics.cnr_db(db, inside, ~inside, log_compress=False) == pytest.approx(expected)
    display = (db + 80) / 80  # what log_compress gives for an 80 dB range
    assert metrics.cnr_db(display, inside, ~inside, log_compress=False) == pytest.approx(expected)


def test_gcnr_of_two_rayleigh_regions_20_db_apart():
    """Analytic overlap: the pdfs of Rayleigh(1) and Rayleigh(10) cross at x* with
    x*^2 = 2 ln(100) / (1 - 1/100); OVL = exp(-x*^2/2) + 1 - exp(-x*^2/200), gCNR = 0.945."""
    x2 = 2 * math.log(100) / (1 - 1 / 100)
    analytic = 1 - (math.exp(-x2 / 2) + 1 - math.exp(-x2 / 200))
    assert analytic == pytest.approx(0.945, abs=5e-4)
    a, b = rayleigh(10 ** 5, 1.0, seed=7), rayleigh(10 ** 5, 10.0, seed=8)
    img = np.concatenate([a, b])
    inside = np.arange(img.size) < a.size
    assert metrics.gcnr(img, inside, ~inside) == pytest.approx(analytic, abs=0.006)
    # invariant to monotonic transforms (the bins are equiprobable quantiles)
    assert metrics.gcnr(20 * np.log10(img), inside, ~inside) == pytest.approx(
        metrics.gcnr(img, inside, ~inside), abs=1e-12)


def test_gcnr_limits_and_bin_rule():
    rng = np.random.default_rng(9)
    same = rng.random(20000)
    inside = np.arange(same.size) < 10000
    assert metrics.gcnr(same, inside, ~inside) < 0.1  # one distribution: near 0 (bin noise)
    apart = np.where(inside, rng.random(same.size), 5 + rng.random(same.size))
    assert metrics.gcnr(apart, inside, ~inside) == pytest.approx(1.0)
    # k = ceil(2 N^(2/5)) equiprobable bins: with N = 20000, k = 106
    assert math.ceil(2 * 20000 ** 0.4) == 106
    assert metrics.gcnr(same, inside, ~inside, bins=106) == metrics.gcnr(same, inside, ~inside)
    assert metrics.gcnr(np.ones(100), np.s_[:50], np.s_[50:]) == 0.0


# ---- fidelity -----------------------------------------------------------------------------------
def test_ssim_of_an_image_with_itself_is_one():
    x = np.random.default_rng(10).random((64, 80))
    assert metrics.ssim(x, x, data_range=1.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(11, 11), (64, 80), (257, 129)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_matches_scikit_image(shape, dtype):
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(11)
    ref = rng.random(shape)
    img = np.clip(ref + 0.2 * rng.standard_normal(shape), 0, 1)
    ref, img = ref.astype(dtype), img.astype(dtype)
    expected = structural_similarity(img, ref, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1.0)
    tol = 1e-12 if dtype == np.float64 else 1e-5  # scikit-image computes float32 in float32
    assert metrics.ssim(img, ref, data_range=1.0) == pytest.approx(expected, abs=tol)
    m, smap = metrics.ssim(img, ref, data_range=1.0, full=True)
    assert smap.shape == shape and m == pytest.approx(expected, abs=tol)


def test_ssim_data_range_matters_and_is_required():
    rng = np.random.default_rng(12)
    ref = rng.random((40, 40))
    img = ref + 0.1 * rng.standard_normal((40, 40))
    assert metrics.ssim(img, ref, data_range=1.0) < metrics.ssim(img, ref, data_range=10.0)
    with pytest.raises(TypeError):
        metrics.ssim(img, ref)
    for bad in (0, -1.0, math.nan, "x", None):
        with pytest.raises(InputError, match="data_range"):
            metrics.ssim(img, ref, data_range=bad)


def test_psnr():
    from skimage.metrics import peak_signal_noise_ratio
    ref = np.zeros((10, 10))
    img = ref.copy()
    img[0, 0] = 1.0  # MSE = 0.01
    assert metrics.psnr(img, ref, data_range=1.0) == pytest.approx(20.0)
    assert metrics.psnr(ref, ref, data_range=1.0) == math.inf
    rng = np.random.default_rng(13)
    a, b = rng.random((30, 40)), rng.random((30, 40))
    assert metrics.psnr(a, b, data_range=2.0) == pytest.approx(
        peak_signal_noise_ratio(b, a, data_range=2.0))
    with pytest.raises(TypeError):
        metrics.psnr(a, b)


# ---- edges --------------------------------------------------------------------------------------
def test_pratt_fom():
    ideal = np.zeros((50, 50), bool)
    ideal[:, 25] = True
    assert metrics.pratt_fom(ideal, ideal) == 1.0
    shifted = np.roll(ideal, 1, axis=1)  # every pixel one off: 1 / (1 + 1/9)
    assert metrics.pratt_fom(shifted, ideal) == pytest.approx(0.9)
    assert metrics.pratt_fom(np.zeros_like(ideal), ideal) == 0.0
    half = ideal.copy()
    half[25:] = False  # half the edge found: 25 / 50
    assert metrics.pratt_fom(half, ideal) == pytest.approx(0.5)
    extra = ideal.copy()
    extra[:, 40] = True  # 50 right + 50 at distance 15: (50 + 50 / (1 + 225/9)) / 100
    assert metrics.pratt_fom(extra, ideal) == pytest.approx((50 + 50 / 26) / 100)


# ---- bad input ----------------------------------------------------------------------------------
def test_bad_regions_and_values():
    img = np.random.default_rng(14).random((20, 20))
    with pytest.raises(InputError, match="region"):
        metrics.snr(img, np.ones((20, 19), bool))
    with pytest.raises(InputError, match="region"):
        metrics.snr(img, np.ones((20, 20), np.uint8))
    with pytest.raises(InputError, match="2 pixels"):
        metrics.enl(img, np.s_[0:1, 0:1])
    bad = img.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="finite"):
        metrics.snr(bad)
    with pytest.raises(InputError):
        metrics.snr(np.ones((5, 5)))  # std 0: SNR undefined
    with pytest.raises(InputError):
        metrics.cnr(np.ones((5, 5)), np.s_[:2], np.s_[2:])
    with pytest.raises(InputError, match="shape"):
        metrics.psnr(img, img[:10], data_range=1)
    with pytest.raises(InputError):
        metrics.ssim(img[:8, :8], img[:8, :8], data_range=1)  # smaller than the 11 x 11 window
    with pytest.raises(InputError):
        metrics.pratt_fom(img > 0.5, np.zeros((20, 20), bool))  # no ideal edge
    with pytest.raises(InputError):
        metrics.pratt_fom(img, img > 0.5)  # not boolean


# ---- CuPy inputs --------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cupy_inputs_give_the_numpy_values():
    cupy = pytest.importorskip("cupy")
    try:
        if not cupy.cuda.is_available():
            pytest.skip("no CUDA device")
    except Exception as e:  # pragma: no cover
        pytest.skip(f"no CUDA device: {e}")
    rng = np.random.default_rng(15)
    ref = rng.random((64, 64))
    img = np.clip(ref + 0.1 * rng.standard_normal(ref.shape), 0, 1)
    inside = np.zeros(ref.shape, bool)
    inside[10:30, 10:30] = True
    d = cupy.asarray
    assert metrics.ssim(d(img), d(ref), data_range=1.0) == pytest.approx(
        metrics.ssim(img, ref, data_range=1.0), abs=1e-9)
    assert metrics.psnr(d(img), d(ref), data_range=1.0) == pytest.approx(
        metrics.psnr(img, ref, data_range=1.0))
    for f in (metrics.cnr, metrics.gcnr, metrics.cnr_db):
        assert f(d(img), d(inside), d(~inside)) == pytest.approx(f(img, inside, ~inside), rel=1e-9)
    assert metrics.snr(d(img), d(inside)) == pytest.approx(metrics.snr(img, inside))
    assert metrics.pratt_fom(d(img > 0.5), d(ref > 0.5)) == pytest.approx(
        metrics.pratt_fom(img > 0.5, ref > 0.5))
