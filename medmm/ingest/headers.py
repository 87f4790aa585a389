"""Header records on disk, partitioned by study/series group: what the driver never holds.

A scan task writes the :class:`~medmm.imaging.records.DicomInstance` records of its batch's DICOM
images, each with its provisional manifest row, to one file per study/series group:
``RUN_DIR/.parts/headers/<run>/<group>/<batch>.pkl``. A group task later reads all of its group's files
(:func:`read_group`), so series are assembled from the records without the driver ever seeing them.
``<group>`` is a digest of the study UID and series key (:func:`group_id`), never a raw UID.

The files hold raw identifiers (they are the in-memory header summaries, pickled: an exact round trip).
The folder is private to the user (mode 0700, files 0600) and removed when the run ends.

>>> import tempfile, pathlib
>>> from medmm.imaging.records import DicomInstance, DicomKind
>>> from medmm.ingest.records import IngestManifestRow
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "headers"
>>> inst = DicomInstance(path="a.dcm", sop_instance_uid="1.2", series_uid="9", kind=DicomKind.image)
>>> row = IngestManifestRow(path="a.dcm", format="dicom", status="quarantined")
>>> gid = group_id("", "9")
>>> write_group_part(folder, gid, "batch1", [(inst, row)])
>>> read_group(folder, gid) == [(inst, row)]
True
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medmm.imaging.records import DicomInstance
    from medmm.ingest.records import IngestManifestRow

__all__ = ["HEADERS_SUBDIR", "drop_batch", "group_id", "headers_dir", "read_group", "write_group_part"]

#: Where header parts go, relative to the run directory (inside the journal's parts folder).
HEADERS_SUBDIR = ".parts/headers"

Pair = tuple["DicomInstance", "IngestManifestRow"]


def headers_dir(run_dir: Path | str, seq: int) -> Path:
    """The header folder of one run (by its journal sequence number): a task of a killed run that is
    still finishing never writes into the folder of the run that follows it.

    >>> headers_dir("/r", 3).as_posix()
    '/r/.parts/headers/000003'
    """
    return Path(run_dir) / HEADERS_SUBDIR / f"{seq:06d}"


def group_id(study_uid: str, series_key: str) -> str:
    """File-name-safe id of a study/series group (a digest: the raw UIDs never name a file).

    >>> len(group_id("1.2", "3.4")), group_id("1.2", "3.4") == group_id("1.2", "3.4")
    (24, True)
    """
    return hashlib.sha256(f"{study_uid}\0{series_key}".encode()).hexdigest()[:24]


def write_group_part(headers_dir: Path, gid: str, batch: str, pairs: Sequence[Pair]) -> None:
    """Write one batch's records of one group (atomically; a retried batch overwrites its own file)."""
    folder = headers_dir / gid
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for parent in (headers_dir, headers_dir.parent):  # created by mkdir(parents=True) with the umask
        os.chmod(parent, 0o700)
    tmp = folder / f".{batch}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(list(pairs), fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, folder / f"{batch}.pkl")


def read_group(headers_dir: Path, gid: str) -> list[Pair]:
    """Header records and provisional rows of one group, from all its batches, sorted by path.

    >>> read_group(Path("/nonexistent"), "0" * 24)
    []
    """
    pairs: list[Pair] = []
    for part in sorted((headers_dir / gid).glob("*.pkl")):
        with part.open("rb") as fh:
            pairs.extend(pickle.load(fh))  # our own private file (0600 in a 0700 folder)
    return sorted(pairs, key=lambda p: p[0].path)


def drop_batch(headers_dir: Path, batch: str) -> None:
    """Remove the group files a failed scan batch may have left (its files are quarantined instead).

    >>> drop_batch(Path("/nonexistent"), "batch1")
    """
    for part in headers_dir.glob(f"*/{batch}.pkl"):
        part.unlink(missing_ok=True)
