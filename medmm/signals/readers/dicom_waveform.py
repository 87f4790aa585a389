"""DICOM waveform objects (12-lead ECG, haemodynamic, general ECG) via ``pydicom``'s ``waveform_array``.

Each multiplex group is a time base; groups labelled as median / representative beats are templates,
not time series, and are skipped. Values come out of ``waveform_array`` already multiplied by channel
sensitivity and correction factor, in the channel's sensitivity units. PatientID is the patient key.
The imaging ingest stage routes waveform SOP classes here with :func:`read_dicom_waveform`.

>>> from pydicom.data import get_testdata_file
>>> p = Path(get_testdata_file("waveform_ecg.dcm"))
>>> rec = read_dicom_waveform(p.parent, p.name)
>>> [c.name for c in rec.channels][:3], rec.channels[0].fs, rec.channels[0].units
(['I', 'II', 'III'], 1000.0, 'uV')
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from medmm.signals.errors import HeaderError, NotASignalError, TruncatedSignalError
from medmm.signals.readers._base import Channel, LoadedRecord, check_fs

__all__ = ["read_dicom_waveform"]

_TEMPLATE_LABELS = ("MEDIAN", "REPRESENTATIVE", "AVERAGE")


def _start(ds) -> datetime | None:
    text = str(ds.get("AcquisitionDateTime", "") or "")
    if not text:
        d, t = str(ds.get("ContentDate", "") or ""), str(ds.get("ContentTime", "") or "")
        if not d:
            d, t = str(ds.get("StudyDate", "") or ""), str(ds.get("StudyTime", "") or "")
        text = d + t
    text = text.split("+")[0].split("-")[0] if len(text) > 8 else text
    for fmt, n in (("%Y%m%d%H%M%S.%f", 21), ("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8)):
        try:
            return datetime.strptime(text[:n] if "." not in fmt else text, fmt)
        except ValueError:
            continue
    return None


def _sampling_frequency(group) -> float:
    """The group's SamplingFrequency in Hz; 0.0 when absent or not a number (check_fs then refuses the
    file without quoting the value, which pydicom's conversion error would)."""
    try:
        return float(group.get("SamplingFrequency", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def _label(ch) -> str:
    src = ch.get("ChannelSourceSequence")
    if src:
        return str(src[0].get("CodeMeaning", "") or src[0].get("CodeValue", ""))
    return str(ch.get("ChannelLabel", "") or "")


def read_dicom_waveform(root: Path, rel: str) -> LoadedRecord:
    """Read the waveform DICOM ``root/rel`` into a :class:`LoadedRecord` (see module doc)."""
    import pydicom

    from medmm.imaging.errors import library_message  # hides header values quoted by pydicom

    path = Path(root) / rel
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:
        raise HeaderError(
            rel, f"unreadable DICOM ({type(exc).__name__}: {library_message(exc)})", "re-export the file"
        ) from exc
    if "WaveformSequence" not in ds:
        raise NotASignalError(
            rel,
            "DICOM object without a WaveformSequence (not a waveform)",
            "ingest it with the imaging stage",
        )
    channels: list[Channel] = []
    for gi, group in enumerate(ds.WaveformSequence):
        label = str(group.get("MultiplexGroupLabel", "") or "").upper()
        if any(t in label for t in _TEMPLATE_LABELS):
            continue
        fs = check_fs(rel, _sampling_frequency(group))
        try:
            arr = np.asarray(ds.waveform_array(gi), dtype=np.float64)
        except Exception as exc:
            raise TruncatedSignalError(
                rel,
                f"waveform group {gi} cannot be decoded ({type(exc).__name__}: {library_message(exc)})",
                "re-export the ECG",
            ) from exc
        for ci, ch in enumerate(group.ChannelDefinitionSequence):
            units_seq = ch.get("ChannelSensitivityUnitsSequence")
            units = str(units_seq[0].get("CodeValue", "")) if units_seq else ""
            channels.append(Channel(_label(ch) or f"ch{ci}", units, fs, np.ascontiguousarray(arr[:, ci])))
    start = _start(ds)
    rec = LoadedRecord(
        record=rel.rsplit(".", 1)[0] if rel.lower().endswith(".dcm") else rel,
        format="dicom-waveform",
        patient_key=str(ds.get("PatientID", "") or "").strip(),
        start=start,
        channels=channels,
        segments=[(0.0, max((c.data.size / c.fs for c in channels), default=0.0), False)],
    )
    rec.check_not_empty(rel)
    return rec
