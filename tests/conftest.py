"""Shared fixtures: a ``backend`` fixture over the compiled/GPU backends present (each compared
against ``reference``), a missing one skipped with its reason; GPU tests marked ``gpu``."""
from __future__ import annotations

import numpy as np
import pytest

import usfast as us
from usfast import _backend, tolerances

COMPILED = ["cpu", "cuda", "cupy"]


def _skip_reason(name):
    ok, why = _backend.status()[name]
    return None if ok else f"backend {name!r} not available: {why}"


@pytest.fixture(params=[pytest.param(b, marks=[pytest.mark.gpu] if b != "cpu" else [])
                        for b in COMPILED])
def backend(request):
    """Each compiled backend present (cpu, cuda, cupy); the others skip with the reason."""
    why = _skip_reason(request.param)
    if why:
        pytest.skip(why)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def to_numpy(x):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def assert_matches(op, actual, expected, **override):
    """Compare a backend's output with the reference using the tolerance table."""
    tol = tolerances.get(op)
    tol.update(override)
    a, e = to_numpy(actual), to_numpy(expected)
    wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(e) else np.float64
    np.testing.assert_allclose(a.astype(wide), e.astype(wide), **tol)


def poisoned(shape, dtype, xp=np):
    """An output buffer full of NaN (float) or a sentinel (int), so unwritten pixels show."""
    a = xp.empty(shape, dtype=dtype)
    a[...] = np.nan if np.dtype(dtype).kind in "fc" else 77
    return a


def strided_view(a, pad=3):
    """``a``'s values inside a larger buffer: a row-strided sub-region view."""
    big = np.zeros(a.shape[:-2] + (a.shape[-2] + pad, a.shape[-1] + 2 * pad), dtype=a.dtype)
    big[..., 1:1 + a.shape[-2], pad:pad + a.shape[-1]] = a
    v = big[..., 1:1 + a.shape[-2], pad:pad + a.shape[-1]]
    assert not v.flags.c_contiguous
    return v


ODD_SIZES = [(1, 1), (7, 13), (64, 1), (1, 50), (257, 129)]
