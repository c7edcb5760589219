"""B-mode formation: every backend against the float64 reference and independent oracles
(scipy.signal.firwin / lfilter / hilbert), odd sizes, strided views, poisoned outputs."""
import numpy as np
import pytest
import scipy.signal as ss

import usfast as us
from usfast import design
from conftest import ODD_SIZES, assert_matches, poisoned, strided_view, to_numpy

FS, F0 = 40e6, 5e6


def rf_pulses(samples, lines, seed=0, dtype=np.float32, noise=0.05):
    """Band-limited RF: Gaussian-enveloped 5 MHz echoes at random depths plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / FS
    x = np.zeros((samples, lines))
    for j in range(lines):
        for t0 in rng.uniform(0, samples / FS, size=6):
            x[:, j] += rng.uniform(0.2, 1) * np.exp(-((t - t0) / 0.3e-6) ** 2) * np.cos(
                2 * np.pi * F0 * (t - t0))
    x += noise * rng.standard_normal(x.shape)
    if dtype == np.int16:
        return np.round(x * 3000).astype(np.int16)
    return x.astype(dtype)


def on(backend, a):
    """Move a host array to where ``backend`` runs (GPU backends take CuPy arrays)."""
    if backend in ("cuda", "cupy"):
        import cupy
        return cupy.asarray(a)
    return a


# ---- design against scipy ----------------------------------------------------------------------
def test_lowpass_taps_match_firwin():
    np.testing.assert_allclose(design.lowpass_taps(41, 3e6, FS), ss.firwin(41, 3e6, fs=FS),
                               atol=1e-12)


def test_bandpass_taps_match_firwin_and_remove_dc():
    h0 = design.bandpass_taps(63, 2e6, 8e6, FS, remove_dc=False)
    np.testing.assert_allclose(h0, ss.firwin(63, [2e6, 8e6], pass_zero=False, fs=FS), atol=1e-12)
    h = design.bandpass_taps(63, 2e6, 8e6, FS)
    assert abs(h.sum()) < 1e-12
    w, H0 = ss.freqz(h0, worN=512, fs=FS)
    _, H = ss.freqz(h, worN=512, fs=FS)
    assert np.max(np.abs(np.abs(H) - np.abs(H0))) < 5e-3  # the DC fix barely moves the response


# ---- each op on each backend against the reference -------------------------------------------
@pytest.mark.parametrize("shape", ODD_SIZES + [(2047, 129)])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_bandpass_matches_reference(backend, shape, dtype):
    x = rf_pulses(*shape, dtype=dtype)
    out = poisoned(shape, np.float32)
    got = us.bandpass(on(backend, x), FS, 2e6, 8e6, backend=backend,
                      out=on(backend, out) if backend != "cpu" else out)
    want = us.bandpass(x, FS, 2e6, 8e6, backend="reference")
    scale = max(1.0, float(np.abs(want).max()))
    assert_matches("fir_axial", np.asarray(to_numpy(got)) / scale, want / scale)


def test_bandpass_matches_lfilter_with_delay(backend):
    x = rf_pulses(500, 9).astype(np.float64)
    h = design.bandpass_taps(51, 2e6, 8e6, FS)
    d = 25
    # zero-phase alignment: lfilter's output delayed by (ntaps-1)/2
    want = ss.lfilter(h, 1.0, np.vstack([x, np.zeros((d, 9))]), axis=0)[d:]
    got = to_numpy(us.bandpass(on(backend, x.astype(np.float32)), FS, 2e6, 8e6, taps=51,
                               backend=backend))
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


def test_bandpass_removes_dc(backend):
    x = rf_pulses(400, 5) + 3.0  # ADC offset
    y = to_numpy(us.bandpass(on(backend, x.astype(np.float32)), FS, 2e6, 8e6, backend=backend))
    assert abs(float(y[60:-60].mean())) < 1e-3


def test_strided_views_and_batches(backend):
    x = rf_pulses(301, 17, seed=3)
    batch = np.stack([x, 0.5 * x, -x])
    v = strided_view(batch)
    want = us.demodulate(batch, FS, F0, decimation=3, backend="reference")
    got = us.demodulate(on(backend, v) if backend != "cpu" else v, FS, F0, decimation=3,
                        backend=backend)
    s = np.abs(want).max()
    assert_matches("demodulate", to_numpy(got) / s, want / s)


@pytest.mark.parametrize("shape", ODD_SIZES + [(2047, 129)])
def test_demodulate_matches_reference(backend, shape):
    x = rf_pulses(*shape, seed=1)
    for dec in (1, 4):
        want = us.demodulate(x, FS, F0, decimation=dec, backend="reference")
        got = us.demodulate(on(backend, x), FS, F0, decimation=dec, backend=backend)
        assert got.shape == want.shape == (shape[0] // dec + (shape[0] % dec > 0), shape[1])
        s = max(np.abs(want).max(), 1e-6)
        assert_matches("demodulate", to_numpy(got) / s, want / s)


def test_demodulated_envelope_matches_scipy_hilbert():
    x = rf_pulses(2048, 8, seed=2, noise=0.0).astype(np.float64)
    env_true = np.abs(ss.hilbert(x, axis=0))  # mind axis=0: samples run down the rows
    iq = us.demodulate(x.astype(np.float32), FS, F0, bandwidth_hz=8e6)
    env = np.abs(iq)
    core = slice(100, -100)
    err = np.abs(env[core] - env_true[core]).max() / env_true.max()
    assert err < 0.02, err


@pytest.mark.parametrize("shape", ODD_SIZES + [(2047, 129)])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_envelope_rf_matches_reference(backend, shape, dtype):
    x = rf_pulses(*shape, seed=4, dtype=dtype)
    want = us.envelope(x, backend="reference")
    got = us.envelope(on(backend, x), backend=backend)
    s = max(np.abs(want).max(), 1e-6)
    assert_matches("envelope", to_numpy(got) / s, want / s)


def test_envelope_rf_matches_scipy_hilbert():
    x = rf_pulses(2048, 6, seed=5, noise=0.0)
    env_true = np.abs(ss.hilbert(x.astype(np.float64), axis=0))
    env = us.envelope(x, taps=61)
    err = np.abs(env[100:-100] - env_true[100:-100]).max() / env_true.max()
    assert err < 0.02, err


@pytest.mark.parametrize("shape", ODD_SIZES + [(2047, 129), (3, 100, 67)])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_envelope_log_matches_reference(backend, shape, dtype):
    x = rf_pulses(int(np.prod(shape[:-1])), shape[-1], seed=6, dtype=dtype).reshape(shape)
    for od, op in ((np.float32, "log_compress"), (np.uint8, "log_compress_u8")):
        for ref in (1500.0 if dtype == np.int16 else 0.5, "max"):
            kw = dict(reference=ref, out_dtype=od, dynamic_range_db=50, gain_db=2)
            want = us.envelope_log(x, backend="reference", **kw)
            out = poisoned(shape, od)
            xin = (strided_view(x) if len(shape) == 2 and min(shape) > 1 and backend == "cpu"
                   else on(backend, x))
            got = us.envelope_log(xin, backend=backend,
                                  out=on(backend, out) if backend != "cpu" else out, **kw)
            assert to_numpy(got).dtype == od
            assert_matches(op, got, want)
            # the fused pass equals the two-step composition on the same backend
            two = us.log_compress(us.envelope(on(backend, x), backend=backend),
                                  backend=backend, **kw)
            assert_matches(op, got, two)


def test_envelope_log_matches_scipy_hilbert_in_db():
    x = rf_pulses(2048, 6, seed=7, noise=0.0)
    env_true = np.abs(ss.hilbert(x.astype(np.float64), axis=0))
    db_true = np.clip(20 * np.log10(env_true / env_true.max()), -40, 0)
    y = us.envelope_log(x, taps=61, reference=float(env_true.max()), dynamic_range_db=40)
    db = y.astype(np.float64) * 40 - 40
    # inside the echoes (envelope above -20 dB) the display follows scipy's envelope to 0.2 dB
    m = (db_true > -20)
    m[:100] = m[-100:] = False
    assert np.abs(db[m] - db_true[m]).max() < 0.2


def test_envelope_iq_and_log_compress(backend, rng):
    iq = (rng.standard_normal((7, 13)) + 1j * rng.standard_normal((7, 13))).astype(np.complex64)
    got = us.envelope(on(backend, iq), backend=backend)
    assert_matches("envelope", to_numpy(got), np.abs(iq.astype(np.complex128)))
    for od, op in ((np.float32, "log_compress"), (np.uint8, "log_compress_u8")):
        for ref in ("max", 2.5):
            want = us.log_compress(iq, reference=ref, out_dtype=od, backend="reference",
                                   dynamic_range_db=40, gain_db=3)
            got = us.log_compress(on(backend, iq), reference=ref, out_dtype=od, backend=backend,
                                  dynamic_range_db=40, gain_db=3)
            assert to_numpy(got).dtype == od
            assert_matches(op, got, want)


def test_log_compress_formula():
    env = np.array([[1.0, 0.1, 0.001, 0.0, 10.0]], np.float32)
    y = us.log_compress(env, dynamic_range_db=60, reference=1.0)
    np.testing.assert_allclose(y, [[1.0, 2 / 3, 0.0, 0.0, 1.0]], atol=1e-6)
    y8 = us.log_compress(env, dynamic_range_db=60, reference=1.0, out_dtype=np.uint8)
    np.testing.assert_array_equal(y8, [[255, 170, 0, 0, 255]])
    # a fixed reference keeps brightness steady: halving the frame darkens it by 6 dB
    a = us.log_compress(env[:, :2], reference=1.0)
    b = us.log_compress(0.5 * env[:, :2], reference=1.0)
    np.testing.assert_allclose((a - b) * 60, 20 * np.log10(2), atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize("od", [np.float32, np.uint8])
def test_fused_bmode_matches_chain(backend, dtype, od):
    x = rf_pulses(1001, 33, seed=6, dtype=dtype)
    kw = dict(decimation=4, dynamic_range_db=50, gain_db=2, tgc_db=[(0, 0), (30, 12)],
              out_dtype=od)
    for refamp in (float(np.abs(x).max()), "max"):
        want = us.bmode(x, FS, F0, reference=refamp, backend="reference", **kw)
        got = us.bmode(on(backend, x), FS, F0, reference=refamp, backend=backend, **kw)
        assert_matches("bmode" if od == np.float32 else "log_compress_u8", got, want)
    # the fused chain equals TGC -> demodulate -> log compression done step by step
    g = us.tgc_gain(x.shape[0], [(0, 0), (30, 12)], fs_hz=FS)
    iq = us.demodulate((x.astype(np.float32) * g[:, None]), FS, F0, decimation=4)
    step = us.log_compress(iq, dynamic_range_db=50, gain_db=2, reference="max", out_dtype=od)
    fused = us.bmode(x, FS, F0, reference="max", backend="cpu", **kw)
    assert np.abs(fused.astype(float) - step.astype(float)).max() <= (1e-4 if od == np.float32 else 1)


def test_tgc_knots_and_attenuation(backend):
    x = np.ones((200, 3), np.float32)
    y = to_numpy(us.tgc(on(backend, x), [(0, 0), (10, 20)], fs_hz=FS, backend=backend))
    z = np.arange(200) * 1540 / (2 * FS) * 1e3
    np.testing.assert_allclose(y[:, 0], 10 ** (np.interp(z, [0, 10], [0, 20]) / 20), rtol=1e-5)
    y2 = to_numpy(us.tgc(on(backend, x), attenuation_db_cm_mhz=0.5, f0_hz=5e6, fs_hz=FS,
                         backend=backend))
    np.testing.assert_allclose(y2[:, 1], 10 ** (2 * 0.5 * 5 * z / 10 / 20), rtol=1e-5)
    iq = (x + 1j * x).astype(np.complex64)
    yc = to_numpy(us.tgc(on(backend, iq), 6.0, backend=backend))
    np.testing.assert_allclose(yc, iq * 10 ** (6 / 20), rtol=1e-6)


def test_persistence(backend, rng):
    x = rng.random((5, 7, 13)).astype(np.float32)
    want = us.persistence(x, 0.7, backend="reference")
    assert_matches("persistence", us.persistence(on(backend, x), 0.7, backend=backend), want)
    init = rng.random((7, 13)).astype(np.float32)
    want = us.persistence(x, 0.3, init=init, backend="reference")
    got = us.persistence(on(backend, x), 0.3, init=on(backend, init), backend=backend)
    assert_matches("persistence", got, want)
    np.testing.assert_allclose(want[0], 0.3 * init + 0.7 * x[0], rtol=1e-6)


def test_out_buffer_is_used_and_fully_written(backend):
    x = rf_pulses(64, 5)
    out = poisoned((16, 5), np.float32)
    o = on(backend, out) if backend != "cpu" else out
    got = us.bmode(on(backend, x), FS, F0, decimation=4, out=o, backend=backend)
    assert got is o
    assert np.isfinite(to_numpy(got)).all()


# ---- bad input ------------------------------------------------------------------------------
BAD = [
    (lambda: us.bandpass(np.zeros((8, 2), np.float64), FS, 1e6, 2e6), "rf"),
    (lambda: us.bandpass(np.zeros((8,), np.float32), FS, 1e6, 2e6), "rf"),
    (lambda: us.bandpass(np.zeros((0, 4), np.float32), FS, 1e6, 2e6), "rf"),
    (lambda: us.bandpass(np.full((8, 2), np.nan, np.float32), FS, 1e6, 2e6), "rf"),
    (lambda: us.bandpass(np.zeros((8, 2), np.float32), FS, 3e6, 2e6), "high_hz"),
    (lambda: us.bandpass(np.zeros((8, 2), np.float32), FS, 1e6, 2e6, taps=10), "taps"),
    (lambda: us.demodulate(np.zeros((8, 2), np.float32), FS, FS / 2), "f0_hz"),
    (lambda: us.demodulate(np.zeros((8, 2), np.float32), FS, 5e6, decimation=0), "decimation"),
    (lambda: us.demodulate(np.zeros((8, 2), np.float32), FS, 5e6, decimation=20), "decimation"),
    (lambda: us.log_compress(np.ones((4, 4), np.float32), dynamic_range_db=0), "dynamic_range_db"),
    (lambda: us.log_compress(np.ones((4, 4), np.float32), reference=-1.0), "reference"),
    (lambda: us.log_compress(np.ones((4, 4), np.float32), out_dtype=np.int32), "out_dtype"),
    (lambda: us.log_compress(np.ones((4, 4), np.float32), out=np.zeros((4, 5), np.float32)), "out"),
    (lambda: us.log_compress(np.ones((4, 4), np.float32), out=np.zeros((4, 4), np.float64)), "out"),
    (lambda: us.envelope(np.ones((4, 4), np.float32), taps=1), "taps"),
    (lambda: us.envelope_log(np.ones((4, 4), np.float32), taps=4), "taps"),
    (lambda: us.envelope_log(np.ones((4, 4), np.complex64)), "rf"),
    (lambda: us.envelope_log(np.ones((4, 4), np.float32), dynamic_range_db=-3), "dynamic_range_db"),
    (lambda: us.envelope_log(np.ones((4, 4), np.float32), reference=0.0), "reference"),
    (lambda: us.envelope_log(np.ones((4, 4), np.float32), out=np.zeros((4, 4), np.uint8)), "out"),
    (lambda: us.tgc(np.ones((4, 4), np.float32), [(0, 1), (5, 2)]), "fs_hz"),
    (lambda: us.persistence(np.ones((2, 4, 4), np.float32), alpha=1.0), "alpha"),
    (lambda: us.bmode(np.ones((4, 4), np.float32), FS, 5e6, backend="nope"), "backend"),
]


@pytest.mark.parametrize("call,arg", BAD)
def test_bad_input_names_argument(call, arg):
    with pytest.raises(us.InputError, match=arg):
        call()


def test_nan_check_can_be_skipped():
    x = np.ones((8, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(us.InputError, match="finite"):
        us.envelope(x)
    y = us.envelope(x, check_finite=False)  # documented: the caller vouches for the data
    assert y.shape == x.shape


def test_cuda_unavailable_says_why():
    if us.build_info()["backends"]["cuda"]["available"]:
        pytest.skip("a CUDA device is present here")
    with pytest.raises(us.BackendUnavailable, match="cuda"):
        us.envelope(np.ones((4, 4), np.float32), backend="cuda")


def test_numpy_calls_do_not_load_cupy_or_scipy():
    """A frame-rate prototype's first NumPy call pays for neither CuPy's import (about 0.1 s,
    to learn that no GPU is asked for) nor SciPy's (the reference backend's, about 0.2 s)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, usfast as us\n"
        "rf = (np.random.default_rng(0).standard_normal((512, 64)) * 1000).astype(np.int16)\n"
        "us.bmode(rf, 40e6, 7.5e6, decimation=4, dynamic_range_db=60)\n"
        "img = np.random.default_rng(0).random((128, 128)).astype(np.float32)\n"
        "us.locate_needle(img, geometry=us.ImageGeometry((0.1, 0.1), (0, 0), (128, 128)))\n"
        "print(sorted(m for m in ('scipy', 'cupy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
