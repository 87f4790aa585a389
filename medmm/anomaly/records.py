"""Typed rows of the anomaly stage's tables (``anomalies.parquet``) and the saved model's card.

>>> row = AnomalyRow(record="106", channel="MLII", sample=370, time_s=1.03, score=2.5, flag=False,
...                  morphology_z=1.0, rhythm_z=1.5, pause_z=0.5)
>>> row.flag
False
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from medmm.records import Record

__all__ = ["SCHEMAS", "AnomalyRow", "ModelCard"]


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
    quality: float = 1.0  # weight in [0, 1] applied to the score: 1 clean, < 1 noisy, 0 flat/clipped lead


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


SCHEMAS: dict[str, type[BaseModel]] = {"anomalies": AnomalyRow, "anomaly_model": ModelCard}
