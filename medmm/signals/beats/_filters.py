"""Private signal helpers shared by the beat modules: input checks, NaN-gap bridging, zero-phase band-pass."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import signal

__all__ = ["LOC_BAND_HZ", "as_signal", "band", "clean_lead", "fill_gaps"]

LOC_BAND_HZ = (0.5, 40.0)  # band of the signal that peaks are located on and templates are cut from


def as_signal(ecg: NDArray[np.floating] | NDArray[np.integer], fs: float) -> NDArray[np.float64]:
    """One lead as a 1-D float64 array; ``ValueError`` (saying what to pass) otherwise."""
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"ecg must be a 1-D array (one lead), got shape {x.shape}; pass one column")
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive sampling rate in Hz, got {fs!r}")
    return x


def fill_gaps(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Linear interpolation over NaN/inf samples; returns the filled copy and the finite mask."""
    finite = np.isfinite(x)
    if finite.all() or not finite.any():
        return x, finite
    idx = np.flatnonzero(finite)
    filled = x.copy()
    bad = np.flatnonzero(~finite)
    filled[bad] = np.interp(bad, idx, x[idx])
    return filled, finite


def band(x: NDArray[np.float64], fs: float, lo: float, hi: float) -> NDArray[np.float64]:
    """Zero-phase 2nd-order Butterworth band-pass (4th order after ``sosfiltfilt``)."""
    nyq = 0.5 * fs
    hi = min(hi, 0.45 * fs)
    sos = signal.butter(2, [lo / nyq, hi / nyq], btype="bandpass", output="sos")
    padlen = min(x.size - 1, int(3 * fs))
    return np.asarray(signal.sosfiltfilt(sos, x, padlen=padlen))


def clean_lead(ecg: NDArray[np.floating] | NDArray[np.integer], fs: float) -> NDArray[np.float64]:
    """The 0.5-40 Hz band of one lead (baseline wander and high-frequency noise removed), NaN kept in gaps."""
    x, finite = fill_gaps(as_signal(ecg, fs))
    if x.size < 16 or not finite.any():
        return np.full(x.size, np.nan)
    y = band(x, fs, *LOC_BAND_HZ)
    y[~finite] = np.nan
    return y
