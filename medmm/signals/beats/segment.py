"""Fixed-length beat templates cut around R peaks, on a common time grid.

Every template covers ``[-before_s, +after_s)`` around its R peak and is sampled at ``fs_out``
(default :data:`TEMPLATE_FS` = 250 Hz) whatever the record's rate, so templates of records recorded at
360, 500 or 1000 Hz have the same length and can be compared or fed to one model:

- the lead is first band-limited to 0.5-40 Hz (zero-phase): baseline wander removed, and the band is
  below the Nyquist frequency of 250 Hz, so no aliasing when resampling;
- samples are then read at the exact times ``peak / fs + k / fs_out`` by linear interpolation (when
  ``fs == fs_out`` that is plain indexing);
- times before the record's start or after its end, and samples in NaN gaps, are NaN.

The R peak is at column :func:`template_center` (``round(before_s * fs_out)``). Values keep the input's
unit (mV for WFDB physical signals).

>>> import numpy as np
>>> ecg = np.random.default_rng(0).normal(size=3600)
>>> beat_templates(ecg, 360.0, np.array([10, 1800])).shape
(2, 176)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from medmm.signals.beats._filters import as_signal, clean_lead

__all__ = ["TEMPLATE_FS", "beat_templates", "template_center", "template_times"]

TEMPLATE_FS = 250.0


def _n(seconds: float, fs_out: float) -> int:
    return math.floor(seconds * fs_out + 0.5)


def template_times(
    before_s: float = 0.25, after_s: float = 0.45, fs_out: float = TEMPLATE_FS
) -> NDArray[np.float64]:
    """Times in seconds relative to the R peak of each template column.

    >>> t = template_times()
    >>> t.size, float(t[0]), float(t[template_center()])
    (176, -0.252, 0.0)
    """
    if before_s < 0 or after_s <= 0 or fs_out <= 0:
        raise ValueError(f"need before_s >= 0, after_s > 0, fs_out > 0; got {before_s}, {after_s}, {fs_out}")
    nb, na = _n(before_s, fs_out), _n(after_s, fs_out)
    return np.arange(-nb, na) / fs_out


def template_center(before_s: float = 0.25, fs_out: float = TEMPLATE_FS) -> int:
    """Column of the R peak in templates made with these settings.

    >>> template_center()
    63
    """
    return _n(before_s, fs_out)


def beat_templates(
    ecg: NDArray[np.floating] | NDArray[np.integer],
    fs: float,
    peaks: NDArray[np.integer],
    before_s: float = 0.25,
    after_s: float = 0.45,
    *,
    fs_out: float = TEMPLATE_FS,
) -> NDArray[np.float64]:
    """Cut one fixed-length, baseline-free template per beat.

    Parameters
    ----------
    ecg : numpy.ndarray
        One lead, shape ``(n,)``; NaN gaps allowed.
    fs : float
        Its sampling rate in Hz.
    peaks : numpy.ndarray
        R-peak sample indices (e.g. from :func:`~medmm.signals.beats.detect_rpeaks`).
    before_s, after_s : float
        Window before and after the R peak, in seconds.
    fs_out : float, default 250.0
        Rate of the templates; the record is resampled to it when ``fs`` differs.

    Returns
    -------
    numpy.ndarray
        ``(n_beats, L)`` float64, ``L = round(before_s * fs_out) + round(after_s * fs_out)``; NaN where the
        window runs past the record's edges or into a NaN gap.

    Examples
    --------
    >>> import numpy as np
    >>> fs = 500.0
    >>> t = np.arange(5000) / fs
    >>> ecg = sum(np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in (0.1, 1.1, 2.1))
    >>> tpl = beat_templates(ecg, fs, np.array([50, 550, 1050]))
    >>> tpl.shape, bool(np.isnan(tpl[0, 0])), int(np.nanargmax(tpl[1]))
    ((3, 176), True, 63)
    """
    x = as_signal(ecg, fs)
    offsets = template_times(before_s, after_s, fs_out)
    p = np.asarray(peaks, dtype=np.int64).reshape(-1)
    out = np.full((p.size, offsets.size), np.nan)
    if p.size == 0 or x.size < 16:
        return out
    y = clean_lead(x, fs)
    pos = p[:, None] + offsets[None, :] * fs  # fractional sample positions
    inside = (pos >= 0) & (pos <= x.size - 1)
    if np.allclose(pos, np.round(pos)):
        idx = np.clip(np.round(pos).astype(np.int64), 0, x.size - 1)
        out = y[idx]
    else:
        lo = np.clip(np.floor(pos).astype(np.int64), 0, x.size - 2)
        frac = np.clip(pos - lo, 0.0, 1.0)
        out = y[lo] * (1.0 - frac) + y[lo + 1] * frac  # NaN at either neighbour stays NaN
    out[~inside] = np.nan
    return out
