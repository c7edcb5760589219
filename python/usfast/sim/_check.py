"""Parameter checks shared by the simulator; every failure is a :class:`usfast.InputError`
whose message names the function and the parameter (``func(arg): expected ...; got ...``)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._errors import fail


def number(func, name, v):
    """A finite real number (bool excluded)."""
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
        raise fail(func, name, "a finite number", repr(v))
    v = float(v)
    if not math.isfinite(v):
        raise fail(func, name, "a finite number", v)
    return v


def positive(func, name, v):
    v = number(func, name, v)
    if v <= 0:
        raise fail(func, name, "a positive number", v)
    return v


def nonneg(func, name, v):
    v = number(func, name, v)
    if v < 0:
        raise fail(func, name, "a number >= 0", v)
    return v


def in_range(func, name, v, lo, hi, *, lo_open=False, hi_open=False):
    v = number(func, name, v)
    bad = (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi)
    if bad:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise fail(func, name, f"a number in {lb}{lo}, {hi}{rb}", v)
    return v


def angle(func, name, v):
    """A needle angle to the probe face, strictly inside (0, 90) degrees."""
    v = number(func, name, v)
    if not 0.0 < v < 90.0:
        raise fail(func, name, "an angle in (0, 90) degrees", v)
    return v


def count(func, name, v, minimum=0):
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        else:
            raise fail(func, name, f"an integer >= {minimum}", repr(v))
    v = int(v)
    if v < minimum:
        raise fail(func, name, f"an integer >= {minimum}", v)
    return v


def choice(func, name, v, options):
    if v not in options:
        raise fail(func, name, "one of " + ", ".join(repr(o) for o in options), repr(v))
    return v


def point(func, name, v):
    """An (x, z) point of two finite numbers."""
    try:
        p = tuple(v)
    except TypeError:
        raise fail(func, name, "an (x, z) point of two finite numbers", repr(v)) from None
    if len(p) != 2:
        raise fail(func, name, "an (x, z) point of two finite numbers", repr(v))
    return (number(func, name, p[0]), number(func, name, p[1]))


def shape2(func, name, v):
    try:
        s = tuple(v)
    except TypeError:
        raise fail(func, name, "(rows, cols) of two positive integers", repr(v)) from None
    if len(s) != 2:
        raise fail(func, name, "(rows, cols) of two positive integers", repr(v))
    out = []
    for a in s:
        if isinstance(a, bool) or not isinstance(a, (numbers.Integral, np.integer)) or a < 1:
            raise fail(func, name, "(rows, cols) of two positive integers", repr(v))
        out.append(int(a))
    return tuple(out)


def seed(func, name, v):
    """A seed: a non-negative integer."""
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) or v < 0:
        raise fail(func, name, "a non-negative integer seed", repr(v))
    return int(v)


def rng_from(func, name, v, *stream):
    """A numpy Generator from an int seed (optionally a sub-stream) or a Generator."""
    if isinstance(v, np.random.Generator):
        return v
    s = seed(func, name, v)
    return np.random.default_rng(np.random.SeedSequence([s, *stream]))
