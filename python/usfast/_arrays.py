"""How arrays cross into the core: checks, descriptors, output buffers and streams.

A descriptor is the 6-tuple ``(pointer, frames, rows, cols, frame_stride, row_stride)`` with
strides in elements, which the bindings turn into ``usfast::Image<T>``. Host arrays come through
the NumPy array interface, GPU arrays through ``__cuda_array_interface__`` (v3). Row-strided
views and sub-regions pass without a copy; an input whose columns are not contiguous is copied
(the only copy made, and documented on every function).
"""
from __future__ import annotations

import numpy as np

from . import _backend
from ._errors import InputError, fail


def xp_of(x):
    """numpy for host arrays, cupy for GPU arrays."""
    if _backend.is_device_array(x):
        cp = _backend.cupy_module()
        if cp is None:
            raise _backend.BackendUnavailable(
                "a GPU array was given but CuPy is not installed (pip install 'usfast[cupy]')")
        return cp
    return np


def as_array(func, arg, x):
    """NumPy or CuPy view of ``x`` (zero copy for CuPy, PyTorch and Numba device arrays)."""
    if isinstance(x, np.ndarray):
        return x
    if _backend.is_device_array(x):
        cp = xp_of(x)
        return x if isinstance(x, cp.ndarray) else cp.asarray(x)
    try:
        return np.asarray(x)
    except Exception as e:
        raise fail(func, arg, "an array", type(x).__name__) from e


def check_input(func, arg, a, dtypes, *, ndim=(2, 3), check_finite=True, min_shape=(1, 1)):
    """Validate dtype, ndim and size; reject NaN/Inf when asked. Returns the array."""
    if a.dtype not in dtypes:
        names = ", ".join(np.dtype(d).name for d in dtypes)
        raise fail(func, arg, f"dtype {names}", a.dtype)
    if a.ndim not in ndim:
        raise fail(func, arg, f"{' or '.join(map(str, ndim))}-D array "
                   "(rows, cols) or (frames, rows, cols)", f"{a.ndim}-D shape {a.shape}")
    if a.size == 0:
        raise fail(func, arg, "a non-empty array", f"shape {a.shape}")
    if a.shape[-2] < min_shape[0] or a.shape[-1] < min_shape[1]:
        raise fail(func, arg, f"at least {min_shape[0]}x{min_shape[1]} samples", a.shape)
    if check_finite and a.dtype.kind in "fc":
        xp = xp_of(a)
        if not bool(xp.isfinite(a).all()):
            raise fail(func, arg, "finite values (pass check_finite=False to skip this check)",
                       "NaN or Inf")
    return a


def contiguous_cols(a):
    """``a`` itself when its last axis is contiguous, else a C-contiguous copy."""
    if a.ndim and a.strides[-1] != a.itemsize:
        return xp_of(a).ascontiguousarray(a)
    return a


def pointer(a) -> int:
    if isinstance(a, np.ndarray):
        return a.ctypes.data
    return a.__cuda_array_interface__["data"][0]


def desc(a):
    """The 6-tuple descriptor of a 2-D or 3-D array whose last axis is contiguous."""
    it = a.itemsize
    s = a.strides
    if a.ndim == 2:
        return (pointer(a), 1, a.shape[0], a.shape[1], a.shape[0] * (s[0] // it), s[0] // it)
    return (pointer(a), a.shape[0], a.shape[1], a.shape[2], s[0] // it, s[1] // it)


def on_device(a) -> bool:
    return _backend.is_device_array(a)


def check_out(func, o, shape, dtype):
    """``out`` must have the result's shape and dtype, contiguous columns, and be writeable."""
    if tuple(o.shape) != tuple(shape):
        raise fail(func, "out", f"shape {tuple(shape)}", tuple(o.shape))
    if o.dtype != np.dtype(dtype):
        raise fail(func, "out", f"dtype {np.dtype(dtype).name}", o.dtype)
    if o.strides[-1] != o.itemsize:
        raise fail(func, "out", "contiguous columns (a row-strided view is fine)", o.strides)
    if isinstance(o, np.ndarray) and not o.flags.writeable:
        raise fail(func, "out", "a writeable array")


def stream_ptr(x, stream) -> int:
    """The CUDA stream a GPU call runs on: ``stream=`` (a CuPy/PyTorch stream or a raw
    pointer), else the input's ``__cuda_array_interface__`` stream, else CuPy's current one."""
    if stream is not None:
        if isinstance(stream, int):
            return stream
        for attr in ("ptr", "cuda_stream"):
            if hasattr(stream, attr):
                return int(getattr(stream, attr))
        raise InputError(f"stream: expected a CUDA stream object or pointer; got {type(stream).__name__}")
    cai = getattr(x, "__cuda_array_interface__", None)
    if cai is not None and cai.get("stream") not in (None, 0, 1, 2):
        return int(cai["stream"])
    cp = _backend.cupy_module()
    return int(cp.cuda.get_current_stream().ptr) if cp is not None else 0


def to_backend(x, backend):
    """Move ``x`` to where ``backend`` runs (a documented copy when it is elsewhere)."""
    if backend in _backend.GPU_BACKENDS and isinstance(x, np.ndarray):
        return _backend.cupy_module().asarray(x)
    if backend in ("cpu", "reference") and on_device(x):
        return xp_of(x).asnumpy(x)
    return x


def like_input(result, original):
    """Return ``result`` as the input's array type: NumPy for NumPy, and for a GPU input the
    same library it came from (CuPy, PyTorch) through ``__cuda_array_interface__``."""
    if isinstance(original, np.ndarray) or not on_device(original):
        if on_device(result):
            return xp_of(result).asnumpy(result)
        return result
    if not on_device(result):  # a host backend (reference) ran on a GPU input
        result = _backend.cupy_module().asarray(result)
    mod = type(original).__module__.split(".")[0]
    if mod == "torch":
        import torch
        return torch.as_tensor(result, device=original.device)
    return result


def host_array(func, x, arg="image"):
    """A NumPy view of ``x``; GPU arrays (CuPy, or anything with ``.get()``) are copied to the
    host. For the host-side stages (overlay drawing, streaming)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__cuda_array_interface__"):
        get = getattr(x, "get", None)
        if get is None:
            raise fail(func, arg, "a NumPy or CuPy array", type(x).__name__)
        return get()
    return np.asarray(x)
