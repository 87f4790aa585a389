"""Header records on disk: scan tasks spill their DICOM header summaries, the driver keeps small refs.

A scan task writes the :class:`~medmm.imaging.records.DicomInstance` records of its batch to one part
file under ``RUN_DIR/.parts/headers/`` and returns an :class:`InstanceRef` per file: just what grouping
needs (path, SOP Instance UID, study, series key, kind) plus where the full record lies. Series are then
assembled one study/series group at a time from the records read back, and conversion tasks carry refs
instead of records, so the driver's memory is bounded by the largest group, not the archive.

The parts hold raw identifiers (they are the in-memory header summaries, pickled: an exact round trip).
The folder is private to the user (mode 0700) and removed with the journal's parts when the run finishes.

>>> import tempfile, pathlib
>>> from medmm.imaging.records import DicomInstance, DicomKind
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "headers"
>>> inst = DicomInstance(path="a.dcm", sop_instance_uid="1.2", series_uid="9", kind=DicomKind.image)
>>> (ref,) = spill_instances([inst], folder)
>>> ref.series_key, load_instances([ref]) == [inst]
('9', True)
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medmm.imaging.records import DicomInstance, DicomKind

__all__ = ["HEADERS_SUBDIR", "InstanceRef", "load_instances", "spill_instances"]

#: Where header parts go, relative to the run directory (inside the journal's parts folder).
HEADERS_SUBDIR = ".parts/headers"


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """What the driver keeps of one DICOM header: the grouping keys and where the full record is."""

    path: str
    sop_instance_uid: str
    study_uid: str
    series_key: str
    kind: DicomKind
    part: str  # absolute path of the part file
    index: int  # position of the record in that part


def spill_instances(instances: Sequence[DicomInstance], folder: Path) -> list[InstanceRef]:
    """Write ``instances`` to one part file in ``folder`` (atomically) and return their refs.

    The part's name is derived from the paths it holds, so a retried task overwrites its own part.

    >>> spill_instances([], Path("/nonexistent"))
    []
    """
    from medmm.imaging.series import series_key_of

    if not instances:
        return []
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256("\n".join(i.path for i in instances).encode()).hexdigest()[:24]
    part = folder / f"{digest}.pkl"
    tmp = folder / f".{digest}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(list(instances), fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, part)
    name = str(part)
    return [
        InstanceRef(i.path, i.sop_instance_uid, i.study_uid, series_key_of(i), i.kind, name, n)
        for n, i in enumerate(instances)
    ]


def load_instances(refs: Sequence[InstanceRef]) -> list[DicomInstance]:
    """The full header records of ``refs``, in the same order (each part file is read once).

    >>> load_instances([])
    []
    """
    by_part: dict[str, list[int]] = {}
    for ref in refs:
        by_part.setdefault(ref.part, []).append(ref.index)
    found: dict[tuple[str, int], DicomInstance] = {}
    for part, indices in by_part.items():
        with open(part, "rb") as fh:
            records = pickle.load(fh)  # our own private file (0600 in a 0700 folder), written by this run
        for n in indices:
            found[(part, n)] = records[n]
        del records
    return [found[(r.part, r.index)] for r in refs]
