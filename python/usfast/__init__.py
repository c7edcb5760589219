"""usfast: GPU-accelerated ultrasound image processing for needle guidance.

``import usfast as us``. NumPy in gives NumPy out (CPU backend); arrays exposing
``__cuda_array_interface__`` (CuPy, PyTorch) give the same type out (CUDA or CuPy backend).
"""
from ._version import __version__
from ._errors import BackendUnavailable, CudaError, InputError
from .geometry import ImageGeometry, ProbeGeometry
from .estimate import NeedleEstimate

__all__ = ["__version__", "InputError", "BackendUnavailable", "CudaError", "ImageGeometry",
           "ProbeGeometry", "NeedleEstimate"]

from .bmode import bandpass, bmode, demodulate, envelope, log_compress, persistence, tgc, tgc_gain
from ._info import build_info

__all__ += ["bandpass", "bmode", "demodulate", "envelope", "log_compress", "persistence", "tgc", "tgc_gain",
            "build_info"]
from .scan import ScanConverter

__all__ += ["ScanConverter"]
