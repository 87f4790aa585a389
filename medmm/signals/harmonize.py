"""Harmonize channels: anti-aliased rational resampling that keeps gaps, units, clipping and flat lines.

Resampling uses ``scipy.signal.resample_poly`` (polyphase FIR with a Kaiser-windowed low-pass at the
lower Nyquist) with the rational ``up/down`` closest to ``fs_out/fs_in``; it is never naive
interpolation. NaN gaps stay gaps: every finite run is resampled on its own and placed at its own
offset on the output grid, everything else stays NaN.

>>> import numpy as np
>>> x = np.sin(2 * np.pi * 5 * np.arange(720) / 360)
>>> y, fs = resample(x, 360, 250)
>>> fs, y.size
(250.0, 500)
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "finite_runs",
    "flat_mask",
    "normalize_units",
    "rational_ratio",
    "resample",
    "run_mask",
    "saturation_mask",
]

_UNIT_SCALE = {
    "uv": ("mV", 1e-3),
    "µv": ("mV", 1e-3),
    "μv": ("mV", 1e-3),
    "v": ("mV", 1e3),
    "nv": ("mV", 1e-6),
}


def rational_ratio(fs_in: float, fs_out: float, rel_tol: float = 1e-6) -> tuple[int, int]:
    """``(up, down)``: the simplest fraction within ``rel_tol`` of ``fs_out/fs_in`` (denominator <= 1e5).

    >>> rational_ratio(360, 250), rational_ratio(125, 250), rational_ratio(1000, 250)
    ((25, 36), (2, 1), (1, 4))
    >>> up, down = rational_ratio(249.89, 250)  # WFDB multi-rate channel of 62.4725 Hz x 4
    >>> (up, down), abs(249.89 * up / down - 250) < 250e-6
    ((9091, 9087), True)
    """
    if not (fs_in > 0 and fs_out > 0):
        raise ValueError(f"sampling rates must be positive (got {fs_in}, {fs_out})")
    target = fs_out / fs_in
    frac = Fraction(target)
    for max_den in (10, 100, 1000, 10_000, 100_000):
        frac = Fraction(target).limit_denominator(max_den)
        if frac > 0 and abs(float(frac) / target - 1) <= rel_tol:
            break
    if frac == 0:
        frac = Fraction(1, 100_000)
    return frac.numerator, frac.denominator


def finite_runs(x: NDArray[np.floating]) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the maximal runs of finite samples.

    >>> finite_runs(np.array([1, np.nan, 2, 3, np.nan]))
    [(0, 1), (2, 4)]
    """
    ok = np.isfinite(x).astype(np.int8)
    edges = np.diff(np.concatenate(([0], ok, [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def resample(x: NDArray[np.floating], fs_in: float, fs_out: float) -> tuple[NDArray[np.float64], float]:
    """Resample ``x`` from ``fs_in`` to (about) ``fs_out``; returns ``(y, actual_fs_out)``.

    ``actual_fs_out = fs_in * up / down`` equals ``fs_out`` within a relative 1e-6 for real rates.
    Output length is ``ceil(len(x) * up / down)``; a finite run starting at input sample ``i``
    starts at output sample ``round(i * up / down)``.

    >>> y, fs = resample(np.array([0.0, 1.0, np.nan, np.nan, 1.0, 0.0]), 100, 200)
    >>> fs, y.size, bool(np.isnan(y[4:8]).all())
    (200.0, 12, True)
    """
    x = np.asarray(x, dtype=np.float64)
    up, down = rational_ratio(fs_in, fs_out)
    actual = fs_in * up / down
    n_out = int(np.ceil(x.size * up / down))
    if up == down:
        return x.copy(), float(actual)
    from scipy.signal import resample_poly

    y = np.full(n_out, np.nan)
    for a, b in finite_runs(x):
        seg = resample_poly(x[a:b], up, down, padtype="line")
        j0 = round(a * up / down)
        j1 = min(n_out, j0 + seg.size)
        y[j0:j1] = seg[: j1 - j0]
    return y, float(actual)


def normalize_units(x: NDArray[np.float64], units: str, kind: str) -> tuple[NDArray[np.float64], str]:
    """ECG in mV: microvolt (``uV``) or volt channels of kind ``ecg`` are rescaled; others unchanged.

    >>> normalize_units(np.array([1000.0]), "uV", "ecg")
    (array([1.]), 'mV')
    """
    if kind == "ecg" and units.strip().lower() in _UNIT_SCALE:
        new, scale = _UNIT_SCALE[units.strip().lower()]
        return x * scale, new
    return x, units


def run_mask(flags: NDArray[np.bool_], min_run: int) -> NDArray[np.bool_]:
    """Keep only the ``True`` samples that belong to runs of at least ``min_run`` samples.

    >>> run_mask(np.array([1, 1, 0, 1, 1, 1], bool), 3).astype(int).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    flags = np.asarray(flags, dtype=bool)
    out = np.zeros_like(flags)
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if b - a >= min_run:
            out[a:b] = True
    return out


def flat_mask(
    x: NDArray[np.floating], fs: float, min_seconds: float = 1.0, span: float | None = None
) -> NDArray[np.bool_]:
    """Samples inside flat lines: runs of unchanged value lasting at least ``min_seconds``.

    "Unchanged" means within ``1e-9 * max(1, span)``; ``span`` is the channel's value range (default:
    that of ``x``; a chunk of a long record passes the whole channel's range so chunks agree with it).

    >>> int(flat_mask(np.r_[np.ones(300), np.sin(np.arange(100))], 100).sum())
    300
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return np.zeros(x.size, dtype=bool)
    if span is None:
        finite = x[np.isfinite(x)]
        span = float(np.ptp(finite)) if finite.size else 0.0
    tol = 1e-9 * max(1.0, span)
    same = np.abs(np.diff(x)) <= tol  # NaN compares False: gaps never count as flat
    flags = np.concatenate(([False], same)) | np.concatenate((same, [False]))
    return run_mask(flags, max(2, round(min_seconds * fs)))


def saturation_mask(
    x: NDArray[np.floating], limits: tuple[float, float] | None, min_run: int = 3
) -> NDArray[np.bool_]:
    """Samples clipped at the ADC limits (``limits`` in physical units), in runs of ``min_run`` or more.

    Without known limits the observed minimum / maximum stand in for them, so a trace that sits on its
    own extreme value for ``min_run`` samples or more is reported.

    >>> x = np.r_[np.linspace(0, 5, 50), np.full(10, 5.0), np.linspace(5, 0, 50)]
    >>> int(saturation_mask(x, (-5.0, 5.0)).sum())
    12
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(x.size, dtype=bool)
    lo, hi = limits if limits is not None else (float(np.nanmin(x)), float(np.nanmax(x)))
    if hi <= lo:
        return np.zeros(x.size, dtype=bool)
    tol = 1e-6 * (hi - lo)
    with np.errstate(invalid="ignore"):
        at = finite & ((x >= hi - tol) | (x <= lo + tol))
    return run_mask(at, min_run)
