"""One wave channel of a record turned into windows, quality, beats and its signal row.

:func:`~medmm.signals.process.process_record` hands each wave channel (ECG, EEG, PPG ...) to
:func:`process_wave`: units normalised, missing / flat / saturated samples masked at the native rate,
the channel resampled, cut into fixed windows (and windows around each anchor) that are written to the
store with their quality columns (:func:`window_quality_row`), ECG beats detected, and the channel's
:class:`~medmm.signals.records.SignalRow` appended (:func:`wave_outputs`, shared with the chunked
reader of long EDF files, :mod:`medmm.signals.chunked`).

>>> unique_names(["II", "V", "II"])
['II', 'V', 'II_2']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medmm.signals.align import anchor_window, extract_window, tile_windows, time_to_sample
from medmm.signals.ecg import BEAT_KEYS, EcgBeats, ecg_beats
from medmm.signals.harmonize import flat_mask, normalize_units, resample, saturation_mask
from medmm.signals.quality import window_quality
from medmm.signals.records import SignalRow, WindowRow
from medmm.signals.store import write_windows

if TYPE_CHECKING:
    from medmm.signals.process import RecordResult, Settings

__all__ = ["abs_time", "process_wave", "unique_names", "wave_outputs", "window_quality_row"]


def _window_row(
    ctx: dict[str, Any], x: np.ndarray, span_native: tuple[int, int], masks: dict[str, np.ndarray], pad: float
) -> dict[str, float]:
    a, b = span_native
    n = max(b - a, 1)
    frac = {k: float(m[a:b].sum()) / n if b > a else 0.0 for k, m in masks.items()}
    return window_quality_row(ctx, x, frac, pad)


def window_quality_row(
    ctx: dict[str, Any], x: np.ndarray, frac: dict[str, float], pad: float
) -> dict[str, float]:
    """Quality columns of one window from its samples, mask fractions (native rate) and padding share."""
    missing = pad + (1 - pad) * frac["missing"]
    q = window_quality(
        x, ctx["fs_out"], ctx["kind"], missing=missing, flat=frac["flat"], saturated=frac["sat"]
    )
    return {
        "missing": q.missing,
        "flat": q.flat,
        "saturated": q.saturated,
        "wander": q.wander,
        "noise": q.noise,
        "quality": q.sqi,
    }


def unique_names(names: list[str]) -> list[str]:
    """Channel names made unique within a record (``II``, ``II_2`` ...) so their arrays never collide.

    >>> unique_names(["II", "V", "II"])
    ['II', 'V', 'II_2']
    """
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def process_wave(
    ctx: dict[str, Any],
    ch: Any,
    name: str,
    settings: Settings,
    run_dir: Path,
    res: RecordResult,
    beats: list,
    feats: list,
) -> None:
    """One wave channel ``ch`` of a record: its windows (fixed tiles and, around each anchor, anchored
    windows) written to the store with their quality rows, its ECG beats when it is an ECG sampled fast
    enough, and its signal row (:func:`wave_outputs`); rows go to ``res``, beat / feature frames to
    ``beats`` / ``feats``."""
    x, units = normalize_units(ch.data, ch.units, ch.kind)
    fs = ch.fs
    masks = {"missing": ~np.isfinite(x), "flat": flat_mask(x, fs), "sat": saturation_mask(x, ch.adc_limits)}
    y, fs_out = resample(x, fs, settings.rate)
    ctx = {**ctx, "fs_out": fs_out, "kind": ch.kind}
    native = lambda s, e: (int(np.floor(s * fs / fs_out)), int(np.ceil(e * fs / fs_out)))  # noqa: E731
    base = {"record": res.record, "patient_id": ctx["patient_id"], "channel": name, "fs": fs_out}
    wlen = max(1, round(settings.window_s * fs_out))
    starts = tile_windows(y.size, wlen, wlen)
    rows = []
    if starts.size:
        arr = np.stack([y[s : s + wlen] for s in starts])
        rel = write_windows(run_dir, res.record, name, arr)
        for i, s in enumerate(starts):
            q = _window_row(ctx, arr[i], native(s, s + wlen), masks, 0.0)
            t0 = s / fs_out
            rows.append(
                WindowRow(
                    **base,
                    window=i,
                    path=rel,
                    row=i,
                    start_sample=int(s),
                    stop_sample=int(s + wlen),
                    pad_before=0,
                    pad_after=0,
                    start_s=t0,
                    start_abs_s=abs_time(ctx, t0),
                    anchor="",
                    anchor_s=None,
                    **q,
                )
            )
    good = [r.quality for r in rows]
    anchored: list[np.ndarray] = []
    arows: list[dict[str, Any]] = []
    before, after = round(settings.before_s * fs_out), round(settings.after_s * fs_out)
    for label, t in ctx["anchors"]:
        span = anchor_window(int(time_to_sample(t, fs_out)), before, after, y.size)
        if span.stop <= span.start:
            continue
        w = extract_window(y, span)
        pad = (span.pad_before + span.pad_after) / max(1, w.size)
        q = _window_row(ctx, w, native(span.start, span.stop), masks, pad)
        t0 = (span.start - span.pad_before) / fs_out
        arows.append(
            dict(
                **base,
                window=len(anchored),
                row=len(anchored),
                start_sample=span.start,
                stop_sample=span.stop,
                pad_before=span.pad_before,
                pad_after=span.pad_after,
                start_s=t0,
                start_abs_s=abs_time(ctx, t0),
                anchor=label,
                anchor_s=float(t),
                **q,
            )
        )
        anchored.append(w)
    if anchored:
        rel = write_windows(run_dir, res.record, name, np.stack(anchored), kind="anchored")
        rows += [WindowRow(**r, path=rel) for r in arows]
    res.windows += rows
    out = None
    if ch.kind == "ecg" and fs >= settings.min_beat_fs and np.isfinite(x).any():
        out = ecg_beats(
            x,
            fs,
            ctx["ref"],
            chunk_s=settings.chunk_s,
            overlap_s=settings.overlap_s,
            exclude=masks["flat"],
            recover_small_beats=settings.recover_small_beats,
        )
    n = int(x.size)
    fracs = {k: float(m.mean()) if n else (1.0 if k == "missing" else 0.0) for k, m in masks.items()}
    wave_outputs(ctx, ch, name, units, fs_out, n, fracs, len(starts), good, out, settings, res, beats, feats)


def wave_outputs(
    ctx: dict[str, Any],
    ch: Any,
    name: str,
    units: str,
    fs_out: float,
    n: int,
    fracs: dict[str, float],
    n_windows: int,
    good: list[float],
    out: EcgBeats | None,
    settings: Settings,
    res: RecordResult,
    beats: list,
    feats: list,
) -> None:
    """Append a wave channel's signal row, and its beat / feature frames when ``out`` holds beats."""
    fs = ch.fs
    hrv: dict[str, Any] = {}
    ref_ext, match, sens, ppv = "", None, None, None
    if out is not None:
        hrv, ref_ext, match = out.hrv, out.ref_extension, out.ref_match_fraction
        sens, ppv = out.ref_sensitivity, out.ref_ppv
        t = out.table
        keys = pd.DataFrame(
            {"record": res.record, "patient_id": ctx["patient_id"], "channel": name}, index=t.index
        )
        b = pd.concat([keys, t[BEAT_KEYS]], axis=1)
        b["abs_time_s"] = (t["time_s"] + ctx["start_abs"]) if ctx["start_abs"] is not None else None
        b["ref_symbol"] = t["ref_symbol"]
        beats.append(b)
        feat_cols = [c for c in t.columns if c not in (*BEAT_KEYS, "ref_symbol")]
        feats.append(pd.concat([keys.drop(columns="patient_id"), t[["sample"]], t[feat_cols]], axis=1))
    res.signals.append(
        SignalRow(
            record=res.record,
            patient_id=ctx["patient_id"],
            format=ctx["format"],
            channel=name,
            source_channel=ch.source_name,
            kind=ch.kind,
            role="wave",
            units=units,
            fs=fs,
            fs_out=fs_out,
            n_samples=n,
            duration_s=n / fs,
            start=ctx["start"],
            start_abs_s=ctx["start_abs"],
            n_segments=ctx["n_segments"],
            missing_fraction=fracs["missing"],
            flat_fraction=fracs["flat"],
            saturated_fraction=fracs["sat"],
            n_windows=n_windows,
            mean_sqi=float(np.mean(good)) if good else None,
            good_window_fraction=float(np.mean([g >= settings.good_sqi for g in good])) if good else None,
            n_beats=int(hrv["n_beats"]) if hrv else None,
            mean_hr_bpm=_num(hrv.get("mean_hr_bpm")),
            sdnn_ms=_num(hrv.get("sdnn_ms")),
            rmssd_ms=_num(hrv.get("rmssd_ms")),
            ref_annotation=ref_ext,
            ref_match_fraction=match,
            ref_sensitivity=sens,
            ref_ppv=ppv,
        )
    )


def _num(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def abs_time(ctx: dict[str, Any], t: float) -> float | None:
    """Epoch seconds of ``t`` seconds into the record, ``None`` when the record has no absolute start.

    >>> abs_time({"start_abs": 100.0}, 2.5), abs_time({"start_abs": None}, 2.5)
    (102.5, None)
    """
    return None if ctx["start_abs"] is None else ctx["start_abs"] + float(t)
