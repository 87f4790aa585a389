"""Alignment maths as pure functions: sample <-> time, rate changes, windows, chunks, tolerant joins.

Everything here is independent of readers and Dask and is property-tested (``tests/signals``):
index/time conversions round-trip, windows never leave the signal, chunk cores tile a signal exactly,
and joins never match farther than their tolerance.

>>> tile_windows(n=10, length=4, step=4).tolist()
[0, 4]
>>> anchor_window(anchor=2, before=5, after=5, n=100)
WindowSpan(start=0, stop=7, pad_before=3, pad_after=0)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "ChunkSpan",
    "WindowSpan",
    "anchor_window",
    "asof_join",
    "chunk_spans",
    "epoch_seconds",
    "extract_window",
    "join_nearest_values",
    "nearest_within",
    "rescale_index",
    "sample_to_time",
    "tile_windows",
    "time_to_sample",
]


def sample_to_time(sample: NDArray[np.integer] | int, fs: float) -> NDArray[np.float64] | float:
    """Seconds from the record start of sample index ``sample`` at ``fs`` Hz.

    >>> sample_to_time(360, 360.0)
    1.0
    """
    return np.asarray(sample, dtype=np.float64) / fs if np.ndim(sample) else float(sample) / fs


def time_to_sample(t: NDArray[np.floating] | float, fs: float) -> NDArray[np.int64] | int:
    """Nearest sample index of time ``t`` (seconds from the record start) at ``fs`` Hz.

    >>> time_to_sample(1.0, 360.0), time_to_sample(np.array([0.0, 0.5]), 250.0).tolist()
    (360, [0, 125])
    """
    if np.ndim(t):
        return np.rint(np.asarray(t, dtype=np.float64) * fs).astype(np.int64)
    return round(float(t) * fs)


def rescale_index(index: NDArray[np.integer] | int, fs_from: float, fs_to: float) -> NDArray[np.int64] | int:
    """Sample index at ``fs_from`` -> nearest index at ``fs_to`` (same instant).

    >>> rescale_index(360, 360.0, 250.0)
    250
    """
    return time_to_sample(sample_to_time(index, fs_from), fs_to)


def tile_windows(n: int, length: int, step: int) -> NDArray[np.int64]:
    """Start indices of all windows ``[s, s + length)`` that fit inside ``[0, n)``, every ``step``.

    >>> tile_windows(n=3, length=4, step=1).tolist()
    []
    """
    if length <= 0 or step <= 0:
        raise ValueError("window length and step must be positive")
    if n < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - length + 1, step, dtype=np.int64)


class WindowSpan(NamedTuple):
    """A window ``[start, stop)`` clipped to the signal, with the padding that restores its length."""

    start: int
    stop: int
    pad_before: int
    pad_after: int


def anchor_window(anchor: int, before: int, after: int, n: int) -> WindowSpan:
    """Window ``[anchor - before, anchor + after)`` clipped to ``[0, n)``.

    Invariant: ``pad_before + (stop - start) + pad_after == before + after`` and
    ``0 <= start <= stop <= n``; a window entirely outside the signal has ``start == stop``.

    >>> anchor_window(anchor=98, before=5, after=5, n=100)
    WindowSpan(start=93, stop=100, pad_before=0, pad_after=3)
    """
    if before < 0 or after < 0:
        raise ValueError("before and after must be >= 0")
    lo, hi = anchor - before, anchor + after
    start = min(max(lo, 0), n)
    stop = max(min(hi, n), start)
    pad_before = start - lo if stop > start else before + after
    pad_after = hi - stop if stop > start else 0
    if stop == start:
        pad_before, pad_after = before + after, 0
    return WindowSpan(int(start), int(stop), int(pad_before), int(pad_after))


def extract_window(x: NDArray[np.floating], span: WindowSpan) -> NDArray[np.float64]:
    """The samples of ``span`` from ``x``, NaN-padded to the window's full length.

    >>> extract_window(np.arange(5.0), anchor_window(1, 2, 2, 5)).tolist()
    [nan, 0.0, 1.0, 2.0]
    """
    out = np.full(span.pad_before + span.stop - span.start + span.pad_after, np.nan)
    out[span.pad_before : span.pad_before + span.stop - span.start] = x[span.start : span.stop]
    return out


class ChunkSpan(NamedTuple):
    """Read ``[read_start, read_stop)``; keep results in ``[keep_start, keep_stop)``."""

    read_start: int
    read_stop: int
    keep_start: int
    keep_stop: int


def chunk_spans(n: int, chunk: int, overlap: int) -> list[ChunkSpan]:
    """Cut ``[0, n)`` into chunks of ``chunk`` samples read with ``overlap`` samples of context each side.

    The keep ranges tile ``[0, n)`` exactly (no gap, no overlap), so an event detected in several
    chunks is kept once, by the chunk whose core holds it.

    >>> [tuple(c) for c in chunk_spans(10, 4, 1)]
    [(0, 5, 0, 4), (3, 9, 4, 8), (7, 10, 8, 10)]
    """
    if chunk <= 0 or overlap < 0:
        raise ValueError("chunk must be > 0 and overlap >= 0")
    out = []
    for k in range(0, n, chunk):
        stop = min(k + chunk, n)
        out.append(ChunkSpan(max(0, k - overlap), min(n, stop + overlap), k, stop))
    return out


def nearest_within(query: NDArray[np.integer], ref: NDArray[np.integer], tolerance: int) -> NDArray[np.int64]:
    """For each ``query`` value the index of the nearest ``ref`` value within ``tolerance``, else -1.

    ``ref`` need not be sorted; ties go to the earlier reference.

    >>> nearest_within(np.array([10, 50, 100]), np.array([12, 95, 30]), 5).tolist()
    [0, -1, 1]
    """
    query = np.asarray(query, dtype=np.int64)
    ref = np.asarray(ref, dtype=np.int64)
    out = np.full(query.size, -1, dtype=np.int64)
    if ref.size == 0 or query.size == 0:
        return out
    order = np.argsort(ref, kind="stable")
    sref = ref[order]
    pos = np.searchsorted(sref, query)
    left = np.clip(pos - 1, 0, sref.size - 1)
    right = np.clip(pos, 0, sref.size - 1)
    dl = np.abs(query - sref[left])
    dr = np.abs(sref[right] - query)
    best = np.where(dr < dl, right, left)
    dist = np.minimum(dl, dr)
    ok = dist <= tolerance
    out[ok] = order[best[ok]]
    return out


def asof_join(
    left: pd.DataFrame,
    right: pd.DataFrame,
    *,
    on: str,
    tolerance: float,
    by: str | list[str] | None = None,
    direction: str = "nearest",
) -> pd.DataFrame:
    """``pandas.merge_asof`` on a float time column, sorting both sides first and keeping ``left``'s order.

    Rows of ``left`` with no ``right`` row within ``tolerance`` (same ``by`` keys) get NaN; the
    matched right time is returned in ``<on>_right`` so callers can check the lag.

    >>> l = pd.DataFrame({"t": [0.0, 10.0, 20.0]})
    >>> r = pd.DataFrame({"t": [1.0, 14.0], "hr": [60, 70]})
    >>> asof_join(l, r, on="t", tolerance=3.0)["hr"].tolist()
    [60.0, nan, nan]
    """
    lft = left.reset_index(drop=True).assign(_row=np.arange(len(left)))
    rgt = right.assign(**{f"{on}_right": right[on].astype(float)})
    lft[on] = lft[on].astype(float)
    rgt[on] = rgt[on].astype(float)
    merged = pd.merge_asof(
        lft.sort_values(on, kind="stable"),
        rgt.sort_values(on, kind="stable"),
        on=on,
        by=by,
        tolerance=float(tolerance),  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
    )
    return merged.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def join_nearest_values(windows: pd.DataFrame, values: pd.DataFrame, *, tolerance_s: float) -> pd.DataFrame:
    """Nearest value of each series to each window centre, per patient, within ``tolerance_s``.

    ``windows`` needs ``patient_id`` and ``t`` (centre time); ``values`` needs ``patient_id``,
    ``series``, ``t`` and ``value``. Returns one row per (window, series) match with the window's
    columns plus ``series``, ``value`` and ``lag_s`` (value time minus window time).

    >>> w = pd.DataFrame({"patient_id": ["p", "p"], "t": [5.0, 100.0], "w": [0, 1]})
    >>> v = pd.DataFrame({"patient_id": "p", "series": "HR", "t": [0.0, 60.0], "value": [70.0, 80.0]})
    >>> join_nearest_values(w, v, tolerance_s=30)[["w", "series", "value", "lag_s"]].values.tolist()
    [[0, 'HR', 70.0, -5.0]]
    """
    out = []
    for name, part in values.groupby("series", sort=True):
        right = part[["patient_id", "t", "value"]]
        joined = asof_join(windows, right, on="t", by="patient_id", tolerance=tolerance_s)
        joined = joined[joined["value"].notna()]
        if len(joined):
            out.append(
                joined.assign(series=name, lag_s=joined["t_right"] - joined["t"]).drop(columns="t_right")
            )
    if not out:
        return pd.DataFrame(columns=[*windows.columns, "value", "series", "lag_s"])
    return pd.concat(out, ignore_index=True)


def epoch_seconds(when: datetime) -> float:
    """Seconds since 1970-01-01 of a naive date-time read as UTC (works past pandas' year 2262).

    >>> epoch_seconds(datetime(1970, 1, 2))
    86400.0
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
