"""The ECG-beats step: R peaks in overlapping chunks, the beat table, HRV, reference symbols.

Detection and features come from :mod:`medmm.signals.beats`; this module only wires them to a channel:
long records are cut into chunks read with overlap (:func:`medmm.signals.align.chunk_spans`) so the
detector's memory stays bounded and no beat at a seam is lost or doubled, and each detected beat gets
the symbol of the nearest reference annotation within 150 ms (``ref_symbol``, ``""`` when none).

>>> import numpy as np
>>> fs = 250.0
>>> t = np.arange(int(20 * fs)) / fs
>>> ecg = sum(np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in np.arange(0.5, 20, 0.8))
>>> out = ecg_beats(ecg, fs, ref=None, chunk_s=6.0, overlap_s=2.0)
>>> len(out.table), round(out.hrv["mean_hr_bpm"])
(25, 75)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medmm.signals.align import chunk_spans, nearest_within, rescale_index
from medmm.signals.readers._base import Annotations

__all__ = [
    "BEAT_KEYS",
    "EcgBeats",
    "beat_reference",
    "dedupe_peaks",
    "detect_chunked",
    "drop_masked",
    "ecg_beats",
    "finish_beats",
    "gap_runs",
    "min_gap",
    "unbridge_rr",
]

#: Columns of ``beats.parquet`` taken from the beat table (the rest go to ``features.parquet``).
BEAT_KEYS = ["sample", "time_s", "rr_prev_s", "rr_next_s", "hr_bpm"]
_REFRACTORY_S = 0.2
_MIN_GAP_S = 0.15


@dataclass
class EcgBeats:
    """Result of the beats step on one ECG channel."""

    table: pd.DataFrame  # beat_table columns + ref_symbol
    hrv: dict[str, float | int] = field(default_factory=dict)
    ref_extension: str = ""
    ref_match_fraction: float | None = None
    ref_sensitivity: float | None = None  # matched reference beats / reference beats (EC57-style, 150 ms)
    ref_ppv: float | None = None  # matched detections / detections


def detect_chunked(
    x: NDArray[np.float64],
    fs: float,
    chunk_s: float = 600.0,
    overlap_s: float = 10.0,
    *,
    recover_small_beats: bool = False,
) -> NDArray[np.int64]:
    """R peaks of ``x`` detected chunk by chunk (each read with ``overlap_s`` of context each side).

    A peak is kept by the chunk whose core holds it; peaks closer than 200 ms after merging (the
    same beat seen from two chunks) are kept once. ``recover_small_beats`` is the detector's opt-in
    small-beat rule (:func:`~medmm.signals.beats.detect_rpeaks`).
    """
    from medmm.signals.beats import detect_rpeaks

    n = x.size
    chunk = max(1, round(chunk_s * fs))
    spans = chunk_spans(n, chunk, round(overlap_s * fs))
    found = []
    for span in spans:
        p = detect_rpeaks(x[span.read_start : span.read_stop], fs, recover_small_beats=recover_small_beats)
        p = p + span.read_start
        found.append(p[(p >= span.keep_start) & (p < span.keep_stop)])
    return dedupe_peaks(found, fs)


def dedupe_peaks(found: list[NDArray[np.int64]], fs: float) -> NDArray[np.int64]:
    """Merge the peaks kept by each chunk; peaks closer than 200 ms (one beat seen twice) are kept once.

    >>> dedupe_peaks([np.array([10, 100]), np.array([120, 400])], 250.0).tolist()
    [10, 100, 400]
    """
    peaks = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    if peaks.size > 1:
        keep = np.concatenate(([True], np.diff(peaks) >= _REFRACTORY_S * fs))
        peaks = peaks[keep]
    return peaks.astype(np.int64)


def drop_masked(
    peaks: NDArray[np.int64], mask: NDArray[np.bool_] | None, offset: int = 0
) -> NDArray[np.int64]:
    """``peaks`` without those on a masked sample (``mask[peak - offset]``), e.g. inside a flat line.

    A run of unchanged value lasting a second or more (lead off, a disconnected or saturated input)
    holds no QRS complex; on such a line the detector's adaptive threshold falls to the numerical
    noise of the band-pass and it would report a "beat" every few hundred ms.

    >>> flat = np.r_[np.zeros(40, bool), np.ones(20, bool), np.zeros(40, bool)]
    >>> drop_masked(np.array([5, 50, 95]), flat).tolist()
    [5, 95]
    """
    if mask is None or peaks.size == 0:
        return peaks
    return peaks[~mask[peaks - offset]]


def gap_runs(mask: NDArray[np.bool_], offset: int = 0) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(starts, stops)`` of the ``True`` runs of ``mask`` (samples ``offset + i``), e.g. NaN or flat.

    >>> [a.tolist() for a in gap_runs(np.array([0, 1, 1, 0, 1], bool), 100)]
    [[101, 104], [103, 105]]
    """
    edges = np.diff(np.concatenate(([0], np.asarray(mask, dtype=np.int8), [0])))
    return np.flatnonzero(edges == 1) + offset, np.flatnonzero(edges == -1) + offset


def min_gap(fs: float) -> int:
    """Samples of the shortest stretch without signal that breaks an RR interval: 150 ms, about the
    longest QRS complex, so a whole beat could hide in it.

    >>> min_gap(360.0)
    54
    """
    return max(1, round(_MIN_GAP_S * fs))


def unbridge_rr(
    table: pd.DataFrame,
    peaks: NDArray[np.int64],
    starts: NDArray[np.int64],
    stops: NDArray[np.int64],
    min_len: int = 1,
) -> pd.DataFrame:
    """The beat table with RR intervals that span missing (NaN) or flat-line samples set to NaN.

    Such an interval is not a heartbeat interval but a stretch without signal (a gap between the
    segments of a multi-segment record, a lead-off): ``rr_prev_s``/``rr_next_s``/``hr_bpm`` of the
    beats around it become NaN and ``rr_ratio`` is recomputed without it, instead of reporting, e.g.,
    a 34 s "pause" at 1.8 bpm. ``starts``/``stops`` are sorted, non-overlapping runs (:func:`gap_runs`;
    touching runs, as chunks cut them, are merged); only runs of at least ``min_len`` samples count (a
    few invalid samples cannot hide a beat, so the interval around them is still measured).

    >>> t = pd.DataFrame({"rr_prev_s": [np.nan, 1.0, 5.0], "rr_next_s": [1.0, 5.0, np.nan],
    ...                   "hr_bpm": [np.nan, 60.0, 12.0], "rr_ratio": [np.nan, 1.0, 5.0]})
    >>> unbridge_rr(t, np.array([0, 250, 1500]), np.array([600]), np.array([900]))["rr_prev_s"].tolist()
    [nan, 1.0, nan]
    """
    from medmm.signals.beats.features import _rr_ratio

    if starts.size:
        join = np.flatnonzero(starts[1:] == stops[:-1])  # a run cut in two at a chunk seam
        starts, stops = np.delete(starts, join + 1), np.delete(stops, join)
        long = stops - starts >= min_len
        starts, stops = starts[long], stops[long]
    if peaks.size < 2 or starts.size == 0:
        return table
    first = np.searchsorted(stops, peaks[:-1], side="right")  # first gap ending after each beat
    broken = np.zeros(peaks.size - 1, dtype=bool)
    ok = first < starts.size
    broken[ok] = starts[first[ok]] < peaks[1:][ok]
    if not broken.any():
        return table
    out = table.copy()
    rr_prev = out["rr_prev_s"].to_numpy(dtype=np.float64).copy()
    rr_next = out["rr_next_s"].to_numpy(dtype=np.float64).copy()
    rr_next[:-1][broken] = np.nan
    rr_prev[1:][broken] = np.nan
    out["rr_prev_s"], out["rr_next_s"] = rr_prev, rr_next
    with np.errstate(divide="ignore", invalid="ignore"):
        out["hr_bpm"] = 60.0 / rr_prev
    out["rr_ratio"] = _rr_ratio(rr_prev)
    return out


def beat_reference(annotations: list[Annotations]) -> Annotations | None:
    """The reference beat annotations of a record: the first annotation set holding beat symbols.

    >>> beat_reference([]) is None
    True
    """
    from medmm.signals.readers.wfdb import BEAT_SYMBOLS

    for ann in annotations:
        keep = [i for i, s in enumerate(ann.symbol) if s in BEAT_SYMBOLS]
        if keep:
            return Annotations(
                ann.extension,
                ann.fs,
                ann.sample[keep],
                [ann.symbol[i] for i in keep],
                [ann.aux[i] for i in keep],
            )
    return None


def ecg_beats(
    x: NDArray[np.float64],
    fs: float,
    ref: Annotations | None,
    *,
    chunk_s: float = 600.0,
    overlap_s: float = 10.0,
    tol_s: float = 0.15,
    exclude: NDArray[np.bool_] | None = None,
    recover_small_beats: bool = False,
) -> EcgBeats:
    """Detect beats on one ECG channel at its native rate and carry the reference symbols along.

    Parameters
    ----------
    x, fs
        The channel (physical units, NaN gaps allowed) and its native rate.
    ref
        Reference beat annotations (see :func:`beat_reference`) or ``None``.
    chunk_s, overlap_s
        Detection chunk length and context on each side, seconds.
    tol_s
        Largest distance of a reference beat to count as the same beat.
    exclude
        Samples where no beat can be (the channel's flat-line mask): peaks there are dropped
        (:func:`drop_masked`); RR intervals spanning them or NaN samples are NaN (:func:`unbridge_rr`).
    recover_small_beats
        The detector's opt-in small-beat rule (:func:`~medmm.signals.beats.detect_rpeaks`).
    """
    from medmm.signals.beats import beat_table

    peaks = detect_chunked(x, fs, chunk_s, overlap_s, recover_small_beats=recover_small_beats)
    peaks = drop_masked(peaks, exclude)
    no_signal = ~np.isfinite(x) if exclude is None else (~np.isfinite(x) | exclude)
    table = unbridge_rr(beat_table(x, fs, peaks), peaks, *gap_runs(no_signal), min_len=min_gap(fs))
    return finish_beats(table, peaks, fs, ref, tol_s=tol_s)


def finish_beats(
    table: pd.DataFrame, peaks: NDArray[np.int64], fs: float, ref: Annotations | None, *, tol_s: float = 0.15
) -> EcgBeats:
    """HRV and reference symbols/matching for a beat table made from ``peaks`` (see :func:`ecg_beats`).

    >>> import numpy as np, pandas as pd
    >>> out = finish_beats(pd.DataFrame({"sample": [100, 350]}), np.array([100, 350]), 250.0, None)
    >>> out.table["ref_symbol"].tolist(), out.ref_extension
    (['', ''], '')
    """
    from medmm.signals.beats import hrv_summary, match_reference

    symbols = np.full(len(table), "", dtype=object)
    out = EcgBeats(table=table, hrv=hrv_summary(peaks, fs))
    if ref is not None:
        out.ref_extension = ref.extension
        ref_samples = np.asarray(rescale_index(ref.sample, ref.fs, fs), dtype=np.int64)
        if peaks.size:
            idx = nearest_within(peaks, ref_samples, round(tol_s * fs))
            ref_sym = np.asarray(ref.symbol, dtype=object)
            symbols[idx >= 0] = ref_sym[idx[idx >= 0]]
            out.ref_match_fraction = float((idx >= 0).mean())
        m = match_reference(peaks, ref_samples, fs, tol_s=tol_s)
        out.ref_sensitivity = None if m.tp + m.fn == 0 else float(m.sensitivity)
        out.ref_ppv = None if m.tp + m.fp == 0 else float(m.positive_predictivity)
    out.table = table.assign(ref_symbol=symbols.astype(str) if len(table) else pd.Series(dtype=str))
    return out
