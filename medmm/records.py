"""Typed records shared by every stage (pydantic); JSON Schemas in ``schemas/`` are generated from them.

Stage-specific records live in ``medmm/<stage>/records.py`` and subclass :class:`Record`. Every record
module exposes ``SCHEMAS``: a mapping from schema name (the table name, e.g. ``"manifest"``) to model,
collected by :mod:`medmm.schemas`.

>>> row = ManifestRow(path="ct/1.dcm", size=10, mtime_ns=0, format="dicom", status=Status.ingested)
>>> row.status.value
'ingested'
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["SCHEMAS", "ManifestRow", "Record", "Status"]


class Record(BaseModel):
    """Base of all records: plain data, strict about unknown fields, picklable."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)


class Status(StrEnum):
    """What happened to one input of a run; one vocabulary for all stages."""

    ingested = "ingested"  # read and turned into output(s)
    quarantined = "quarantined"  # unusable; ``reason`` says why and how to fix
    non_image = "non_image"  # a valid object that is not an image (SR, SEG, RT, waveform, DICOMDIR ...)
    duplicate = "duplicate"  # same content/instance as another input; ``reason`` names the kept one
    companion = "companion"  # part of another input (the .img of a .hdr/.img pair); ``reason`` names it


class ManifestRow(Record):
    """One input of a run. Stages subclass it to add their own columns (e.g. ``volume_id``).

    ``path`` is relative to the input root with POSIX separators; ``reason`` is empty when the input
    was used as is.
    """

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    format: str
    status: Status
    reason: str = ""


SCHEMAS: dict[str, type[BaseModel]] = {}
