"""Per-beat table: timing, rhythm and morphology features for beat-level anomaly models.

Morphology is measured on the beat templates of :func:`~medmm.signals.beats.beat_templates`
(0.5-40 Hz band, 250 Hz, ``-0.25 .. +0.45 s`` around the R peak), so features mean the same thing at any
input rate. The record's *median beat* is the sample-wise median of all complete templates.

Columns (one row per peak, in peak order):

============== ==========================================================================================
beat           0-based beat number in the record
sample         R-peak sample index at the native rate
time_s         ``sample / fs``
rr_prev_s      interval from the previous beat (NaN for the first)
rr_next_s      interval to the next beat (NaN for the last)
hr_bpm         ``60 / rr_prev_s``
rr_ratio       ``rr_prev_s`` over the median of the 8 surrounding intervals: < 1 premature, > 1 pause
r_amplitude    signed value at the R peak (input unit); negative for an inverted QRS
qrs_width_s    QRS width estimate: span around the R peak where the smoothed absolute slope stays above
               20 % of its peak (onset to offset, 250 Hz resolution)
qrs_energy     sum of squares over ``-0.1 .. +0.1 s``, times ``1 / 250 s`` (input unit squared x s)
max_slope      largest absolute slope within +-0.1 s (input unit per second)
template_corr  Pearson correlation of the ``-0.25 .. +0.45 s`` template with the median beat
qrs_corr       same over ``-0.1 .. +0.1 s`` only (the QRS)
template_rmse  RMS difference to the median beat over the template, divided by the median beat's RMS
complete       whether the template is NaN-free (not at a record edge or gap)
============== ==========================================================================================

>>> import numpy as np
>>> fs = 360.0
>>> t = np.arange(int(6 * fs)) / fs
>>> ecg = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in (0.5, 1.5, 2.5, 3.5, 4.5, 5.5))
>>> beat_table(ecg, fs, np.array([180, 540, 900, 1260, 1620, 1980]))[["sample", "hr_bpm"]].iloc[1].tolist()
[540.0, 60.0]
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage

from medmm.signals.beats.segment import TEMPLATE_FS, beat_templates, template_center

__all__ = ["BEAT_COLUMNS", "beat_table", "beat_table_from_templates", "median_beat"]

BEAT_COLUMNS = [
    "beat",
    "sample",
    "time_s",
    "rr_prev_s",
    "rr_next_s",
    "hr_bpm",
    "rr_ratio",
    "r_amplitude",
    "qrs_width_s",
    "qrs_energy",
    "max_slope",
    "template_corr",
    "qrs_corr",
    "template_rmse",
    "complete",
]

_BEFORE_S, _AFTER_S = 0.25, 0.45
_QRS_HALF_S = 0.1
_WIDTH_FRAC = 0.2


def median_beat(templates: NDArray[np.float64], cols: int = 8) -> NDArray[np.float64]:
    """Sample-wise median of the complete (NaN-free) templates; of all templates when none is complete.

    Computed ``cols`` columns at a time, so ``templates`` may be a memory map of a long record.

    >>> import numpy as np
    >>> median_beat(np.array([[0.0, 1.0], [0.0, 3.0], [np.nan, 100.0]])).tolist()
    [0.0, 2.0]
    """
    n, width = templates.shape
    if n == 0:
        return np.full(width, np.nan)
    complete = np.concatenate([np.isfinite(templates[i : i + 4096]).all(axis=1) for i in range(0, n, 4096)])
    rows = complete if complete.any() else np.ones(n, dtype=bool)
    out = np.full(width, np.nan)
    for c in range(0, width, cols):
        block = np.asarray(templates[:, c : c + cols], dtype=np.float64)[rows]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            out[c : c + cols] = np.nanmedian(block, axis=0)
    return out


def _row_corr(a: NDArray[np.float64], ref: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson correlation of each row of ``a`` with ``ref``, over the samples finite in both."""
    m = np.isfinite(a) & np.isfinite(ref)[None, :]
    n = m.sum(axis=1)
    a0 = np.where(m, a, 0.0)
    r0 = np.where(m, ref[None, :], 0.0)
    with np.errstate(all="ignore"):
        ma = a0.sum(axis=1) / n
        mr = r0.sum(axis=1) / n
        da = np.where(m, a0 - ma[:, None], 0.0)
        dr = np.where(m, r0 - mr[:, None], 0.0)
        c = (da * dr).sum(axis=1) / np.sqrt((da * da).sum(axis=1) * (dr * dr).sum(axis=1))
    c[n < 3] = np.nan
    return np.asarray(c)


def _qrs_width(tpl: NDArray[np.float64], center: int, fs_out: float) -> NDArray[np.float64]:
    """Onset-to-offset span where the smoothed |slope| stays above 20 % of its peak near the R peak."""
    half = round(_QRS_HALF_S * fs_out)
    lo, hi = max(0, center - 2 * half), min(tpl.shape[1], center + 2 * half)
    seg = tpl[:, lo:hi]
    slope = np.abs(np.gradient(np.nan_to_num(seg), axis=1))
    slope = ndimage.uniform_filter1d(slope, max(1, round(0.02 * fs_out)), axis=1, mode="nearest")
    c = center - lo
    near = slope[:, max(0, c - half) : c + half]
    above = slope > _WIDTH_FRAC * near.max(axis=1, keepdims=True)
    # bridge the dip of the slope at the R apex itself (20 ms)
    above = ndimage.binary_closing(above, structure=np.ones((1, max(1, round(0.02 * fs_out)))))
    cols = np.arange(seg.shape[1])[None, :]
    below_left = np.where(~above & (cols < c), cols, -1).max(axis=1)
    below_right = np.where(~above & (cols > c), cols, seg.shape[1]).min(axis=1)
    width = (below_right - below_left - 1) / fs_out
    width[~np.isfinite(seg).all(axis=1)] = np.nan
    return np.asarray(width, dtype=np.float64)


def _rr_ratio(rr_prev: NDArray[np.float64]) -> NDArray[np.float64]:
    n = rr_prev.size
    if n == 0:
        return rr_prev.copy()
    pad = np.concatenate([np.full(4, np.nan), rr_prev, np.full(4, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(pad, 9)
    windows = np.delete(windows, 4, axis=1)  # the surrounding 8, not the interval itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (fewer than 2 beats)
        local = np.nanmedian(windows, axis=1)
    return np.asarray(rr_prev / local)


def beat_table(
    ecg: NDArray[np.floating] | NDArray[np.integer], fs: float, peaks: NDArray[np.integer]
) -> pd.DataFrame:
    """One row per beat with timing, rhythm and morphology features (columns: :data:`BEAT_COLUMNS`).

    Parameters
    ----------
    ecg : numpy.ndarray
        One lead, shape ``(n,)``; NaN gaps allowed.
    fs : float
        Sampling rate in Hz.
    peaks : numpy.ndarray
        Sorted R-peak sample indices.

    Returns
    -------
    pandas.DataFrame
        Columns as in the module docstring; empty (with the columns) when there is no peak.

    Examples
    --------
    >>> import numpy as np
    >>> fs = 250.0
    >>> t = np.arange(int(5 * fs)) / fs
    >>> ecg = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in (0.5, 1.5, 2.5, 3.5, 4.5))
    >>> df = beat_table(ecg, fs, np.array([125, 375, 625, 875, 1125]))
    >>> df["rr_prev_s"].tolist()[1:], round(float(df["template_corr"].iloc[2]), 3)
    ([1.0, 1.0, 1.0, 1.0], 1.0)
    """
    p = np.asarray(peaks, dtype=np.int64).reshape(-1)
    if p.size == 0:
        return _empty_table()
    if np.any(np.diff(p) <= 0):
        raise ValueError("peaks must be strictly increasing sample indices; sort and de-duplicate them")
    return beat_table_from_templates(p, fs, beat_templates(ecg, fs, p, _BEFORE_S, _AFTER_S))


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BEAT_COLUMNS}).astype(
        {"beat": "int64", "sample": "int64", "complete": "bool"}
    )


def beat_table_from_templates(
    peaks: NDArray[np.integer], fs: float, templates: NDArray[np.float64], block: int = 512
) -> pd.DataFrame:
    """:func:`beat_table` from R peaks and their templates (``beat_templates(ecg, fs, peaks, 0.25, 0.45)``).

    ``templates`` may be a memory map (chunked long records): it is read ``block`` rows at a time.

    >>> import numpy as np
    >>> fs, t = 250.0, np.arange(1250) / 250.0
    >>> ecg = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in (0.5, 1.5, 2.5, 3.5, 4.5))
    >>> p = np.array([125, 375, 625, 875, 1125])
    >>> tpl = beat_templates(ecg, fs, p, 0.25, 0.45)
    >>> beat_table_from_templates(p, fs, tpl, block=2).equals(beat_table(ecg, fs, p))
    True
    """
    p = np.asarray(peaks, dtype=np.int64).reshape(-1)
    if p.size == 0:  # e.g. a long (chunked) ECG channel that is a flat line throughout
        return _empty_table()
    center = template_center(_BEFORE_S, TEMPLATE_FS)
    half = round(_QRS_HALF_S * TEMPLATE_FS)
    qrs = slice(center - half, center + half + 1)
    med = median_beat(templates)
    rr = np.diff(p) / fs
    rr_prev = np.concatenate([[np.nan], rr])
    rr_next = np.concatenate([rr, [np.nan]])
    rms_med = np.sqrt(np.nanmean(med**2))
    parts: dict[str, list[NDArray[Any]]] = {}
    for i in range(0, p.size, block):
        t = np.asarray(templates[i : i + block], dtype=np.float64)
        with np.errstate(all="ignore"):
            slope = np.abs(np.gradient(t[:, qrs], axis=1)) * TEMPLATE_FS
            max_slope = np.nanmax(np.where(np.isfinite(slope), slope, -np.inf), axis=1)
            max_slope[~np.isfinite(max_slope)] = np.nan
            rmse = (
                np.sqrt(np.nanmean((t - med[None, :]) ** 2, axis=1)) / rms_med
                if rms_med > 0
                else np.full(len(t), np.nan)
            )
            cols = {
                "r_amplitude": t[:, center],
                "qrs_width_s": _qrs_width(t, center, TEMPLATE_FS),
                "qrs_energy": np.sum(t[:, qrs] ** 2, axis=1) / TEMPLATE_FS,  # NaN if the QRS touches a gap
                "max_slope": max_slope,
                "template_corr": _row_corr(t, med),
                "qrs_corr": _row_corr(t[:, qrs], med[qrs]),
                "template_rmse": rmse,
                "complete": np.isfinite(t).all(axis=1),
            }
        for k, v in cols.items():
            parts.setdefault(k, []).append(v)
    with np.errstate(all="ignore"):
        hr = 60.0 / rr_prev
    return pd.DataFrame(
        {
            "beat": np.arange(p.size, dtype=np.int64),
            "sample": p,
            "time_s": p / fs,
            "rr_prev_s": rr_prev,
            "rr_next_s": rr_next,
            "hr_bpm": hr,
            "rr_ratio": _rr_ratio(rr_prev),
            **{k: np.concatenate(v) for k, v in parts.items()},
        },
        columns=BEAT_COLUMNS,
    )
