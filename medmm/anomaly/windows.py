"""Window-level anomaly scores: the beat scores of ``anomalies.parquet`` summarised per signals window.

Every window of ``windows.parquet`` gets exactly one row (``window_anomalies.parquet``), windows
without beats included. Rules (``docs/anomaly-windows.md``):

* **beat -> window**: a beat belongs to every window whose span of samples holds its R peak,
  ``span_start_s <= time_s < span_stop_s`` with ``span = [start_sample, stop_sample) / fs`` of the
  window (NaN padding of anchored windows excluded). Tiled windows do not overlap (step = length), so a
  beat is in at most one tiled window; anchored windows overlap the tiled ones and each other, and a beat
  counts in each of them. Beats after the last whole tiled window are in no tiled window.
* **score** = the largest beat score in the window (NaN when no beat was scored); **status**, first
  rule that applies: ``not_scored`` (no beat detection on the channel - not ECG, or below the signals
  stage's ``min_beat_fs`` - or its record was not scored), ``anomalous`` (a flagged beat),
  ``asystole`` (no R peak in a readable window, none on the record's other leads either), ``pause``
  (two consecutive beats >= ``pause_s`` apart around or inside the window, every window that stretch
  touches readable *and* of signal quality >= ``good_sqi`` - the R-peak detector misses beats in heavy
  noise or wander - and no other lead of the record with a beat inside the stretch), ``unreadable``
  (no beat and signal absent: lead off, flat, clipped or missing; no beat on this lead while another
  lead has some; or beats but all with quality weight 0), else ``normal``. **flag** = status in
  (anomalous, asystole, pause). A window is *readable* when at least ``readable`` of it has signal:
  ``(1 - missing)(1 - flat)(1 - saturated)`` of the signals stage's window quality columns.

>>> import pandas as pd
>>> w = pd.DataFrame({"record": "r", "patient_id": "p", "channel": "II", "window": [0, 1],
...                   "anchor": "", "path": "windows/r/II.npy", "row": [0, 1], "fs": 250.0,
...                   "start_sample": [0, 2500], "stop_sample": [2500, 5000], "missing": 0.0,
...                   "flat": 0.0, "saturated": 0.0, "quality": 0.9})
>>> b = pd.DataFrame({"record": "r", "channel": "II", "sample": [360, 720, 1080],
...                   "time_s": [1.0, 2.0, 3.0], "score": [1.0, 14.0, 2.0],
...                   "flag": [False, True, False], "quality": 1.0})
>>> score_windows(w, b)[["n_beats", "score", "status", "flag"]].values.tolist()
[[3, 14.0, 'anomalous', True], [0, nan, 'asystole', True]]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "FLAG_STATUSES",
    "GOOD_SQI",
    "MATCH_S",
    "PAUSE_S",
    "READABLE_FRACTION",
    "WINDOW_STATUSES",
    "assign_beats",
    "score_windows",
    "window_spans",
]

#: every value of the ``status`` column, in the order the rules are tried
WINDOW_STATUSES = ("not_scored", "anomalous", "asystole", "pause", "unreadable", "normal")
#: statuses whose ``flag`` is True (what a screening user must look at); ``unreadable`` is not normal
#: either, but it is a recording problem, not a finding: it has its own status, not the flag
FLAG_STATUSES = ("anomalous", "asystole", "pause")
#: seconds without an R peak that make a pause (the usual clinical limit for a sinus pause / arrest)
PAUSE_S = 3.0
#: a window is readable when at least this share of it holds signal (not missing, flat or clipped)
READABLE_FRACTION = 0.5
#: the signals stage's default ``good_sqi``: a pause is only trusted in windows at least this good
GOOD_SQI = 0.5
#: seconds: beats of two leads this close are one beat (the signals stage's reference matching window)
MATCH_S = 0.15

_KEYS = ["record", "channel"]


def window_spans(windows: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(start_s, stop_s)`` of each window's samples in record time: ``[start_sample, stop_sample) / fs``.

    >>> import pandas as pd
    >>> w = pd.DataFrame({"fs": [250.0], "start_sample": [2500], "stop_sample": [5000]})
    >>> [x.tolist() for x in window_spans(w)]
    [[10.0], [20.0]]
    """
    fs = windows["fs"].to_numpy(dtype=np.float64)
    start = windows["start_sample"].to_numpy(dtype=np.float64) / fs
    stop = windows["stop_sample"].to_numpy(dtype=np.float64) / fs
    return start, stop


def _codes(beats: pd.DataFrame, windows: pd.DataFrame) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """One integer per (record, channel), shared by the two frames."""
    keys = pd.concat([beats[_KEYS].astype(str), windows[_KEYS].astype(str)], ignore_index=True)
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(keys))
    codes = np.asarray(codes, dtype=np.int64)
    return codes[: len(beats)], codes[len(beats) :]


def _beat_times(beats: pd.DataFrame) -> NDArray[np.float64]:
    return beats["time_s"].to_numpy(dtype=np.float64)


def assign_beats(beats: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Beat -> window pairs: ``beat`` and ``window`` are row positions in ``beats`` and ``windows``.

    A beat is in a window of its own record and channel when ``span_start_s <= time_s < span_stop_s``
    (:func:`window_spans`). Overlapping windows (anchored ones) each get the beat, so a beat may appear
    in several pairs, and a beat in no window in none. Pairs are sorted by window, then beat time.

    >>> import pandas as pd
    >>> w = pd.DataFrame({"record": "r", "channel": "II", "fs": 100.0,
    ...                   "start_sample": [0, 1000, 500], "stop_sample": [1000, 2000, 1500]})
    >>> b = pd.DataFrame({"record": "r", "channel": "II", "time_s": [2.0, 7.0, 10.0, 25.0]})
    >>> assign_beats(b, w).values.tolist()  # beat 1 (7 s) also in the overlapping 5-15 s window
    [[0, 0], [1, 0], [2, 1], [1, 2], [2, 2]]
    """
    bk, wk = _codes(beats, windows)
    t = _beat_times(beats)
    order = np.lexsort((t, bk))
    bk_s, t_s = bk[order], t[order]
    start, stop = window_spans(windows)
    seg_lo = np.searchsorted(bk_s, wk, "left")
    seg_hi = np.searchsorted(bk_s, wk, "right")
    lo = np.empty(len(windows), np.int64)
    hi = np.empty(len(windows), np.int64)
    for i in range(len(windows)):  # one searchsorted per window, on its channel's sorted beat times
        seg = t_s[seg_lo[i] : seg_hi[i]]
        lo[i] = seg_lo[i] + np.searchsorted(seg, start[i], "left")
        hi[i] = seg_lo[i] + np.searchsorted(seg, stop[i], "left")
    counts = hi - lo
    win = np.repeat(np.arange(len(windows), dtype=np.int64), counts)
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    beat = order[np.repeat(lo, counts) + offsets] if len(win) else np.zeros(0, np.int64)
    return pd.DataFrame({"beat": beat.astype(np.int64), "window": win})


def _present(windows: pd.DataFrame) -> NDArray[np.float64]:
    """Share of each window's span (padding excluded) holding signal: ``(1 - missing)(1 - flat)(1 -
    saturated)``, where the signals stage's ``missing`` counts the padding of anchored windows too."""
    n = len(windows)
    missing = windows["missing"].to_numpy(dtype=np.float64) if "missing" in windows else np.zeros(n)
    if {"pad_before", "pad_after"} <= set(windows.columns):
        span = (windows["stop_sample"] - windows["start_sample"]).to_numpy(dtype=np.float64)
        pad = (windows["pad_before"] + windows["pad_after"]).to_numpy(dtype=np.float64)
        share = np.where(span + pad > 0, pad / np.maximum(span + pad, 1.0), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            missing = np.where(share < 1, (missing - share) / np.maximum(1 - share, 1e-12), 1.0)
    out = 1.0 - np.clip(missing, 0.0, 1.0)
    for col in ("flat", "saturated"):
        if col in windows:
            out *= 1.0 - np.clip(windows[col].to_numpy(dtype=np.float64), 0.0, 1.0)
    return out


def _gaps(
    beats: pd.DataFrame, windows: pd.DataFrame, trusted: NDArray[np.bool_], pause_s: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per window: the longest beat-free stretch touching it (between consecutive beats of the channel,
    the window edge where the channel has no beat before / after it), and whether a pause touches it: a
    stretch of at least ``pause_s`` between two beats of the channel, every window of the channel it
    touches ``trusted``, and no other lead of the record with a beat inside it (more than
    ``MATCH_S`` from its ends: another lead's view of the same two beats)."""
    bk, wk = _codes(beats, windows)
    t = _beat_times(beats)
    rec = beats["record"].astype(str).to_numpy()
    start, stop = window_spans(windows)
    longest = np.zeros(len(windows), np.float64)
    pause = np.zeros(len(windows), bool)
    for code in np.unique(wk):
        widx = np.flatnonzero(wk == code)
        mine = bk == code
        tb = np.unique(t[mine])
        lo = np.searchsorted(tb, start[widx], "left")
        hi = np.searchsorted(tb, stop[widx], "left")
        for j, i in enumerate(widx):
            pts = tb[max(lo[j] - 1, 0) : hi[j] + 1]
            if lo[j] == 0:
                pts = np.concatenate([[start[i]], pts])
            if hi[j] == tb.size:
                pts = np.concatenate([pts, [stop[i]]])
            longest[i] = float(np.diff(pts).max()) if pts.size > 1 else float(stop[i] - start[i])
        gaps = np.flatnonzero(np.diff(tb) >= pause_s)  # a pause between beats k and k + 1
        if not gaps.size:
            continue
        record = str(windows["record"].iloc[widx[0]])
        others = np.sort(t[~mine & (rec == record)])  # the record's other leads
        for k in gaps:
            a, b = tb[k] + MATCH_S, tb[k + 1] - MATCH_S
            if np.searchsorted(others, b, "left") > np.searchsorted(others, a, "right"):
                continue  # another lead saw a beat in the stretch: a beat this lead missed
            touched = widx[(start[widx] < tb[k + 1]) & (stop[widx] > tb[k])]
            if touched.size and trusted[touched].all():
                pause[touched] = True
    return longest, pause


def _other_lead_beats(beats: pd.DataFrame, windows: pd.DataFrame) -> NDArray[np.int64]:
    """Per window: beats of the record's *other* channels in the window's span."""
    pairs = assign_beats(beats.assign(channel=""), windows.assign(channel=""))  # any channel of the record
    bi, wi = pairs["beat"].to_numpy(), pairs["window"].to_numpy()
    other = beats["channel"].astype(str).to_numpy()[bi] != windows["channel"].astype(str).to_numpy()[wi]
    return np.bincount(wi[other], minlength=len(windows)).astype(np.int64)


def score_windows(
    windows: pd.DataFrame,
    scored: pd.DataFrame,
    beats: pd.DataFrame | None = None,
    *,
    beat_channels: Iterable[tuple[str, str]] | None = None,
    pause_s: float = PAUSE_S,
    readable: float = READABLE_FRACTION,
    good_sqi: float = GOOD_SQI,
) -> pd.DataFrame:
    """One row per window of ``windows`` (same order): beat counts, window score, status and flag.

    Parameters
    ----------
    windows : pandas.DataFrame
        ``windows.parquet`` rows (``record``, ``channel``, ``fs``, ``start_sample``, ``stop_sample``;
        ``patient_id``, ``window``, ``anchor``, ``path``, ``row``, ``missing``, ``flat``, ``saturated``,
        ``quality`` carried or used when present).
    scored : pandas.DataFrame
        ``anomalies.parquet`` rows: ``record``, ``channel``, ``sample``, ``score``, ``flag``, ``quality``
        (and ``time_s`` when ``beats`` is None).
    beats : pandas.DataFrame, optional
        Every detected beat (``beats.parquet``: ``record``, ``channel``, ``sample``, ``time_s``), so
        beats the anomaly stage did not score (a record whose waveform could not be re-read) still
        count in ``n_beats``. Default: the beats of ``scored``.
    beat_channels : iterable of (record, channel), optional
        Channels on which the signals stage ran beat detection (``signals.parquet`` rows with
        ``n_beats`` not null); their windows without beats are asystole or unreadable, the windows of
        other channels ``not_scored``. Default: the channels with a beat in ``beats``.
    pause_s, readable, good_sqi : float
        The pause length (s), the readable share of a window and the window quality (``quality`` of
        ``windows.parquet``) a pause needs (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Columns of :class:`~medmm.anomaly.records.WindowAnomalyRow`.

    Examples
    --------
    >>> import pandas as pd
    >>> w = pd.DataFrame({"record": "r", "channel": "II", "fs": 100.0, "start_sample": [0],
    ...                   "stop_sample": [1000], "flat": [0.9]})
    >>> b = pd.DataFrame({"record": "r", "channel": "II", "sample": [100], "time_s": [1.0],
    ...                   "score": [0.0], "flag": [False], "quality": [0.0]})
    >>> score_windows(w, b)["status"].tolist()  # its only beat has quality weight 0 (flat lead)
    ['unreadable']
    """
    keys = [*_KEYS, "sample"]
    sc = scored.assign(record=scored["record"].astype(str), channel=scored["channel"].astype(str))
    sc = sc.drop_duplicates(keys)
    if beats is None:
        bt = sc[[*keys, "time_s"]]
    else:
        bt = beats[[*keys, "time_s"]].assign(
            record=beats["record"].astype(str), channel=beats["channel"].astype(str)
        )
        bt = bt.drop_duplicates(keys)
    bt = bt.merge(sc[[*keys, "score", "flag", "quality"]], on=keys, how="left").reset_index(drop=True)
    w = windows.reset_index(drop=True)
    n = len(w)
    pairs = assign_beats(bt, w)
    bi, wi = pairs["beat"].to_numpy(), pairs["window"].to_numpy()
    score = bt["score"].to_numpy(dtype=np.float64)[bi]
    is_scored = np.isfinite(score)
    quality = bt["quality"].to_numpy(dtype=np.float64)[bi]
    flag = bt["flag"].fillna(False).to_numpy(dtype=bool)[bi] & is_scored

    n_beats = np.bincount(wi, minlength=n)
    n_scored = np.bincount(wi, weights=is_scored, minlength=n).astype(np.int64)
    n_readable = np.bincount(wi, weights=is_scored & (quality > 0), minlength=n).astype(np.int64)
    n_flagged = np.bincount(wi, weights=flag, minlength=n).astype(np.int64)
    best = np.full(n, -np.inf)
    np.maximum.at(best, wi[is_scored], score[is_scored])
    best[~np.isfinite(best)] = np.nan
    q_sum = np.bincount(wi[is_scored], weights=quality[is_scored], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_q = np.where(n_scored > 0, q_sum / np.maximum(n_scored, 1), np.nan)

    present = _present(w)
    is_readable = present >= readable
    sqi = w["quality"].to_numpy(dtype=np.float64) if "quality" in w else np.ones(n)
    longest, pause = _gaps(bt, w, is_readable & (sqi >= good_sqi), pause_s)
    chan = pd.MultiIndex.from_arrays([w["record"].astype(str), w["channel"].astype(str)])
    detected = set(map(tuple, bt[_KEYS].to_numpy())) if beat_channels is None else set(beat_channels)
    scored_chans = set(map(tuple, sc[_KEYS].to_numpy()))
    chans_with_beats = set(map(tuple, bt[_KEYS].to_numpy()))
    ok_chan = np.array(
        [(c in detected) and (c in scored_chans or c not in chans_with_beats) for c in chan], dtype=bool
    )
    status = np.select(
        [
            ~ok_chan,
            n_flagged > 0,
            (n_beats == 0) & is_readable & (_other_lead_beats(bt, w) == 0),
            pause,
            (n_beats == 0) | (n_readable == 0),
        ],
        list(WINDOW_STATUSES[:5]),
        default="normal",
    )
    start, stop = window_spans(w)

    def col(name: str, default: object) -> object:
        return w[name].to_numpy() if name in w else default

    return pd.DataFrame(
        {
            "record": w["record"].astype(str).to_numpy(),
            "patient_id": w["patient_id"].astype(str).to_numpy() if "patient_id" in w else "",
            "channel": w["channel"].astype(str).to_numpy(),
            "window": col("window", np.arange(n)),
            "anchor": col("anchor", ""),
            "path": col("path", ""),
            "row": col("row", np.arange(n)),
            "span_start_s": start,
            "span_stop_s": stop,
            "n_beats": n_beats.astype(np.int64),
            "n_scored": np.where(ok_chan, n_scored, 0),
            "n_readable": np.where(ok_chan, n_readable, 0),
            "n_flagged": np.where(ok_chan, n_flagged, 0),
            "score": np.where(ok_chan, best, np.nan),
            "mean_quality": np.where(ok_chan, mean_q, np.nan),
            "signal_present": present,
            "signal_quality": sqi,
            "longest_gap_s": longest,
            "status": status.astype(str),
            "flag": np.isin(status, FLAG_STATUSES),
        }
    )
