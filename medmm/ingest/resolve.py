"""NIfTI/ANALYZE files: from scanned rows to conversion jobs and settled rows (driver side, few files).

DICOM images never come here: scan tasks partition their header records by study/series group and one
group task assembles and converts each group (:mod:`medmm.ingest.groups`). :func:`plan_jobs` pairs
``.hdr``/``.img`` files, settles a ``.hdr`` without its ``.img`` and the final rows of ``.img`` files it
does not claim, and returns one :class:`~medmm.ingest.tasks.ConvertJob` per image file.
:class:`RowBook` keeps the pending rows of those files and settles them (journaling each) as their
conversions finish.

>>> book = RowBook(None)
>>> plan_jobs([], book, {})
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from medmm.errors import reason_of
from medmm.ingest.image_ids import AmbiguousIdsError, IdTable
from medmm.ingest.journal import Journal
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.sniff import Format
from medmm.ingest.tasks import Converted, ConvertJob, Scanned
from medmm.records import Status

__all__ = ["RowBook", "plan_jobs"]

_PAIR_HEADERS = {Format.analyze, Format.nifti1_pair, Format.nifti2_pair}


class RowBook:
    """Pending rows of this run's image files, settled (and journaled) as their conversions finish,
    and the volume records of this run.

    Parameters
    ----------
    journal
        Where settled rows go (``None``: keep them in memory only).
    """

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self.rows: dict[str, IngestManifestRow] = {}
        self.pending: dict[str, IngestManifestRow] = {}
        self.volumes: dict[str, dict[str, Any]] = {}

    def settle(self, rows: Iterable[IngestManifestRow], volumes: Iterable[Any] = ()) -> None:
        """Record final rows (and volume records) and journal them."""
        rows, volumes = list(rows), list(volumes)
        for row in rows:
            self.rows[row.path] = row
            self.pending.pop(row.path, None)  # settled: its provisional row is no longer needed
        for vol in volumes:
            self.volumes[vol.volume_id] = vol.model_dump(mode="json")
        if self.journal is not None:
            self.journal.add(rows, volumes)

    def resolve(self, path: str, status: Status, reason: str = "", **update: Any) -> IngestManifestRow:
        """The pending row of ``path`` with its final status (not yet settled)."""
        return self.pending[path].model_copy(update={"status": status, "reason": reason, **update})

    def converted(self, job: ConvertJob, result: Converted) -> None:
        """Settle the rows of a finished conversion job."""
        if result.volume is None:
            rows = [self.resolve(p, Status.quarantined, result.reason) for p in job.paths]
            self.settle(rows)
            return
        vid = result.volume.volume_id
        vol = result.volume
        # ids a user gave for an image file (medmm.ingest.image_ids) reach its manifest row as well
        given = {"patient_id": vol.patient_id, "study_id": vol.study_id, "modality": vol.modality or None}
        ids = {k: v for k, v in given.items() if v} if job.stack is None else {}
        rows = []
        for i, path in enumerate(job.paths):
            if job.stack is None and i > 0:  # the .img of a .hdr/.img pair
                reason = f"image data of {job.paths[0]!r} (volume {vid})"
                rows.append(self.resolve(path, Status.companion, reason, volume_id=vid))
            else:
                rows.append(self.resolve(path, Status.ingested, "", volume_id=vid, **ids))
        self.settle(rows, [result.volume])


def _with_ids(job: ConvertJob, book: RowBook, ids: IdTable | None) -> ConvertJob | None:
    """``job`` with its file's row of the ids table; ``None`` (its rows settled as quarantined) when
    several rows with different ids match the file."""
    if ids is None:
        return job
    try:
        job.ids = ids.lookup(job.rel)
    except AmbiguousIdsError as err:
        book.settle([book.resolve(p, Status.quarantined, reason_of(err)) for p in job.paths])
        return None
    return job


def _image_jobs(
    files: list[Scanned], book: RowBook, img_to_hdr: Mapping[str, str], ids: IdTable | None = None
) -> list[ConvertJob]:
    hdr_to_img = {h: i for i, h in img_to_hdr.items()}
    by_path = {s.row.path: s for s in files}
    jobs, claimed = [], set()
    for s in files:
        rel, fmt = s.row.path, s.row.format
        base = Format(fmt.removesuffix(".gz"))
        if base not in _PAIR_HEADERS:
            continue
        img = hdr_to_img.get(rel)
        if img is None:
            # imported here: medmm.imaging's package imports its whole converter (~40 ms of CPU), which
            # the driver does not need, between the scan and the conversion, for a DICOM-only archive
            from medmm.imaging.errors import MissingCompanionError

            err = MissingCompanionError(
                rel, f"{base.value} header without its .img data file", "copy the matching .img next to it"
            )
            book.settle([book.resolve(rel, Status.quarantined, reason_of(err))])
            continue
        claimed.add(img)
        img_fmt = Format.image_data.value + (".gz" if img.lower().endswith(".gz") else "")
        book.pending[img] = by_path[img].row.model_copy(update={"kind": "image-data", "format": img_fmt})
        jobs.append(ConvertJob(key=f"file:{rel}", paths=[rel, img], rel=rel, fmt=fmt))
    for s in files:
        rel = s.row.path
        if rel in claimed or Format(s.row.format.removesuffix(".gz")) in _PAIR_HEADERS:
            continue
        jobs.append(ConvertJob(key=f"file:{rel}", paths=[rel], rel=rel, fmt=s.row.format))
    return [j for j in (_with_ids(job, book, ids) for job in jobs) if j is not None]


def plan_jobs(
    scanned: list[Scanned], book: RowBook, img_to_hdr: Mapping[str, str], ids: IdTable | None = None
) -> list[ConvertJob]:
    """Settle what needs no conversion; return one conversion job per NIfTI/ANALYZE file.

    Parameters
    ----------
    scanned
        Rows of image files and of ``.img`` files with a ``.hdr`` beside them (no DICOM images).
    book
        Receives the settled rows; remembers the pending ones for the jobs' results.
    img_to_hdr
        ``.img`` -> ``.hdr`` name pairs found in the archive.
    ids
        The user's ids table for image files (``medmm ingest --ids``): each job carries its file's row;
        a file that several different rows match is quarantined (``AmbiguousIdsError``).

    >>> plan_jobs([], RowBook(None), {})
    []
    """
    if any(s.instance is not None for s in scanned):
        raise ValueError("plan_jobs takes image files only; DICOM images are converted by group tasks")
    pair_headers = {
        s.row.path for s in scanned if s.pending and Format(s.row.format.removesuffix(".gz")) in _PAIR_HEADERS
    }
    claimed_imgs = {
        img_to_hdr_inverse for img_to_hdr_inverse, hdr in img_to_hdr.items() if hdr in pair_headers
    }
    final = [s.row for s in scanned if not s.pending and s.row.path not in claimed_imgs]
    book.settle(final)
    pending = [s for s in scanned if s.pending]
    for s in pending:
        book.pending[s.row.path] = s.row
    files = pending + [s for s in scanned if not s.pending and s.row.path in claimed_imgs]
    return _image_jobs(files, book, img_to_hdr, ids)
