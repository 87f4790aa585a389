"""Records of the ingest stage: the manifest row (one per input file) and the tables it writes.

>>> row = IngestManifestRow(path="ct/1.dcm", size=10, mtime_ns=0, format="dicom", status="ingested",
...                         volume_id="vol-1", kind="image")
>>> row.status.value, row.volume_id
('ingested', 'vol-1')
"""

from __future__ import annotations

from pydantic import BaseModel

from medmm.records import ManifestRow

__all__ = ["SCHEMAS", "IngestManifestRow"]


class IngestManifestRow(ManifestRow):
    """One file of an imaging archive and what ``medmm ingest`` did with it.

    ``path`` is relative to the archive root (POSIX); ``size``/``mtime_ns`` are what resumption compares;
    ``reason`` is ``"ErrorClass: file: problem. Fix: ..."`` for anything not ingested (for ``companion``
    and ``duplicate`` it names the other file). Identifiers are keyed pseudonyms, never source values.
    """

    volume_id: str | None = None
    kind: str | None = None  # DICOM object kind (image, sr, seg ...) or the sniffed format family
    modality: str | None = None
    patient_id: str | None = None
    study_id: str | None = None
    series_id: str | None = None


#: The ``volumes`` table's record lives with the imaging code (``medmm.imaging.records.SCHEMAS``).
SCHEMAS: dict[str, type[BaseModel]] = {"manifest": IngestManifestRow}
