"""Backend discovery and choice (DESIGN.md, "Backends and dispatch").

``cpu`` (compiled C++), ``cuda`` (compiled CUDA), ``cupy`` (the same kernel sources compiled at
run time by NVRTC) and ``reference`` (NumPy float64, the oracle). Availability is decided once
and cached, with the reason for every backend that does not work here.
"""
from __future__ import annotations

import functools
import os

from ._errors import BackendUnavailable, InputError

BACKENDS = ("cpu", "cuda", "cupy", "reference")
GPU_BACKENDS = ("cuda", "cupy")


@functools.lru_cache(maxsize=None)
def core():
    """The compiled module, or None (with the reason in ``status()``)."""
    try:
        from . import _core  # noqa: F401
        return _core
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def _core_error() -> str:
    try:
        from . import _core  # noqa: F401
        return ""
    except ImportError as e:  # pragma: no cover - only without a build
        return f"the compiled module usfast._core did not import: {e}"


@functools.lru_cache(maxsize=None)
def cupy_module():
    if os.environ.get("USFAST_DISABLE_CUPY"):
        return None
    try:
        import cupy
        return cupy
    except Exception:
        return None


@functools.lru_cache(maxsize=None)
def _status_of(name: str) -> tuple:
    """(works, reason) of one backend, probed on first use only: a NumPy call does not pay for
    importing CuPy (about 0.1 s) to learn that it runs on the CPU."""
    if name == "reference":
        return (True, "NumPy float64")
    c = core()
    if name == "cpu":
        return (True, "compiled C++") if c is not None else (False, _core_error())
    if name == "cuda":
        if c is None:
            return (False, _core_error())
        if os.environ.get("USFAST_FORCE_CPU"):
            return (False, "disabled by USFAST_FORCE_CPU")
        if not c.build_info()["cuda_compiled"]:
            return (False, "usfast was built without CUDA (USFAST_CUDA=OFF or no nvcc at build "
                           "time)")
        n, why = c.cuda_device_count()
        return (True, f"{n} CUDA device(s)") if n > 0 else (False, why)
    if name == "cupy":
        if os.environ.get("USFAST_FORCE_CPU"):
            return (False, "disabled by USFAST_FORCE_CPU")
        cp = cupy_module()
        if cp is None:
            return (False, "CuPy is not installed (pip install 'usfast[cupy]')")
        try:
            ok = cp.cuda.is_available()
        except Exception as e:  # pragma: no cover
            ok, why = False, str(e)
        else:
            why = "" if ok else "CuPy found no usable CUDA device"
        return (True, f"CuPy {cp.__version__}") if ok else (False, why)
    return (False, f"unknown backend {name!r}")


def status() -> dict:
    """``{backend: (works: bool, reason: str)}`` for every backend."""
    return {name: _status_of(name) for name in ("reference", "cpu", "cuda", "cupy")}


def available(name: str) -> bool:
    return _status_of(name)[0]


def require(name: str) -> None:
    if name not in BACKENDS:
        raise InputError(f"backend: expected one of {BACKENDS}; got {name!r}")
    ok, why = _status_of(name)
    if not ok:
        raise BackendUnavailable(f"backend {name!r} is not available: {why}")


def is_device_array(x) -> bool:
    return hasattr(x, "__cuda_array_interface__")


def select(x, backend) -> str:
    """The backend a call runs on: the one asked for, else chosen by the input's location."""
    if backend is None:
        if is_device_array(x):
            backend = "cuda" if available("cuda") else "cupy"
        else:
            backend = "cpu" if available("cpu") else "reference"
    require(backend)
    return backend
