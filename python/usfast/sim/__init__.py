"""usfast.sim: a fast, physically grounded ultrasound simulator with ground truth.

Deterministic by seed; used by the tests, the benchmarks and the demo.

* Tissue: :class:`Phantom` (scatterer density, echogenicity map with :class:`Inclusion` s and
  fascia :class:`Layer` s, texture, depth attenuation); ``Phantom.random(seed, extent)``.
* Imaging: :class:`Look` (pulse, beam, gain, dynamic range, noise, TGC, needle appearance);
  ``Look.random(seed)`` for variety. PSF model in :mod:`usfast.sim.psf`.
* :func:`render` -- envelope image on a Cartesian :class:`usfast.ImageGeometry`, 512 x 512 in a
  few tens of milliseconds; :func:`to_bmode` for display.
* :func:`render_rf` -- beam-space RF ``(samples, lines)`` for a :class:`usfast.ProbeGeometry`
  (linear, curvilinear, phased) with ``fs_hz``/``f0_hz``, to test the B-mode chain end to end.
* :class:`Needle` -- specular shaft, comet tail, shadow, bright/fading tip, partial
  out-of-plane visibility; ``needle.truth(geometry)``.
* :func:`insertion` / :func:`needle_free` -- frame sequences with a per-frame truth table
  (:data:`TRUTH_DTYPE`).

Conventions: images float32 ``(rows = depth, cols = lateral)``; points ``(x, z)``; mm and
degrees; needle angle between needle and probe face, 0-90.
"""
from . import psf
from .look import Look
from .needle import Needle
from .phantom import Inclusion, Layer, Phantom
from .cartesian import FULL_SCALE_DB, default_geometry, render, to_bmode
from .rf import RFFrame, render_rf
from .sequence import EVENTS, TRUTH_DTYPE, Frame, Sequence, insertion, needle_free

__all__ = ["Phantom", "Inclusion", "Layer", "Look", "Needle", "render", "to_bmode",
           "default_geometry", "render_rf", "RFFrame", "insertion", "needle_free", "Sequence",
           "Frame", "TRUTH_DTYPE", "EVENTS", "FULL_SCALE_DB", "psf", "speckle_snr",
           "cnr_expected"]


def speckle_snr(envelope):
    """Mean / standard deviation of an envelope region (1.91 for fully developed speckle)."""
    import numpy as np
    e = np.asarray(envelope, dtype=np.float64)
    return float(e.mean() / e.std())


def cnr_expected(contrast_db):
    """Envelope CNR ``|mu_i - mu_o| / sqrt(var_i + var_o)`` between two Rayleigh regions whose
    mean intensities differ by ``contrast_db``: ``1.913 |1 - sqrt(r)| / sqrt(1 + r)`` with
    ``r = 10**(contrast_db/10)`` (1.913 for an anechoic region, no noise)."""
    import math
    r = 0.0 if contrast_db == -math.inf else 10.0 ** (contrast_db / 10.0)
    snr = math.sqrt(math.pi / 2.0) / math.sqrt(2.0 - math.pi / 2.0)
    return snr * abs(1.0 - math.sqrt(r)) / math.sqrt(1.0 + r)
