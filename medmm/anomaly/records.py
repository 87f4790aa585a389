"""Typed rows of the anomaly stage's tables (``anomalies.parquet``, ``window_anomalies.parquet``) and
the saved model's card.

>>> row = AnomalyRow(record="106", channel="MLII", sample=370, time_s=1.03, score=2.5, flag=False,
...                  morphology_z=1.0, rhythm_z=1.5, pause_z=0.5)
>>> row.flag
False
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from medmm.records import Record

__all__ = ["SCHEMAS", "AnomalyRecordRow", "AnomalyRow", "ModelCard", "WindowAnomalyRow"]


class AnomalyRow(Record):
    """One scored beat (``anomalies.parquet``); keys match ``beats.parquet`` (record, channel, sample).

    ``score`` is higher for more anomalous beats and comparable across records (a sum of three capped
    per-record robust z-scores times a beat-quality weight, see ``docs/anomaly.md``); ``flag`` is
    ``score > threshold`` of the model.
    """

    record: str
    patient_id: str = ""
    channel: str
    sample: int  # R-peak index at the record's native sampling rate
    time_s: float
    score: float
    flag: bool
    morphology_z: float  # robust z of the embedding's Mahalanobis distance to the record's core
    rhythm_z: float  # robust z of the beat's prematurity (-log rr_prev / local RR) within the record
    pause_z: float  # robust z of the following pause (log rr_next / local RR) within the record
    quality: float = 1.0  # score weight in [0, 1]: 1 clean, < 1 noisy, 0 flat/clipped lead or kSQI 0


class AnomalyRecordRow(Record):
    """One scored record and lead (``anomaly_records.parquet``): its beats, and whether the v0.10 scorer
    found a normal and a premature ectopic beat population there and took its references from the
    normal beats (:mod:`medmm.anomaly.summary`, ``docs/anomaly.md``).
    """

    record: str
    patient_id: str  # pseudonym, as in beats.parquet
    channel: str
    n_beats: int  # scored beats of this record and lead
    n_readable: int  # ... with a quality weight > 0
    n_flagged: int  # ... flagged (score > threshold)
    two_populations: bool  # a premature ectopic population (bigeminy / trigeminy kind) was found
    ectopic_share: float | None  # share of the beats outside the normal population; null without two
    reference: Literal["normal beats", "all beats"]  # which beats the record's references came from


class WindowAnomalyRow(Record):
    """One signals window (``window_anomalies.parquet``), every row of ``windows.parquet`` exactly once.

    Key: ``path`` + ``row`` (the window's array row, as in ``windows.parquet``), i.e. ``record``,
    ``channel``, tiled or anchored (``anchor`` empty or not) and ``window``; for tiled windows
    ``record|channel|window`` is the signal item id of ``records.parquet``. Rules in
    ``docs/anomaly-windows.md`` (:mod:`medmm.anomaly.windows`).
    """

    record: str
    patient_id: str  # pseudonym, as in windows.parquet
    channel: str
    window: int  # index among the channel's windows of this kind (tiled / anchored)
    anchor: str  # "" for tiled windows, else the anchor label
    path: str  # window array, relative to the signals run directory
    row: int
    span_start_s: float  # record time of the window's first sample (padding excluded)
    span_stop_s: float  # ... and of the sample after its last: a beat is in [start, stop)
    n_beats: int  # detected beats (beats.parquet) whose R peak is in the span
    n_scored: int  # ... of them scored by the anomaly model
    n_readable: int  # ... scored with a quality weight > 0
    n_flagged: int  # ... flagged by the model (score > threshold)
    score: float | None  # largest beat score in the window; null when no beat was scored
    mean_quality: float | None  # mean quality weight of the scored beats; null when none
    signal_present: float  # share of the span holding signal: (1-missing)(1-flat)(1-saturated)
    signal_quality: float  # the signals stage's window quality index (windows.parquet quality)
    longest_gap_s: float  # longest beat-free stretch touching the window (between consecutive beats)
    status: Literal["not_scored", "anomalous", "asystole", "pause", "unreadable", "normal"]
    flag: bool  # status is anomalous, asystole or pause


class ModelCard(Record):
    """``model.json`` beside the weights: what was trained, on what, how to threshold, and hashes."""

    kind: str
    version: int
    seed: int
    n_train_beats: int
    n_train_records: int
    threshold: float
    threshold_rule: str
    config: dict[str, Any]
    weights_file: str
    weights_sha256: str
    trained_on: str  # run directory name (never a patient identifier)
    device: str


SCHEMAS: dict[str, type[BaseModel]] = {
    "anomalies": AnomalyRow,
    "anomaly_records": AnomalyRecordRow,
    "anomaly_model": ModelCard,
    "window_anomalies": WindowAnomalyRow,
}
