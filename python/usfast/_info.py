"""What was compiled in and which backends work here (``usfast.build_info()``, ``usfast info``)."""
from __future__ import annotations

import os
import platform

from . import _backend
from ._version import __version__


def build_info() -> dict:
    """Version, compiled CUDA architectures, OpenMP threads, and for each backend whether it
    works here and, when it does not, why."""
    core = _backend.core()
    compiled = core.build_info() if core is not None else {}
    st = _backend.status()
    return {
        "version": __version__,
        "core_version": compiled.get("version"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_compiled": bool(compiled.get("cuda_compiled", False)),
        "cuda_architectures": [a for a in compiled.get("cuda_architectures", "").split(",") if a],
        "cuda_runtime_version": compiled.get("cuda_runtime_version", 0),
        "openmp": bool(compiled.get("openmp", False)),
        "omp_threads": compiled.get("omp_max_threads", 1),
        "kernel_sources": _kernel_dir(),
        "backends": {name: {"available": ok, "reason": why} for name, (ok, why) in st.items()},
        "default_backend": {"numpy": "cpu" if st["cpu"][0] else "reference",
                            "gpu": "cuda" if st["cuda"][0] else ("cupy" if st["cupy"][0] else None)},
        "env": {k: v for k, v in os.environ.items() if k.startswith("USFAST_")},
    }


def _kernel_dir():
    try:
        from ._cupy import kernel_dir
        return str(kernel_dir())
    except Exception as e:  # pragma: no cover
        return f"missing: {e}"
