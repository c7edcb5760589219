"""The result of needle localisation, shared by the detector, the tracker and the overlay.

Points are ``(x, z)``: x lateral (column), z depth (row); ``*_px`` in pixels of the image the
estimate was made on, ``*_mm`` in millimetres of its :class:`usfast.ImageGeometry`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["NeedleEstimate"]


@dataclass
class NeedleEstimate:
    """One frame's needle: axis, tip, entry point, angle and confidence. Never NaN.

    found: whether a needle was detected. When False every coordinate is 0 and confidence
        says how close the best candidate came.
    tip_px, tip_mm: the needle tip, (x, z).
    entry_px, entry_mm: where the needle axis meets the image edge or top, (x, z).
    angle_deg: angle between the needle and the probe face (lateral axis), 0-90 degrees.
    direction: unit vector (dx, dz) along the axis, pointing into the tissue (dz >= 0), in mm
        space.
    visible_length_mm: length of the visible shaft.
    confidence: in [0, 1].
    """

    found: bool = False
    tip_px: tuple = (0.0, 0.0)
    tip_mm: tuple = (0.0, 0.0)
    entry_px: tuple = (0.0, 0.0)
    entry_mm: tuple = (0.0, 0.0)
    angle_deg: float = 0.0
    direction: tuple = (0.0, 1.0)
    visible_length_mm: float = 0.0
    confidence: float = 0.0
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for name in ("tip_px", "tip_mm", "entry_px", "entry_mm", "direction"):
            v = tuple(float(a) for a in getattr(self, name))
            if not all(np.isfinite(v)):
                raise ValueError(f"NeedleEstimate({name}): non-finite value {v}")
            setattr(self, name, v)
        for name in ("angle_deg", "visible_length_mm", "confidence"):
            v = float(getattr(self, name))
            if not np.isfinite(v):
                raise ValueError(f"NeedleEstimate({name}): non-finite value {v}")
            setattr(self, name, v)
        self.found = bool(self.found)

    def to_dict(self):
        d = asdict(self)
        d.pop("extra", None)
        return d
