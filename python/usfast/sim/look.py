"""How the simulated data look: imaging settings and needle appearance.

A :class:`Look` holds everything that changes the appearance of an image but not its content:
the pulse (centre frequency, bandwidth), the beam (focus, aperture, receive F-number), gain,
dynamic range, electronic noise, time-gain compensation, the elevational slice thickness and
how visible the needle is (specular brightness and its fall-off with angle, comet tail, shadow,
tip). ``Look()`` is a fixed, typical linear-probe look; ``Look.random(seed)`` draws one from
wide ranges so that algorithms tuned on one look meet many others in the tests.

Amplitude units (shared with :func:`usfast.sim.render`): tissue of echogenicity 0 dB, at a
depth with no net attenuation, has envelope RMS ``10**(gain_db/20)``; everything in dB below is
relative to that level.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from . import _check as ck

__all__ = ["Look"]


@dataclass(frozen=True)
class Look:
    """Imaging settings and needle appearance (see the module docstring for units).

    Pulse and beam:
      f0_mhz: centre frequency. bandwidth: fractional -6 dB pulse-echo bandwidth (0, 2).
      focus_mm: transmit focal depth. aperture_mm: transmit aperture (also the largest receive
      aperture). rx_f_number: receive F-number of dynamic receive focusing.
      sound_speed_m_s: speed of sound.
    Display chain:
      gain_db: overall receive gain. dynamic_range_db: display dynamic range used by
      :meth:`bmode`. noise_db: RMS of the electronic noise relative to tissue RMS before
      attenuation and TGC (``None``: no noise); it is added before TGC, so it grows with depth
      where TGC makes up for attenuation. tgc: fraction of the depth attenuation that the
      time-gain compensation makes up (1 = flat mean brightness with depth).
      elevation_mm: slice thickness (-6 dB, FWHM); a needle point further than half of it
      from the imaging plane is not seen.
    Needle:
      needle_db: shaft echo at 0 degrees (parallel to the probe face) above tissue RMS.
      needle_specular_deg: angle at which the specular part of the echo falls to 1/e.
      needle_floor_db: the diffuse part that remains at steep angles, relative to needle_db.
      tail_count, tail_decay: number of reverberation echoes below the shaft (comet tail) and
      the amplitude ratio between successive ones. shadow: fraction of tissue amplitude removed
      below the shaft (0-1). tip_db: tip relative to the shaft, > 0 a bright tip (bevel echo),
      < 0 a tip that fades over the last tip_fade_mm. shaft_texture: relative amplitude
      modulation along the shaft (0 = uniform).
    """

    f0_mhz: float = 7.5
    bandwidth: float = 0.6
    focus_mm: float = 20.0
    aperture_mm: float = 16.0
    rx_f_number: float = 2.0
    sound_speed_m_s: float = 1540.0
    gain_db: float = 0.0
    dynamic_range_db: float = 60.0
    noise_db: float | None = -65.0
    tgc: float = 1.0
    elevation_mm: float = 1.5
    needle_db: float = 30.0
    needle_specular_deg: float = 25.0
    needle_floor_db: float = -14.0
    tail_count: int = 5
    tail_decay: float = 0.5
    shadow: float = 0.35
    tip_db: float = 4.0
    tip_fade_mm: float = 2.0
    shaft_texture: float = 0.15

    def __post_init__(self):
        f = "Look"
        s = object.__setattr__
        s(self, "f0_mhz", ck.in_range(f, "f0_mhz", self.f0_mhz, 0.5, 60.0))
        s(self, "bandwidth", ck.in_range(f, "bandwidth", self.bandwidth, 0.0, 2.0,
                                         lo_open=True, hi_open=True))
        s(self, "focus_mm", ck.positive(f, "focus_mm", self.focus_mm))
        s(self, "aperture_mm", ck.positive(f, "aperture_mm", self.aperture_mm))
        s(self, "rx_f_number", ck.positive(f, "rx_f_number", self.rx_f_number))
        s(self, "sound_speed_m_s", ck.positive(f, "sound_speed_m_s", self.sound_speed_m_s))
        s(self, "gain_db", ck.number(f, "gain_db", self.gain_db))
        s(self, "dynamic_range_db", ck.positive(f, "dynamic_range_db", self.dynamic_range_db))
        if self.noise_db is not None:
            s(self, "noise_db", ck.number(f, "noise_db", self.noise_db))
        s(self, "tgc", ck.in_range(f, "tgc", self.tgc, 0.0, 2.0))
        s(self, "elevation_mm", ck.positive(f, "elevation_mm", self.elevation_mm))
        s(self, "needle_db", ck.number(f, "needle_db", self.needle_db))
        s(self, "needle_specular_deg", ck.positive(f, "needle_specular_deg",
                                                   self.needle_specular_deg))
        s(self, "needle_floor_db", ck.in_range(f, "needle_floor_db", self.needle_floor_db,
                                               -200.0, 0.0))
        s(self, "tail_count", ck.count(f, "tail_count", self.tail_count, 0))
        s(self, "tail_decay", ck.in_range(f, "tail_decay", self.tail_decay, 0.0, 1.0,
                                          hi_open=True))
        s(self, "shadow", ck.in_range(f, "shadow", self.shadow, 0.0, 1.0))
        s(self, "tip_db", ck.number(f, "tip_db", self.tip_db))
        s(self, "tip_fade_mm", ck.positive(f, "tip_fade_mm", self.tip_fade_mm))
        s(self, "shaft_texture", ck.in_range(f, "shaft_texture", self.shaft_texture, 0.0, 0.9))

    # -- derived ---------------------------------------------------------------------------
    @property
    def wavelength_mm(self) -> float:
        return self.sound_speed_m_s * 1e3 / (self.f0_mhz * 1e6)

    def needle_gain(self, incidence_deg):
        """Amplitude factor (0, 1] of the needle echo for an angle ``incidence_deg`` between the
        shaft and the plane perpendicular to the beam (0 = shaft parallel to the probe face):
        ``(1 - f) * exp(-(angle / needle_specular_deg)**2) + f`` with ``f`` the diffuse floor."""
        a = np.asarray(incidence_deg, dtype=np.float64)
        floor = 10.0 ** (self.needle_floor_db / 20.0)
        return (1.0 - floor) * np.exp(-(a / self.needle_specular_deg) ** 2) + floor

    def needle_specular_fraction(self, incidence_deg):
        """Share of the needle echo that is specular at ``incidence_deg`` (1 when the shaft is
        parallel to the probe face, towards 0 when steep). Reverberation inside the shaft needs
        the sound to come back square, so the comet tail is scaled by this share."""
        a = np.asarray(incidence_deg, dtype=np.float64)
        floor = 10.0 ** (self.needle_floor_db / 20.0)
        spec = (1.0 - floor) * np.exp(-(a / self.needle_specular_deg) ** 2)
        return spec / (spec + floor)

    def replace(self, **changes) -> "Look":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    # -- variety ---------------------------------------------------------------------------
    @classmethod
    def random(cls, seed=0, **fixed) -> "Look":
        """A look drawn from ``seed`` (an int or a numpy Generator); ``fixed`` overrides fields.

        Ranges: f0 5-12 MHz, bandwidth 0.45-0.8, focus 12-32 mm, aperture 10-24 mm, receive
        F-number 1.2-3, dynamic range 45-72 dB with the gain (about -12..+16 dB) that puts
        tissue at 20-55 % grey in :func:`usfast.sim.to_bmode`, noise -80..-55 dB, TGC 0.8-1.05,
        slice 1-2.5 mm; needle 18-36 dB with a specular half-width of 15-40 degrees and a
        diffuse floor that keeps it at least 6 dB above tissue at any angle, comet tail 2-8
        echoes decaying 0.3-0.7, shadow 0.1-0.6, tip bright (+2..+10 dB) / plain / fading
        (-15..-4 dB) with equal odds, shaft texture 0-0.3.
        """
        rng = ck.rng_from("Look.random", "seed", seed, 101)
        u = rng.uniform
        dr = u(45.0, 72.0)
        # gain puts tissue at 20-55 % grey on the display (to_bmode, 40 dB full scale)
        gain = 40.0 - dr * (1.0 - u(0.2, 0.55))
        needle_db = u(18.0, 36.0)
        tip_kind = rng.integers(3)
        tip_db = (u(2.0, 10.0), 0.0, u(-15.0, -4.0))[tip_kind]
        v = dict(
            f0_mhz=u(5.0, 12.0), bandwidth=u(0.45, 0.8), focus_mm=u(12.0, 32.0),
            aperture_mm=u(10.0, 24.0), rx_f_number=u(1.2, 3.0), gain_db=gain,
            dynamic_range_db=dr, noise_db=u(-80.0, -55.0), tgc=u(0.8, 1.05),
            elevation_mm=u(1.0, 2.5), needle_db=needle_db, needle_specular_deg=u(15.0, 40.0),
            needle_floor_db=u(max(-24.0, 6.0 - needle_db), -8.0),
            tail_count=int(rng.integers(2, 9)), tail_decay=u(0.3, 0.7), shadow=u(0.1, 0.6),
            tip_db=tip_db, tip_fade_mm=u(1.0, 4.0), shaft_texture=u(0.0, 0.3))
        v.update(fixed)
        return cls(**v)
