"""usfast: GPU-accelerated ultrasound image processing for needle guidance.

``import usfast as us``. NumPy in gives NumPy out (CPU backend); arrays exposing
``__cuda_array_interface__`` (CuPy, PyTorch) give the same type out (CUDA or CuPy backend).
"""
import importlib as _importlib
import os as _os

# OpenMP threads that spin long after each parallel region starve OpenBLAS's threads (NumPy
# matrix products) on small machines: a 256x256 product next to usfast calls went from 0.4 ms
# to 8.5 ms on 2 cores. A short spin keeps usfast's own latency (measured: same) and frees the
# cores. Read by libgomp when the compiled core loads; an explicit setting wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# Every core by default. (OMP_DYNAMIC=true is not set here: libgomp then sizes each team from
# the load average, which a busy caller raises itself, so a 2-core machine ran everything on one
# thread: envelope + log at 4096x256 took 1.95 ms instead of 0.95 ms.) On a machine shared with
# other busy jobs, OMP_NUM_THREADS or OMP_DYNAMIC=true set by the user still apply.

from ._version import __version__
from ._errors import BackendUnavailable, CudaError, InputError
from .geometry import ImageGeometry, ProbeGeometry
from .estimate import NeedleEstimate
from .bmode import (bandpass, bmode, demodulate, envelope, envelope_log, log_compress,
                    persistence, tgc, tgc_gain)
from .scan import ScanConverter
from ._info import build_info
from .tracking import NeedleState, NeedleTracker
from .pipeline import Pipeline, PipelineResult

__all__ = ["__version__", "InputError", "BackendUnavailable", "CudaError", "ImageGeometry",
           "ProbeGeometry", "NeedleEstimate", "bandpass", "bmode", "demodulate", "envelope",
           "envelope_log", "log_compress", "persistence", "tgc", "tgc_gain", "ScanConverter", "build_info",
           "NeedleState", "NeedleTracker", "Pipeline", "PipelineResult"]

# Areas whose public functions live at the top level (usfast.srad, usfast.locate_needle, ...).
_AREA_EXPORTS = {
    "speckle": ("srad", "dpad", "lee", "kuan", "frost", "guided"),
    "denoise": ("nlm", "median", "bilateral"),
    "needle": ("ridge", "oriented_line_filter", "needle_enhance", "locate_needle"),
}
for _area, _names in _AREA_EXPORTS.items():
    try:
        _m = _importlib.import_module(f".{_area}", __name__)
    except ModuleNotFoundError as _e:  # an area not built into this tree
        if _e.name != f"{__name__}.{_area}":
            raise
        continue
    for _n in _names:
        if hasattr(_m, _n):
            globals()[_n] = getattr(_m, _n)
            __all__.append(_n)

# Submodules loaded on first use: usfast.sim, usfast.metrics, usfast.io, usfast.overlay, ...
_LAZY = ("sim", "metrics", "io", "overlay", "igtl", "design", "tolerances", "geometry", "cli",
         "doctor", "demo", "reference")


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'usfast' has no attribute {name!r}")
