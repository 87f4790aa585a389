"""Typed rows of the signals stage's tables; ``SCHEMAS`` feeds ``schemas/*.schema.json``.

Identifiers are pseudonyms (``patient_id``); ``record`` is the input path relative to the input root
without extension; times are patient-date-shifted (``start`` ISO text, ``*_abs_s`` seconds since 1970
of the shifted time, so every record of a patient sits on one timeline).

>>> row = SignalManifestRow(path="100.dat", format="wfdb", status="companion", reason="of 100.hea")
>>> row.status.value
'companion'
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from medmm.records import ManifestRow, Record

__all__ = [
    "SCHEMAS",
    "BeatRow",
    "EventRow",
    "FeatureRow",
    "SignalManifestRow",
    "SignalRow",
    "VitalRow",
    "WindowRow",
    "WindowVitalRow",
]


class SignalManifestRow(ManifestRow):
    """One input file of the signals stage (``manifest_signals.parquet``)."""

    record: str = ""  # the record this file belongs to (path without extension)
    patient_id: str | None = None
    n_channels: int | None = None


class SignalRow(Record):
    """One channel of one record (``signals.parquet``) with its quality summary."""

    record: str
    patient_id: str
    format: str
    channel: str  # canonical name
    source_channel: str  # label in the file
    kind: str  # ecg, pressure, pleth, resp, vital, eeg, other
    role: str  # "wave" (resampled, windowed) or "trend" (<= 1 Hz or irregular: vitals table)
    units: str
    fs: float | None  # native rate; None for irregular series
    fs_out: float | None  # rate after resampling (waves)
    n_samples: int
    duration_s: float
    start: str | None  # shifted ISO date-time; None when the header has no date
    start_abs_s: float | None
    n_segments: int
    missing_fraction: float
    flat_fraction: float
    saturated_fraction: float
    n_windows: int = 0
    mean_sqi: float | None = None
    good_window_fraction: float | None = None
    n_beats: int | None = None
    mean_hr_bpm: float | None = None
    sdnn_ms: float | None = None
    rmssd_ms: float | None = None
    ref_annotation: str = ""  # extension of the reference annotations carried alongside ("atr" ...)
    ref_match_fraction: float | None = None  # detected beats with a reference beat within 150 ms
    ref_sensitivity: float | None = None  # reference beats matched one-to-one by a detection (150 ms)
    ref_ppv: float | None = None  # detections matched one-to-one by a reference beat


class BeatRow(Record):
    """One detected R peak (``beats.parquet``); ``sample`` is at the record's native rate."""

    record: str
    patient_id: str
    channel: str
    sample: int
    time_s: float
    abs_time_s: float | None
    rr_prev_s: float | None
    rr_next_s: float | None
    hr_bpm: float | None
    ref_symbol: str  # nearest reference beat symbol within 150 ms, "" when none / no annotations


class FeatureRow(BaseModel):
    """Per-beat features (``features.parquet``): keys plus the beats module's numeric feature columns."""

    model_config = ConfigDict(extra="allow")

    record: str
    channel: str
    sample: int


class WindowRow(Record):
    """One window (``windows.parquet``); its samples are row ``row`` of the ``.npy`` array at ``path``."""

    record: str
    patient_id: str
    channel: str
    window: int  # index among the channel's windows of this kind
    path: str  # relative to the run directory
    row: int
    fs: float
    start_sample: int  # at ``fs``, clipped to the signal
    stop_sample: int
    pad_before: int  # NaN samples before start_sample (anchored windows at the signal edge)
    pad_after: int
    start_s: float  # seconds from the record start of the window's first (possibly padded) sample
    start_abs_s: float | None
    anchor: str  # "" for tiled windows, else the anchor label (alarm, annotation, user anchor)
    anchor_s: float | None
    missing: float
    flat: float
    saturated: float
    wander: float  # share of power below the kind's band (baseline wander)
    noise: float  # share of power above it (muscle, mains)
    quality: float  # signal quality index in [0, 1]


class VitalRow(Record):
    """One value of an irregular / low-rate series (``vitals.parquet``)."""

    record: str
    patient_id: str
    channel: str
    units: str
    time_s: float
    abs_time_s: float | None
    value: float


class WindowVitalRow(Record):
    """The nearest value of a vital (same patient, within tolerance) at a window's centre.

    ``window_vitals.parquet``: vitals from any record of the patient (a numerics record, a CSV) are
    joined with ``merge_asof`` on the shifted absolute time, so waves and trends meet on one timeline.
    """

    record: str
    patient_id: str
    channel: str  # the window's channel
    path: str  # the window's array (as in windows.parquet)
    row: int
    vital: str
    value: float
    lag_s: float  # vital time minus window centre time


class EventRow(Record):
    """A timed event (EDF+ annotation, alarm, non-beat annotation) (``events.parquet``)."""

    record: str
    patient_id: str
    label: str
    source: str
    onset_s: float
    duration_s: float
    abs_time_s: float | None


SCHEMAS: dict[str, type[BaseModel]] = {
    "manifest_signals": SignalManifestRow,
    "signals": SignalRow,
    "beats": BeatRow,
    "features": FeatureRow,
    "windows": WindowRow,
    "vitals": VitalRow,
    "events": EventRow,
    "window_vitals": WindowVitalRow,
}
