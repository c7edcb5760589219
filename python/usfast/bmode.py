"""B-mode formation: beamformed RF or IQ lines ``(samples, lines)`` (or batches
``(frames, samples, lines)``) to a display image.

Every function: ``f(x, *, <params>, out=None, backend=None, stream=None, check_finite=True)``.
RF may be int16 or float32, IQ is complex64. Inputs whose columns are not contiguous are copied;
row-strided views and sub-regions are used in place.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import design
from ._dispatch import Call, f32, frames_of, i32, i64
from ._errors import fail
from .reference import bmode as ref

__all__ = ["bandpass", "tgc", "tgc_gain", "demodulate", "envelope", "log_compress", "bmode",
           "persistence"]

_RF = (np.dtype(np.float32), np.dtype(np.int16))
_SFX = {np.dtype(k): v for k, v in (("float32", "f32"), ("int16", "i16"), ("complex64", "c64"),
                                     ("uint8", "u8"))}


def _num(func, name, v, lo=None, hi=None, lo_open=False, hi_open=False):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise fail(func, name, "a number", repr(v)) from None
    if not math.isfinite(v):
        raise fail(func, name, "a finite number", v)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise fail(func, name, f"a value {'>' if lo_open else '>='} {lo:g}", v)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise fail(func, name, f"a value {'<' if hi_open else '<='} {hi:g}", v)
    return v


def _ntaps(func, taps, default):
    if taps is None:
        return default
    if isinstance(taps, (int, np.integer)):
        if taps < 1 or taps % 2 == 0:
            raise fail(func, "taps", "an odd number of taps >= 1", taps)
        return int(taps)
    raise fail(func, "taps", "an odd integer tap count", type(taps).__name__)



# ---- axial FIR (band-pass) -------------------------------------------------------------------
def _fir(c: Call, x, h, out):
    F, R, C = frames_of(x.shape)
    o = c.output(out, x.shape, np.float32)
    if c.backend == "reference":
        o[...] = ref.fir_axial(x, h)
        return c.result(o)
    ht = c.table(h)
    if c.backend == "cupy":
        dx, do = c.desc(x), c.desc(o)
        c.launch("bmode", f"usfast_fir_axial_{_SFX[x.dtype]}", R, C, F,
                 (x, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(R), i32(C), ht,
                  i32(len(h))))
    else:
        c.core(f"fir_axial_{_SFX[x.dtype]}", c.desc(x), c.desc(o), c.ptr(ht), len(h))
    return c.result(o)


def bandpass(rf, fs_hz, low_hz, high_hz, *, taps=None, window="hamming", out=None, backend=None,
             stream=None, check_finite=True):
    """Linear-phase FIR band-pass along depth, zero-phase aligned, with exact DC removal.

    rf: (samples, lines) or (frames, samples, lines), int16 or float32. fs_hz: sampling rate;
    low_hz < high_hz < fs_hz/2: band edges (-6 dB). taps: odd tap count (default from the
    narrower transition band). Returns float32 of the input's shape. Taps from
    :func:`usfast.design.bandpass_taps` (sum exactly 0, so any DC offset is removed).
    """
    fn = "bandpass"
    fs = _num(fn, "fs_hz", fs_hz, 0, lo_open=True)
    lo = _num(fn, "low_hz", low_hz, 0, lo_open=True)
    hi = _num(fn, "high_hz", high_hz, lo, fs / 2, lo_open=True, hi_open=True)
    n = _ntaps(fn, taps, design.default_taps(fs, min(lo, (hi - lo)) * 0.5 + 1e-9, lo=31))
    c = Call(fn, rf, backend, stream)
    x = c.input("rf", rf, _RF, check_finite=check_finite)
    h = design.bandpass_taps(n, lo, hi, fs, window=window).astype(np.float32)
    return _fir(c, x, h, out)


# ---- time-gain compensation -----------------------------------------------------------------
def tgc_gain(n_samples, gain_db=None, *, fs_hz=None, depth_mm=None, sound_speed_m_s=1540.0,
             start_depth_mm=0.0, attenuation_db_cm_mhz=None, f0_hz=None, func="tgc"):
    """Linear gain per depth sample (float32, length ``n_samples``).

    gain_db: a constant (dB), a per-sample curve of length n_samples (dB), or knots
    ``[(depth_mm, dB), ...]`` interpolated linearly in depth (held flat beyond the ends).
    attenuation_db_cm_mhz (with f0_hz): adds the round-trip compensation 2 * a * f0[MHz] * z[cm].
    Sample depths: ``depth_mm`` (per sample), or ``start_depth_mm + n * c / (2 fs)``.
    """
    n = int(n_samples)
    need_depth = attenuation_db_cm_mhz is not None or (
        gain_db is not None and np.ndim(gain_db) == 2)
    z = None
    if depth_mm is not None:
        z = np.asarray(depth_mm, dtype=np.float64).ravel()
        if z.shape != (n,) or not np.all(np.isfinite(z)):
            raise fail(func, "depth_mm", f"{n} finite depths (one per sample)", z.shape)
    elif need_depth:
        if fs_hz is None:
            raise fail(func, "fs_hz", "the sampling rate (or depth_mm) to place knots in depth")
        fs = _num(func, "fs_hz", fs_hz, 0, lo_open=True)
        cc = _num(func, "sound_speed_m_s", sound_speed_m_s, 0, lo_open=True)
        z = start_depth_mm + np.arange(n) * (cc / (2 * fs)) * 1e3
    db = np.zeros(n)
    if gain_db is not None:
        g = np.asarray(gain_db, dtype=np.float64)
        if not np.all(np.isfinite(g)):
            raise fail(func, "gain_db", "finite values", "NaN or Inf")
        if g.ndim == 0:
            db += g
        elif g.ndim == 1:
            if g.shape != (n,):
                raise fail(func, "gain_db", f"a constant, {n} values or (depth_mm, dB) knots",
                           g.shape)
            db += g
        elif g.ndim == 2 and g.shape[1] == 2 and g.shape[0] >= 1:
            order = np.argsort(g[:, 0])
            db += np.interp(z, g[order, 0], g[order, 1])
        else:
            raise fail(func, "gain_db", "a constant, a curve or (depth_mm, dB) knots", g.shape)
    if attenuation_db_cm_mhz is not None:
        a = _num(func, "attenuation_db_cm_mhz", attenuation_db_cm_mhz, 0)
        if f0_hz is None:
            raise fail(func, "f0_hz", "the centre frequency with attenuation_db_cm_mhz")
        f0 = _num(func, "f0_hz", f0_hz, 0, lo_open=True)
        db += 2.0 * a * (f0 / 1e6) * (z / 10.0)
    if np.max(np.abs(db)) > 300:
        raise fail(func, "gain_db", "gains within +-300 dB", float(np.max(np.abs(db))))
    return (10.0 ** (db / 20.0)).astype(np.float32)


def tgc(x, gain_db=None, *, fs_hz=None, depth_mm=None, sound_speed_m_s=1540.0,
        start_depth_mm=0.0, attenuation_db_cm_mhz=None, f0_hz=None, out=None, backend=None,
        stream=None, check_finite=True):
    """Time-gain compensation: multiply each depth sample by its gain (see :func:`tgc_gain`).

    x: RF (int16/float32 -> float32 out) or IQ (complex64 -> complex64 out), 2-D or 3-D.
    """
    fn = "tgc"
    c = Call(fn, x, backend, stream)
    a = c.input("x", x, _RF + (np.dtype(np.complex64),), check_finite=check_finite)
    g = tgc_gain(a.shape[-2], gain_db, fs_hz=fs_hz, depth_mm=depth_mm,
                 sound_speed_m_s=sound_speed_m_s, start_depth_mm=start_depth_mm,
                 attenuation_db_cm_mhz=attenuation_db_cm_mhz, f0_hz=f0_hz)
    cplx = a.dtype == np.complex64
    o = c.output(out, a.shape, np.complex64 if cplx else np.float32)
    if c.backend == "reference":
        o[...] = ref.tgc(a, g) if not cplx else a * g[:, None].astype(np.float64)
        return c.result(o)
    # complex64 is interleaved float32: the same kernel with twice the columns
    xa = a.view(np.float32) if cplx else a
    oa = o.view(np.float32) if cplx else o
    F, R, C = frames_of(xa.shape)
    gt = c.table(g)
    sfx = _SFX[xa.dtype]
    if c.backend == "cupy":
        dx, do = c.desc(xa), c.desc(oa)
        c.launch("bmode", f"usfast_tgc_{sfx}", R, C, F,
                 (xa, i64(dx[4]), i64(dx[5]), oa, i64(do[4]), i64(do[5]), i32(R), i32(C), gt))
    else:
        c.core(f"tgc_{sfx}", c.desc(xa), c.desc(oa), c.ptr(gt))
    return c.result(o)


# ---- demodulation, envelope, log compression -----------------------------------------------
@functools.lru_cache(maxsize=64)
def _mixer(n, fs, f0, gain_key):
    """2 g[n] exp(-i 2 pi f0 n / fs) as complex64 (TGC gain folded in)."""
    g = np.ones(n) if gain_key is None else np.frombuffer(gain_key, dtype=np.float32)
    ph = -2.0 * np.pi * f0 * np.arange(n) / fs
    m = (2.0 * g * np.exp(1j * ph)).astype(np.complex64)
    m.setflags(write=False)
    return m


def _demod_setup(fn, shape, fs_hz, f0_hz, decimation, bandwidth_hz, taps, gain):
    fs = _num(fn, "fs_hz", fs_hz, 0, lo_open=True)
    f0 = _num(fn, "f0_hz", f0_hz, 0, fs / 2, lo_open=True, hi_open=True)
    if not isinstance(decimation, (int, np.integer)) or decimation < 1:
        raise fail(fn, "decimation", "an integer >= 1", decimation)
    bw = f0 if bandwidth_hz is None else _num(fn, "bandwidth_hz", bandwidth_hz, 0, fs, True)
    if fs / decimation < bw * (1 - 1e-9):
        raise fail(fn, "decimation", f"fs_hz/decimation >= bandwidth_hz ({bw:g} Hz) to avoid "
                   "aliasing", decimation)
    n = _ntaps(fn, taps, design.default_taps(fs, bw / 2))
    h = design.lowpass_taps(n, bw / 2, fs).astype(np.float32)
    R = shape[-2]
    mix = _mixer(R, fs, f0, None if gain is None else gain.tobytes())
    rows_out = (R + decimation - 1) // decimation
    return h, mix, rows_out


def _run_demod(c, x, h, mix, dec, o):
    F, R, C = frames_of(x.shape)
    M = o.shape[-2]
    if c.backend == "reference":
        o[...] = ref.demodulate(x, h, dec, mix)
        return
    ht, mt = c.table(h), c.table(mix, np.complex64)
    if c.backend == "cupy":
        dx, do = c.desc(x), c.desc(o)
        c.launch("bmode", f"usfast_demod_{_SFX[x.dtype]}", M, C, F,
                 (x, i64(dx[4]), i64(dx[5]), i32(R), o, i64(do[4]), i64(do[5]), i32(M), i32(C),
                  ht, i32(len(h)), i32(dec), mt))
    else:
        c.core(f"demodulate_{_SFX[x.dtype]}", c.desc(x), c.desc(o), c.ptr(ht), len(h), dec,
               c.ptr(mt))


def demodulate(rf, fs_hz, f0_hz, *, decimation=1, bandwidth_hz=None, taps=None, out=None,
               backend=None, stream=None, check_finite=True):
    """Quadrature demodulation: mix to baseband, linear-phase FIR low-pass (causal with a fixed
    delay, so usable on a stream, unlike filtfilt), decimate. Returns complex64 IQ of shape
    ``(..., ceil(samples/decimation), lines)``; |IQ| equals the RF envelope.

    bandwidth_hz: two-sided bandwidth kept around f0 (low-pass cutoff bandwidth/2; default f0).
    """
    fn = "demodulate"
    c = Call(fn, rf, backend, stream)
    x = c.input("rf", rf, _RF, check_finite=check_finite)
    h, mix, M = _demod_setup(fn, x.shape, fs_hz, f0_hz, decimation, bandwidth_hz, taps, None)
    o = c.output(out, x.shape[:-2] + (M, x.shape[-1]), np.complex64)
    _run_demod(c, x, h, mix, int(decimation), o)
    return c.result(o)


def envelope(x, *, taps=41, out=None, backend=None, stream=None, check_finite=True):
    """Envelope: |IQ| for complex64 input; for real RF (int16/float32), sqrt(x^2 + H{x}^2)
    with an FIR Hilbert transformer of ``taps`` (odd) taps, delay-compensated. float32 out."""
    fn = "envelope"
    c = Call(fn, x, backend, stream)
    a = c.input("x", x, _RF + (np.dtype(np.complex64),), check_finite=check_finite)
    o = c.output(out, a.shape, np.float32)
    F, R, C = frames_of(a.shape)
    if a.dtype == np.complex64:
        if c.backend == "reference":
            o[...] = np.abs(a.astype(np.complex128))
        elif c.backend == "cupy":
            dx, do = c.desc(a), c.desc(o)
            c.launch("bmode", "usfast_envelope_iq", R, C, F,
                     (a, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(R), i32(C)))
        else:
            c.core("envelope_iq", c.desc(a), c.desc(o))
        return c.result(o)
    hh = _hilbert(fn, taps)
    _run_envelope_rf(c, a, o, hh)
    return c.result(o)


def _hilbert(fn, taps):
    n = _ntaps(fn, taps, 41)
    if n < 3:
        raise fail(fn, "taps", "an odd Hilbert length >= 3", n)
    return design.hilbert_taps(n).astype(np.float32)


def _run_envelope_rf(c, a, o, hh):
    F, R, C = frames_of(a.shape)
    n = len(hh)
    if c.backend == "reference":
        o[...] = ref.envelope_rf(a, hh)
        return
    ht = c.table(hh)
    sfx = _SFX[a.dtype]
    if c.backend == "cupy":
        dx, do = c.desc(a), c.desc(o)
        c.launch("bmode", f"usfast_envelope_rf_{sfx}", R, C, F,
                 (a, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(R), i32(C), ht, i32(n)))
    else:
        c.core(f"envelope_rf_{sfx}", c.desc(a), c.desc(o), c.ptr(ht), n)


def envelope_log(rf, *, taps=41, dynamic_range_db=60.0, gain_db=0.0, reference="max",
                 out_dtype=np.float32, out=None, backend=None, stream=None, check_finite=True):
    """Envelope detection and log compression of real RF in one pass over memory: the same
    display image as ``log_compress(envelope(rf, taps=taps), ...)`` without the envelope ever
    being stored. dB = 20 log10(env / reference) + gain_db is computed as 10 log10 of the
    power x^2 + H{x}^2 (no square root), clamped to [-dynamic_range_db, 0] and returned as
    float32 [0, 1] or uint8.

    rf: int16 or float32 ``(samples, lines)`` or a batch. reference: a fixed amplitude (one pass;
    use this on streams) or ``"max"`` (each frame's maximum envelope: the envelope is formed
    first, then compressed, two passes).
    """
    fn = "envelope_log"
    dr, g, od = _log_params(fn, dynamic_range_db, gain_db, out_dtype)
    c = Call(fn, rf, backend, stream)
    a = c.input("rf", rf, _RF, check_finite=check_finite)
    hh = _hilbert(fn, taps)
    F, R, C = frames_of(a.shape)
    o = c.output(out, a.shape, od)
    if isinstance(reference, str) or c.backend == "reference":
        env = (np.empty(a.shape, np.float64) if c.backend == "reference"
               else c.xp.empty(a.shape, np.float32))
        _run_envelope_rf(c, a, env, hh)
        _run_log(c, env, o, _inv_ref(c, fn, env, reference, F), g, dr)
        return c.result(o)
    inv = _inv_ref(c, fn, None, reference, F)
    ht = c.table(hh)
    name = f"envelope_log_{_SFX[a.dtype]}_{_SFX[od]}"
    if c.backend == "cupy":
        dx, do = c.desc(a), c.desc(o)
        c.launch("bmode", "usfast_" + name, R, C, F,
                 (a, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(R), i32(C), ht,
                  i32(len(hh)), inv, f32(g), f32(dr)))
    else:
        c.core(name, c.desc(a), c.desc(o), c.ptr(ht), len(hh), c.ptr(inv), g, dr)
    return c.result(o)


def _log_params(fn, dynamic_range_db, gain_db, out_dtype):
    dr = _num(fn, "dynamic_range_db", dynamic_range_db, 0, 1e6, lo_open=True)
    g = _num(fn, "gain_db", gain_db, -1e6, 1e6)
    od = np.dtype(out_dtype)
    if od not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise fail(fn, "out_dtype", "float32 or uint8", od)
    return dr, g, od


def _inv_ref(c, fn, mag, reference, frames):
    """1/reference per frame: fixed (a positive number) or each frame's maximum of |x|."""
    if isinstance(reference, str):
        if reference != "max":
            raise fail(fn, "reference", "a positive amplitude or 'max'", repr(reference))
        xp = c.xp
        m = xp.abs(mag).reshape(frames, -1).max(axis=1).astype(np.float64)
        m = xp.where(m > 0, m, 1.0)
        return (1.0 / m).astype(np.float32)
    r = _num(fn, "reference", reference, 0, lo_open=True)
    return c.table(_fixed_inv_ref(frames, r))


@functools.lru_cache(maxsize=256)
def _fixed_inv_ref(frames, r):
    a = np.full(frames, 1.0 / r, dtype=np.float32)
    a.setflags(write=False)
    return a


def _run_log(c, a, o, inv, g, dr):
    F, R, C = frames_of(a.shape)
    if c.backend == "reference":
        v = ref.log_compress(a, c.xp.asnumpy(inv) if c.xp is not np else inv, g, dr)
        o[...] = v if o.dtype == np.float32 else np.floor(v * 255 + 0.5).astype(np.uint8)
        return
    name = f"log_compress_{_SFX[a.dtype]}_{_SFX[o.dtype]}"
    if c.backend == "cupy":
        dx, do = c.desc(a), c.desc(o)
        c.launch("bmode", "usfast_" + name, R, C, F,
                 (a, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(R), i32(C), inv,
                  f32(g), f32(dr)))
    else:
        c.core(name, c.desc(a), c.desc(o), c.ptr(inv), g, dr)


def log_compress(env, *, dynamic_range_db=60.0, gain_db=0.0, reference="max",
                 out_dtype=np.float32, out=None, backend=None, stream=None, check_finite=True):
    """Log compression to a display image.

    dB = 20 log10(env / reference) + gain_db, clamped to [-dynamic_range_db, 0], returned as
    float32 in [0, 1] (0 <-> -DR dB, 1 <-> 0 dB) or uint8 0..255 (``out_dtype=np.uint8``).
    env: envelope (float32) or IQ (complex64, magnitude taken), 2-D or 3-D.
    reference: a fixed amplitude (brightness stays steady from frame to frame: use this on
    streams) or ``"max"`` (each frame's maximum).
    """
    fn = "log_compress"
    dr, g, od = _log_params(fn, dynamic_range_db, gain_db, out_dtype)
    c = Call(fn, env, backend, stream)
    a = c.input("env", env, (np.dtype(np.float32), np.dtype(np.complex64)),
                check_finite=check_finite)
    F = frames_of(a.shape)[0]
    inv = _inv_ref(c, fn, a, reference, F)
    o = c.output(out, a.shape, od)
    _run_log(c, a, o, inv, g, dr)
    return c.result(o)


def bmode(rf, fs_hz, f0_hz, *, decimation=1, bandwidth_hz=None, taps=None, tgc_db=None,
          attenuation_db_cm_mhz=None, sound_speed_m_s=1540.0, dynamic_range_db=60.0,
          gain_db=0.0, reference="max", out_dtype=np.float32, out=None, backend=None,
          stream=None, check_finite=True):
    """The fused B-mode chain: TGC, quadrature demodulation (mixing + linear-phase low-pass,
    which is also the band-pass around f0), decimation, envelope and log compression.

    With a fixed ``reference`` this is one pass over memory: each output pixel reads its RF
    taps once and writes its display value. ``reference="max"`` adds a reduction over the
    decimated IQ, then the log pass. Input int16/float32 RF ``(samples, lines)`` or batches;
    output ``(..., ceil(samples/decimation), lines)`` float32 [0, 1] or uint8.
    tgc_db / attenuation_db_cm_mhz: as :func:`tgc` (depth from fs_hz and sound speed).
    """
    fn = "bmode"
    dr, g, od = _log_params(fn, dynamic_range_db, gain_db, out_dtype)
    c = Call(fn, rf, backend, stream)
    x = c.input("rf", rf, _RF, check_finite=check_finite)
    gain = None
    if tgc_db is not None or attenuation_db_cm_mhz is not None:
        gain = tgc_gain(x.shape[-2], tgc_db, fs_hz=fs_hz, sound_speed_m_s=sound_speed_m_s,
                        attenuation_db_cm_mhz=attenuation_db_cm_mhz, f0_hz=f0_hz, func=fn)
    h, mix, M = _demod_setup(fn, x.shape, fs_hz, f0_hz, decimation, bandwidth_hz, taps, gain)
    F, R, C = frames_of(x.shape)
    oshape = x.shape[:-2] + (M, C)
    o = c.output(out, oshape, od)
    if isinstance(reference, str) or c.backend == "reference":
        iq = c.xp.empty(oshape, np.complex64) if c.backend != "reference" else np.empty(oshape, np.complex128)
        _run_demod(c, x, h, mix, int(decimation), iq)
        inv = _inv_ref(c, fn, iq, reference, F)
        if c.backend == "reference":
            v = ref.log_compress(iq, inv, g, dr)
            o[...] = v if od == np.float32 else np.floor(v * 255 + 0.5).astype(np.uint8)
        else:
            _run_log(c, iq, o, inv, g, dr)
        return c.result(o)
    inv = _inv_ref(c, fn, None, reference, F)
    ht, mt = c.table(h), c.table(mix, np.complex64)
    name = f"bmode_{_SFX[x.dtype]}_{_SFX[od]}"
    if c.backend == "cupy":
        dx, do = c.desc(x), c.desc(o)
        c.launch("bmode", "usfast_" + name, M, C, F,
                 (x, i64(dx[4]), i64(dx[5]), i32(R), o, i64(do[4]), i64(do[5]), i32(M), i32(C),
                  ht, i32(len(h)), i32(decimation), mt, inv, f32(g), f32(dr)))
    else:
        c.core(name, c.desc(x), c.desc(o), c.ptr(ht), len(h), int(decimation), c.ptr(mt),
               c.ptr(inv), g, dr)
    return c.result(o)


def persistence(frames, alpha=0.5, *, init=None, out=None, backend=None, stream=None,
                check_finite=True):
    """Recursive frame averaging: y[0] = (1-alpha) x[0] + alpha s0 (s0 = init or x[0]),
    y[f] = alpha y[f-1] + (1 - alpha) x[f]. frames: (frames, rows, cols) float32; init: the
    previous state (rows, cols) to continue a stream (pass the last output frame)."""
    fn = "persistence"
    a_ = _num(fn, "alpha", alpha, 0, 1, hi_open=True)
    c = Call(fn, frames, backend, stream)
    x = c.input("frames", frames, (np.dtype(np.float32),), ndim=(3,), check_finite=check_finite)
    ini = None
    if init is not None:
        ini = c.input("init", init, (np.dtype(np.float32),), ndim=(2,), check_finite=check_finite)
        if ini.shape != x.shape[1:]:
            raise fail(fn, "init", f"shape {x.shape[1:]}", ini.shape)
    o = c.output(out, x.shape, np.float32)
    F, R, C = x.shape
    if c.backend == "reference":
        o[...] = ref.persistence(x, a_, ini)
        return c.result(o)
    irs = 0 if ini is None else ini.strides[0] // 4
    if c.backend == "cupy":
        dx, do = c.desc(x), c.desc(o)
        c.launch("bmode", "usfast_persistence", R, C, 1,
                 (x, i64(dx[4]), i64(dx[5]), o, i64(do[4]), i64(do[5]), i32(F), i32(R), i32(C),
                  ini if ini is not None else np.uint64(0), i64(irs), f32(a_)))
    else:
        c.core("persistence", c.desc(x), c.desc(o), c.ptr(ini), irs, a_)
    return c.result(o)
