"""Private helpers turning pydicom values into plain Python (str/int/float/lists), tolerantly.

Header values in real archives are often empty, multi-valued where single is expected, or malformed
decimal strings; these helpers return ``None``/``""`` instead of raising so a slightly odd header still
yields a usable :class:`~medmm.imaging.records.DicomInstance`.

>>> as_floats(["1", "0", "0"], 3)
[1.0, 0.0, 0.0]
>>> as_int("") is None
True
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "as_float",
    "as_floats",
    "as_int",
    "as_str",
    "datetime_and_precision",
    "datetime_of",
    "multiframe_geometry",
    "patient_key_of",
]


def as_str(value: Any) -> str:
    """String of a DICOM value (multi-values joined by backslash), ``""`` for missing."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def as_float(value: Any) -> float | None:
    """First number of a value, or ``None`` when missing / not a finite number."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def as_int(value: Any) -> int | None:
    """Integer of a value (first of a multi-value), ``None`` when missing or malformed."""
    number = as_float(value)
    return None if number is None else round(number)


def as_floats(value: Any, n: int) -> list[float] | None:
    """Exactly ``n`` finite floats, else ``None``."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def _iso(date: str, time: str) -> tuple[str, str] | None:
    """``(ISO date-time, precision)`` of a DICOM DA / TM pair; precision ``"date"`` (midnight written)
    when the time of day is absent or unreadable; ``None`` when the date is not ``YYYYMMDD``."""
    date = date.strip()
    if len(date) != 8 or not date.isdigit():
        return None
    out = f"{date[:4]}-{date[4:6]}-{date[6:8]}"
    time = time.strip().split(".")[0]
    if len(time) >= 4 and time[:4].isdigit():
        secs = time[4:6] if len(time) >= 6 and time[4:6].isdigit() else "00"
        return f"{out}T{time[:2]}:{time[2:4]}:{secs}", "datetime"
    return f"{out}T00:00:00", "date"


def datetime_and_precision(ds: Any) -> tuple[str | None, str | None]:
    """Raw ISO study datetime (Study, then Series, Acquisition, Content date/time) and its precision:
    ``"datetime"`` when that date comes with a time of day, ``"date"`` when not (the datetime is then
    midnight, which is no time: ``medmm align`` compares it as a whole day); ``(None, None)`` if absent.

    >>> import pydicom
    >>> ds = pydicom.Dataset()
    >>> ds.StudyDate = "20200301"
    >>> datetime_and_precision(ds)
    ('2020-03-01T00:00:00', 'date')
    >>> ds.StudyTime = "101500"
    >>> datetime_and_precision(ds)
    ('2020-03-01T10:15:00', 'datetime')
    """
    for date_kw, time_kw in (
        ("StudyDate", "StudyTime"),
        ("SeriesDate", "SeriesTime"),
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
    ):
        out = _iso(as_str(ds.get(date_kw)), as_str(ds.get(time_kw)))
        if out:
            return out
    return None, None


def datetime_of(ds: Any) -> str | None:
    """Raw ISO study datetime (Study, then Series, Acquisition, Content date/time); None if absent."""
    return datetime_and_precision(ds)[0]


def patient_key_of(ds: Any) -> str:
    """Raw patient key: PatientID, else PatientName+BirthDate, else the study UID (for pseudonyms only)."""
    pid = as_str(ds.get("PatientID"))
    if pid:
        return pid
    name = as_str(ds.get("PatientName"))
    if name:
        return f"{name}|{as_str(ds.get('PatientBirthDate'))}"
    study = as_str(ds.get("StudyInstanceUID"))
    return f"study:{study}" if study else ""


def _first(seq_owner: Any, keyword: str) -> Any:
    seq = seq_owner.get(keyword) if seq_owner is not None else None
    return seq[0] if seq else None


def multiframe_geometry(ds: Any) -> dict[str, Any]:
    """Geometry of an enhanced multi-frame object from its functional group sequences.

    Returns a dict with any of ``image_orientation``, ``pixel_spacing``, ``slice_thickness``,
    ``image_position`` (first frame), ``frame_positions`` (every frame) and ``rescale_slope`` /
    ``rescale_intercept``; keys are absent when the object does not carry them (classic multi-frame
    objects keep them at the top level).
    """
    out: dict[str, Any] = {}
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []

    def lookup(group_kw: str, attr: str, frame: Any = None) -> Any:
        for owner in (frame, shared):
            item = _first(owner, group_kw)
            if item is not None and attr in item:
                return item.get(attr)
        return None

    first = per_frame[0] if per_frame else None
    iop = as_floats(lookup("PlaneOrientationSequence", "ImageOrientationPatient", first), 6)
    if iop:
        out["image_orientation"] = iop
    spacing = as_floats(lookup("PixelMeasuresSequence", "PixelSpacing", first), 2)
    if spacing:
        out["pixel_spacing"] = spacing
    thick = as_float(lookup("PixelMeasuresSequence", "SliceThickness", first))
    if thick is not None:
        out["slice_thickness"] = thick
    slope = as_float(lookup("PixelValueTransformationSequence", "RescaleSlope", first))
    if slope is not None:
        out["rescale_slope"] = slope
        out["rescale_intercept"] = as_float(
            lookup("PixelValueTransformationSequence", "RescaleIntercept", first)
        )
    positions = [as_floats(lookup("PlanePositionSequence", "ImagePositionPatient", f), 3) for f in per_frame]
    if positions and all(p is not None for p in positions):
        out["frame_positions"] = positions
        out["image_position"] = positions[0]
    return out
