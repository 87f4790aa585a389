"""Signal quality index (SQI) per window: missing data, flat lines, saturation, baseline wander, noise.

Flat-line and saturation masks are computed once per channel at the native rate (where ADC codes are
exact) and averaged over each window's native sample range. ``wander`` is the share of spectral power
below the signal kind's physiological band (baseline wander, drift), ``noise`` the share above it
(muscle, mains, quantization). The index multiplies the "good" fractions,
``(1 - missing)(1 - flat)(1 - saturated)(1 - wander - noise)``: 1 is clean, 0 unusable.

>>> import numpy as np
>>> fs = 250.0
>>> x = np.sin(2 * np.pi * 1.2 * np.arange(2500) / fs) + 0.01 * np.sin(2 * np.pi * 10 * np.arange(2500) / fs)
>>> q = window_quality(x, fs, "ecg", missing=0.0, flat=0.0, saturated=0.0)
>>> round(q.wander, 2), round(q.noise, 2), q.sqi > 0.9
(0.0, 0.0, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["BANDS", "WindowQuality", "band_fractions", "band_power_fraction", "window_quality"]

#: Physiological band (Hz) of each signal kind; power outside it counts as noise.
BANDS: dict[str, tuple[float, float]] = {
    "ecg": (0.5, 40.0),
    "pressure": (0.3, 20.0),
    "pleth": (0.3, 15.0),
    "resp": (0.05, 2.0),
    "eeg": (0.5, 40.0),
    "other": (0.3, 40.0),
}


class WindowQuality(NamedTuple):
    """Fractions in [0, 1] and the combined index ``sqi``."""

    missing: float
    flat: float
    saturated: float
    wander: float
    noise: float
    sqi: float


def band_fractions(
    x: NDArray[np.floating], fs: float, band: tuple[float, float]
) -> tuple[float, float, float]:
    """Shares of the (mean-removed) power of ``x`` below, inside and above ``band`` (NaNs set to the mean).

    >>> t = np.arange(1000) / 100.0
    >>> [round(v, 3) for v in band_fractions(np.sin(2 * np.pi * 5 * t) + 0.5 * t / 10, 100.0, (1.0, 10.0))]
    [0.01, 0.99, 0.0]
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if finite.sum() < 4:
        return 0.0, 0.0, 0.0
    y = np.where(finite, x, np.nanmean(x)) - np.nanmean(x)
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    freqs = np.fft.rfftfreq(y.size, 1.0 / fs)
    total = float(spec.sum())
    if total <= 0:
        return 0.0, 0.0, 0.0
    lo, hi = band
    below = float(spec[freqs < lo].sum() / total)
    above = float(spec[freqs > min(hi, fs / 2)].sum() / total)
    return below, max(0.0, 1.0 - below - above), above


def band_power_fraction(x: NDArray[np.floating], fs: float, band: tuple[float, float]) -> float:
    """Share of the (mean-removed) power of ``x`` inside ``band``.

    >>> t = np.arange(1000) / 100.0
    >>> round(band_power_fraction(np.sin(2 * np.pi * 5 * t), 100.0, (1.0, 10.0)), 3)
    1.0
    """
    return band_fractions(x, fs, band)[1]


def window_quality(
    x: NDArray[np.floating], fs: float, kind: str, *, missing: float, flat: float, saturated: float
) -> WindowQuality:
    """Quality of one window ``x`` at ``fs`` Hz given its native-rate missing/flat/saturated fractions.

    A window with no power at all (flat, or all missing) has ``wander = noise = 0``; its flat/missing
    fractions already make its index 0.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    has_power = finite.sum() >= 4 and float(np.nanstd(x)) > 0
    wander, _, noise = (
        band_fractions(x, fs, BANDS.get(kind, BANDS["other"])) if has_power else (0.0, 0.0, 0.0)
    )
    clean = max(0.0, 1.0 - wander - noise)
    sqi = (1 - missing) * (1 - flat) * (1 - saturated) * clean
    return WindowQuality(float(missing), float(flat), float(saturated), wander, noise, float(max(0.0, sqi)))
