"""What every reader returns: one record's channels in physical units, annotations and events.

Raw identifiers (``patient_key``) and raw start times stay inside the process; the pipeline
pseudonymizes them before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from medmm.signals.channels import normalize_channel
from medmm.signals.errors import EmptyRecordError, InvalidSamplingRateError

__all__ = ["Annotations", "Channel", "Event", "IrregularSeries", "LoadedRecord", "check_fs"]


@dataclass
class Channel:
    """One uniformly sampled channel: physical values (NaN marks a gap) at ``fs`` Hz."""

    source_name: str
    units: str
    fs: float
    data: NDArray[np.float64]
    adc_limits: tuple[float, float] | None = None  # physical values at the ADC's min / max code

    @property
    def name(self) -> str:
        """Canonical channel name (see :mod:`medmm.signals.channels`)."""
        return normalize_channel(self.source_name).name

    @property
    def kind(self) -> str:
        """Signal kind: ecg, pressure, pleth, resp, vital, eeg, other ..."""
        return normalize_channel(self.source_name).kind


@dataclass
class IrregularSeries:
    """An irregularly sampled series (vitals): seconds from the record start and values."""

    source_name: str
    units: str
    t_s: NDArray[np.float64]
    values: NDArray[np.float64]

    @property
    def name(self) -> str:
        return normalize_channel(self.source_name).name


@dataclass
class Annotations:
    """Reference annotations of a record (WFDB ``.atr`` ...): sample indices at ``fs``."""

    extension: str
    fs: float
    sample: NDArray[np.int64]
    symbol: list[str]
    aux: list[str]


@dataclass
class Event:
    """A timed event (EDF+ annotation, alarm): onset and duration in seconds from the record start."""

    onset_s: float
    duration_s: float
    label: str
    source: str  # "edf+", "alarm", "annotation"


@dataclass
class LoadedRecord:
    """One record as read: channels, irregular series, annotations, events and segment layout."""

    record: str  # path relative to the input root, POSIX, without extension
    format: str  # wfdb, wfdb-multisegment, edf, csv, parquet, dicom-waveform
    patient_key: str  # raw: only to pseudonymize, never written
    start: datetime | None  # raw start date-time from the header (None when the header has none)
    channels: list[Channel] = field(default_factory=list)
    series: list[IrregularSeries] = field(default_factory=list)
    annotations: list[Annotations] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    segments: list[tuple[float, float, bool]] = field(default_factory=list)  # (start_s, dur_s, is_gap)
    start_has_date: bool = True
    n_samples: int = 0  # header length when channels are left empty to be read span by span
    bad_files: dict[str, str] = field(default_factory=dict)  # companion file -> reason it is quarantined
    notes: list[str] = field(default_factory=list)  # what was left out of an ingested input (manifest reason)

    def check_not_empty(self, path: str) -> None:
        """Raise :class:`EmptyRecordError` when nothing usable was read."""
        if not self.channels and not self.series and not self.events:
            raise EmptyRecordError(path, "the record has no samples", "re-export the record with its data")
        if self.channels and all(c.data.size == 0 for c in self.channels) and not self.events:
            raise EmptyRecordError(
                path, "the record has zero samples (length 0)", "re-export the record with its samples"
            )
        if (
            self.channels
            and all(not np.isfinite(c.data).any() for c in self.channels)
            and not self.series
            and not self.events
        ):
            raise EmptyRecordError(
                path, "every sample of every channel is missing (NaN)", "check the acquisition export"
            )


def check_fs(path: str, fs: float) -> float:
    """``fs`` as a float, or :class:`InvalidSamplingRateError` when it is 0, negative or NaN.

    >>> check_fs("a.hea", 360)
    360.0
    """
    value = float(fs) if fs is not None else float("nan")
    if not np.isfinite(value) or value <= 0:
        raise InvalidSamplingRateError(
            path, f"sampling frequency is {fs!r}", "fix the sampling frequency in the header (a positive Hz)"
        )
    return value
