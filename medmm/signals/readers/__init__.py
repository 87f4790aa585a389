"""Signal readers: WFDB, EDF/EDF+, CSV/Parquet vitals, DICOM waveforms -> :class:`LoadedRecord`."""

from medmm.signals.readers._base import Annotations, Channel, Event, IrregularSeries, LoadedRecord
from medmm.signals.readers.dicom_waveform import read_dicom_waveform
from medmm.signals.readers.edf import read_edf
from medmm.signals.readers.tabular import read_tabular
from medmm.signals.readers.wfdb import read_wfdb

__all__ = [
    "Annotations",
    "Channel",
    "Event",
    "IrregularSeries",
    "LoadedRecord",
    "read_dicom_waveform",
    "read_edf",
    "read_tabular",
    "read_wfdb",
]
