"""medmm.signals: physiological signals (WFDB, EDF/EDF+, CSV/Parquet vitals, DICOM waveforms).

Readers -> harmonize (anti-aliased resampling, gaps, clipping/flat lines) -> align (one shifted
timeline per patient, anchor windows, tolerant joins) -> quality -> beats -> run tables. See
``docs/signals.md``. Names are imported lazily so ``medmm --help`` stays instant.

>>> from medmm.signals import resample
>>> resample.__module__
'medmm.signals.harmonize'
"""

from __future__ import annotations

from medmm._lazy import lazy_exports

__all__ = [
    "Settings",
    "normalize_channel",
    "read_dicom_waveform",
    "read_edf",
    "read_tabular",
    "read_wfdb",
    "resample",
    "run_signals",
]

_WHERE = {
    "Settings": "medmm.signals.process",
    "normalize_channel": "medmm.signals.channels",
    "read_dicom_waveform": "medmm.signals.readers",
    "read_edf": "medmm.signals.readers",
    "read_tabular": "medmm.signals.readers",
    "read_wfdb": "medmm.signals.readers",
    "resample": "medmm.signals.harmonize",
    "run_signals": "medmm.signals.pipeline",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
