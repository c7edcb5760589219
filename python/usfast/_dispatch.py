"""The common path of every public operation: pick the backend, bring the input there, make or
check ``out``, and call the compiled core (``cpu``/``cuda``) or the NVRTC kernels (``cupy``).

Public functions read as::

    c = Call("log_compress", x, backend, stream)          # backend chosen, input moved if needed
    x = c.input("env", x, (np.float32, np.complex64), check_finite=check_finite)
    out = c.output(out, shape, np.float32)
    if c.backend == "reference": ...                      # float64 NumPy from the formulas
    elif c.backend == "cupy": c.launch("bmode", kernel_name, rows, cols, frames, args)
    else: c.core("log_compress_f32_f32", c.desc(x), c.desc(out), ..., )   # appends device, stream
    return c.result(out)
"""
from __future__ import annotations

import numpy as np

from . import _arrays, _backend, _cupy
from ._errors import fail


class Call:
    __slots__ = ("func", "backend", "original", "xp", "stream", "device", "_user_out")

    def __init__(self, func, x, backend, stream=None):
        self.func = func
        self.original = x
        self.backend = _backend.select(x, backend)
        gpu = self.backend in _backend.GPU_BACKENDS
        self.xp = _backend.cupy_module() if gpu else np
        self.device = 1 if self.backend == "cuda" else 0
        self.stream = _arrays.stream_ptr(x, stream) if gpu else 0
        self._user_out = None

    def input(self, arg, x, dtypes, *, ndim=(2, 3), check_finite=True, min_shape=(1, 1)):
        """Validated input on this call's device, columns contiguous (copy otherwise)."""
        a = _arrays.as_array(self.func, arg, x)
        a = _arrays.check_input(self.func, arg, a, dtypes, ndim=ndim, check_finite=check_finite,
                                min_shape=min_shape)
        a = _arrays.to_backend(a, self.backend)
        return _arrays.contiguous_cols(a)

    def output(self, out, shape, dtype):
        """The buffer the kernel writes: ``out`` checked, a new array, or a device temporary
        when a host ``out`` meets a GPU backend (copied into ``out`` by ``result``)."""
        self._user_out = None
        if out is None:
            return self.xp.empty(shape, dtype=dtype)
        o = _arrays.as_array(self.func, "out", out)
        _arrays.check_out(self.func, o, shape, dtype)
        gpu = self.backend in _backend.GPU_BACKENDS
        if gpu and not _arrays.on_device(o):
            self._user_out = o
            return self.xp.empty(shape, dtype=dtype)
        if not gpu and _arrays.on_device(o):
            raise fail(self.func, "out", f"a host array for the {self.backend} backend",
                       "a GPU array")
        return o

    def table(self, arr, dtype=np.float32):
        """A small parameter table (taps, gains) on this call's device."""
        if self.xp is np:
            if type(arr) is np.ndarray and arr.dtype == dtype and arr.flags.c_contiguous:
                return arr
            return np.ascontiguousarray(arr, dtype=dtype)
        return self.xp.asarray(np.ascontiguousarray(arr, dtype=dtype))

    @staticmethod
    def desc(a):
        """What the core takes for an image: a NumPy array as itself, a GPU array as its
        (pointer, frames, rows, cols, frame stride, row stride) descriptor."""
        return a if type(a) is np.ndarray else _arrays.desc(a)

    @staticmethod
    def ptr(a) -> int:
        return 0 if a is None else _arrays.pointer(a)

    def core(self, name, *args):
        return getattr(_backend.core(), name)(*args, self.device, self.stream)

    def launch(self, area, name, rows, cols, frames, args):
        _cupy.launch(area, name, rows, cols, frames, args, self.stream)

    def result(self, buf):
        """The output as the caller's array type (NumPy for NumPy, CuPy/PyTorch for GPU)."""
        if self._user_out is not None:
            self._user_out[...] = self.xp.asnumpy(buf)
            return self._user_out
        return _arrays.like_input(buf, self.original)


def frames_of(shape):
    """(frames, rows, cols) of a 2-D or 3-D shape."""
    return (1, *shape) if len(shape) == 2 else tuple(shape)


def i64(v):
    return np.int64(v)


def i32(v):
    return np.int32(v)


def f32(v):
    return np.float32(v)
