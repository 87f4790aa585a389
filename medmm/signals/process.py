"""One record, end to end (a Dask task): read, harmonize, quality, windows, beats, pseudonymized rows.

:func:`process_record` takes a :class:`~medmm.signals.discover.RecordJob` (a few paths), writes the
record's window arrays to the run directory itself and returns only small rows, so memory per task is
one record and the driver's memory does not grow with the array sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.errors import ConfigError
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status
from medmm.signals.align import epoch_seconds
from medmm.signals.discover import RecordJob, _row
from medmm.signals.ecg import beat_reference
from medmm.signals.readers import LoadedRecord, read_dicom_waveform, read_edf, read_tabular, read_wfdb
from medmm.signals.readers.wfdb import BEAT_SYMBOLS
from medmm.signals.records import EventRow, SignalManifestRow, SignalRow, WindowRow

# _abs, wave_outputs and window_quality_row are also imported from here by medmm.signals.chunked
from medmm.signals.wave_rows import abs_time as _abs
from medmm.signals.wave_rows import process_wave, unique_names
from medmm.signals.wave_rows import wave_outputs as wave_outputs
from medmm.signals.wave_rows import window_quality_row as window_quality_row

__all__ = ["Anchor", "RecordResult", "Settings", "load_record", "process_record"]


@dataclass(frozen=True)
class Anchor:
    """A time to cut a window around: by record + seconds, or by patient pseudonym + shifted time."""

    label: str
    record: str | None = None
    time_s: float | None = None
    patient_id: str | None = None
    abs_time_s: float | None = None


@dataclass(frozen=True)
class Settings:
    """Options of the signals stage (recorded in ``run.json``)."""

    rate: float = 250.0  # target rate of waveform channels, Hz
    window_s: float = 10.0  # tiled window length (and step), seconds
    before_s: float = 30.0  # anchored windows: seconds before the anchor
    after_s: float = 30.0  # ... and after it
    anchor_events: str = r"^alarm"  # regex: events whose label matches become anchors
    anchors: tuple[Anchor, ...] = ()  # also accepts a path to an anchor table or a list of dicts
    patient_from: str = "record"  # patient key when the file has none: "record" name or "folder"
    trend_max_fs: float = 1.0  # channels at or below this rate are trends (vitals table)
    min_beat_fs: float = 100.0  # ECG channels below this rate get no beat detection
    chunk_s: float = 600.0  # beat detection chunk and record chunk (long WFDB records), seconds
    overlap_s: float = 10.0  # ... read with this much context each side
    chunk_records: bool = True  # read single-segment WFDB records longer than 2 chunks chunk by chunk
    good_sqi: float = 0.5  # windows at or above count as good
    vitals_tolerance_s: float = 60.0  # window_vitals: largest |vital time - window centre|
    recover_small_beats: bool = False  # opt-in R-peak rule for PVC-rich records (docs/signals.md, Session 9)

    def __post_init__(self) -> None:
        """Normalize ``anchors`` (workflow YAML gives a path or a list of mappings) and check choices."""
        anchors: Any = self.anchors
        if isinstance(anchors, (str, Path)):
            from medmm.signals.anchors import read_anchors

            anchors = read_anchors(Path(anchors))
        anchors = tuple(a if isinstance(a, Anchor) else Anchor(**a) for a in anchors)
        object.__setattr__(self, "anchors", anchors)
        if self.patient_from not in ("record", "folder"):
            raise ConfigError(f"patient_from must be 'record' or 'folder', not {self.patient_from!r}")
        if not isinstance(self.recover_small_beats, bool):  # YAML "yes"/"no" strings would both be true
            raise ConfigError(
                f"recover_small_beats must be true or false, not {self.recover_small_beats!r}. Fix: write "
                "recover_small_beats: true (or false) in the signals stage's options"
            )
        if not self.rate > 0 or not self.window_s > 0:
            raise ConfigError("rate and window_s must be positive")
        limits = {  # name: (lowest, highest) allowed; a typo here would hang or exhaust memory
            "before_s": (0.0, 86400.0),
            "after_s": (0.0, 86400.0),
            "chunk_s": (1.0, 86400.0),
            "overlap_s": (0.0, 3600.0),
            "good_sqi": (0.0, 1.0),
            "min_beat_fs": (1.0, 1e6),
            "trend_max_fs": (0.0, 1e6),
            "vitals_tolerance_s": (0.0, 86400.0 * 365),
        }
        bad = [
            f"{k} must be within [{lo:g}, {hi:g}], not {getattr(self, k)!r}"
            for k, (lo, hi) in limits.items()
            if not lo <= getattr(self, k) <= hi
        ]
        if bad:
            raise ConfigError("signals settings: " + "; ".join(bad))

    def options(self) -> dict[str, Any]:
        """JSON-able view for ``run.json``."""
        out = dict(self.__dict__)
        out["anchors"] = [a.__dict__ for a in self.anchors]
        return out


@dataclass
class RecordResult:
    """Small rows of one record (arrays are already in the store)."""

    record: str
    manifest: list[SignalManifestRow]
    signals: list[SignalRow] = field(default_factory=list)
    windows: list[WindowRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    beats: pd.DataFrame | None = None
    features: pd.DataFrame | None = None
    vitals: pd.DataFrame | None = None
    n_samples: int = 0
    fingerprint: str = ""  # inputs + settings + key the result was made from (resume)
    resumed: bool = False  # True when taken from a previous run's saved result
    part: str = ""  # the saved result's file (RUN_DIR/.signals_parts/...), read again to write the tables
    n_beats: int = 0  # rows of ``beats`` (kept when the frames are dropped from memory)
    n_windows: int = 0  # rows of ``windows`` (likewise)


def load_record(root: Path, job: RecordJob) -> LoadedRecord:
    """Dispatch ``job`` to its reader."""
    if job.kind == "wfdb":
        return read_wfdb(root, job.record, job.annotation_extensions)
    if job.kind == "edf":
        return read_edf(root, job.main)
    if job.kind == "table":
        return read_tabular(root, job.main)
    if job.kind == "dicom":
        return read_dicom_waveform(root, job.main)
    raise ValueError(f"unknown record kind {job.kind!r}")


def _patient_key(rec: LoadedRecord, settings: Settings) -> str:
    if rec.patient_key:
        return rec.patient_key
    if settings.patient_from == "folder" and "/" in rec.record:
        return rec.record.rsplit("/", 1)[0]
    return rec.record


def _anchors(
    rec: LoadedRecord, settings: Settings, patient_id: str, start_abs: float | None
) -> list[tuple[str, float]]:
    out = []
    pattern = re.compile(settings.anchor_events) if settings.anchor_events else None
    if pattern is not None:
        out += [(e.label, e.onset_s) for e in rec.events if pattern.search(e.label)]
    for a in settings.anchors:
        if a.record == rec.record and a.time_s is not None:
            out.append((a.label, a.time_s))
        elif a.patient_id == patient_id and a.abs_time_s is not None and start_abs is not None:
            out.append((a.label, a.abs_time_s - start_abs))
    return out


def process_record(
    job: RecordJob, root: str, settings: Settings, pseudonymizer: Pseudonymizer, run_dir: str
) -> RecordResult:
    """Process one record (see module doc); raises the reader's :class:`~medmm.errors.InputError`."""
    from medmm.signals.chunked import chunk_plan, process_chunked

    plan = None
    if job.kind == "wfdb":
        plan = chunk_plan(Path(root), job.record, job.annotation_extensions, settings)
    elif job.kind == "edf":
        plan = chunk_plan(Path(root), job.main, None, settings, kind="edf")
    rec = plan.meta if plan is not None else load_record(Path(root), job)
    key = _patient_key(rec, settings)
    patient_id = pseudonymizer.id(key, "patient")
    start: datetime | None = (
        pseudonymizer.shift_datetime(key, rec.start) if rec.start and rec.start_has_date else None
    )
    start_abs = epoch_seconds(start) if start else None
    res = RecordResult(record=rec.record, manifest=[])
    ctx = {
        "patient_id": patient_id,
        "start": start.isoformat() if start else None,
        "start_abs": start_abs,
        "format": rec.format,
        "n_segments": sum(1 for s in rec.segments if not s[2]),
        "ref": beat_reference(rec.annotations),
        "anchors": _anchors(rec, settings, patient_id, start_abs),
    }
    beats: list[pd.DataFrame] = []
    feats: list[pd.DataFrame] = []
    vitals: list[pd.DataFrame] = []
    names = unique_names([c.name for c in rec.channels] + [s.name for s in rec.series])
    if plan is not None:
        process_chunked(plan, ctx, names, settings, Path(run_dir), res, beats, feats)
    for ch, name in zip(rec.channels if plan is None else [], names, strict=False):
        if ch.fs <= settings.trend_max_fs:
            t = np.arange(ch.data.size) / ch.fs
            ok = np.isfinite(ch.data)
            vitals.append(_vitals(res.record, patient_id, name, ch.units, t[ok], ch.data[ok], start_abs))
            res.signals.append(
                SignalRow(
                    record=res.record,
                    patient_id=patient_id,
                    format=rec.format,
                    channel=name,
                    source_channel=ch.source_name,
                    kind=ch.kind,
                    role="trend",
                    units=ch.units,
                    fs=ch.fs,
                    fs_out=None,
                    n_samples=int(ch.data.size),
                    duration_s=ch.data.size / ch.fs,
                    start=ctx["start"],
                    start_abs_s=start_abs,
                    n_segments=ctx["n_segments"],
                    missing_fraction=float((~ok).mean()) if ok.size else 1.0,
                    flat_fraction=0.0,
                    saturated_fraction=0.0,
                )
            )
            continue
        process_wave(ctx, ch, name, settings, Path(run_dir), res, beats, feats)
        res.n_samples += int(ch.data.size)
    for s, sname in zip(rec.series, names[len(rec.channels) :], strict=True):
        vitals.append(_vitals(res.record, patient_id, sname, s.units, s.t_s, s.values, start_abs))
        res.signals.append(
            SignalRow(
                record=res.record,
                patient_id=patient_id,
                format=rec.format,
                channel=sname,
                source_channel=s.source_name,
                kind="vital",
                role="trend",
                units=s.units,
                fs=None,
                fs_out=None,
                n_samples=int(s.values.size),
                duration_s=float(s.t_s[-1] - s.t_s[0]) if s.t_s.size else 0.0,
                start=ctx["start"],
                start_abs_s=start_abs,
                n_segments=1,
                missing_fraction=0.0,
                flat_fraction=0.0,
                saturated_fraction=0.0,
            )
        )
        res.n_samples += int(s.values.size)
    events = [(e.label, e.source, e.onset_s, e.duration_s) for e in rec.events]
    for ann in rec.annotations[:1]:
        for smp, sym, aux in zip(ann.sample, ann.symbol, ann.aux, strict=True):
            if sym not in BEAT_SYMBOLS:
                events.append((f"{sym}{aux}".strip(), f"annotation:{ann.extension}", smp / ann.fs, 0.0))
    res.events = [
        EventRow(
            record=res.record,
            patient_id=patient_id,
            label=lbl,
            source=src,
            onset_s=float(on),
            duration_s=float(d),
            abs_time_s=_abs(ctx, on),
        )
        for lbl, src, on, d in events
    ]
    res.beats = pd.concat(beats, ignore_index=True) if beats else None
    res.features = pd.concat(feats, ignore_index=True) if feats else None
    res.vitals = pd.concat(vitals, ignore_index=True) if vitals else None
    n_ch = len(rec.channels) + len(rec.series)
    res.manifest.append(
        _mrow(
            Path(root),
            job.main,
            rec.format,
            Status.ingested,
            "; ".join(rec.notes),
            rec.record,
            patient_id,
            n_ch,
        )
    )
    for c in job.companions:
        bad = rec.bad_files.get(c)  # e.g. a truncated .atr: the record is ingested without it
        res.manifest.append(
            _mrow(
                Path(root),
                c,
                rec.format,
                Status.companion if bad is None else Status.quarantined,
                f"companion of {job.main}" if bad is None else bad,
                rec.record,
                patient_id,
                None,
            )
        )
    return res


def _vitals(
    record: str, pid: str, name: str, units: str, t: np.ndarray, v: np.ndarray, start_abs: float | None
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record": record,
            "patient_id": pid,
            "channel": name,
            "units": units,
            "time_s": t,
            "abs_time_s": (t + start_abs) if start_abs is not None else np.nan,
            "value": v,
        }
    )


def _mrow(
    root: Path, rel: str, fmt: str, status: Status, reason: str, record: str, pid: str | None, n: int | None
) -> SignalManifestRow:
    return _row(root, rel, fmt, status, reason, record, patient_id=pid, n_channels=n)
