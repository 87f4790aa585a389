"""From scanned files to conversion jobs and final manifest rows (driver side, small records only).

:func:`plan_jobs` settles every scanned file that needs no conversion (final rows, ``.hdr`` without
``.img``, files series assembly rejects) and returns one :class:`~medmm.ingest.tasks.ConvertJob` per
DICOM stack or NIfTI/ANALYZE file. :class:`RowBook` keeps the rows of this run (journaling each as it
is settled) and merges them with the rows of earlier runs into exactly one row per input.

>>> book = RowBook(None, {})
>>> plan_jobs([], book, {})
[]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from medmm.errors import reason_of
from medmm.ingest.discover import Entry
from medmm.ingest.errors import IngestTaskError
from medmm.ingest.headers import InstanceRef, load_instances
from medmm.ingest.journal import Journal
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.sniff import Format
from medmm.ingest.tasks import Converted, ConvertJob, Scanned
from medmm.records import Status

__all__ = ["RowBook", "plan_jobs"]

_PAIR_HEADERS = {Format.analyze, Format.nifti1_pair, Format.nifti2_pair}
#: Non-volume DICOM objects are settled this many at a time.
_CHUNK = 1000


class RowBook:
    """Rows settled in this run (journaled as they are settled) and the volumes they point to.

    Parameters
    ----------
    journal
        Where settled rows go (``None``: keep them in memory only).
    entries
        The archive's regular files by relative path.
    """

    def __init__(self, journal: Journal | None, entries: Mapping[str, Entry]) -> None:
        self.journal = journal
        self.entries = entries
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
        rows = []
        for i, path in enumerate(job.paths):
            if job.stack is None and i > 0:  # the .img of a .hdr/.img pair
                reason = f"image data of {job.paths[0]!r} (volume {vid})"
                rows.append(self.resolve(path, Status.companion, reason, volume_id=vid))
            else:
                rows.append(self.resolve(path, Status.ingested, "", volume_id=vid))
        self.settle(rows, [result.volume])

    def merge(
        self,
        entries: list[Entry],
        link_rows: list[IngestManifestRow],
        previous: Mapping[str, IngestManifestRow],
        done: set[str],
    ) -> list[IngestManifestRow]:
        """Exactly one row per input: this run's, else the earlier run's (for skipped inputs)."""
        out: dict[str, IngestManifestRow] = {r.path: r for r in link_rows}
        for e in entries:
            row = self.rows.get(e.rel)
            if row is None and e.rel in done:
                row = previous[e.rel]
            if row is None:  # safety net: every input appears, even if a code path forgot it
                err = IngestTaskError(e.rel, "no outcome was recorded for this file", "re-run `medmm ingest`")
                row = IngestManifestRow(
                    path=e.rel,
                    size=e.size,
                    mtime_ns=e.mtime_ns,
                    format="unknown",
                    status=Status.quarantined,
                    reason=reason_of(err),
                )
            out[e.rel] = row
        return [out[p] for p in sorted(out)]

    def volumes_for(
        self, rows: list[IngestManifestRow], previous: Mapping[str, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Volume records referenced by ``rows`` (this run's first, then earlier runs'), by id."""
        ids = sorted({r.volume_id for r in rows if r.volume_id and r.status is Status.ingested})
        return [self.volumes.get(v) or previous[v] for v in ids if v in self.volumes or v in previous]


def _image_jobs(files: list[Scanned], book: RowBook, img_to_hdr: Mapping[str, str]) -> list[ConvertJob]:
    from medmm.imaging.errors import MissingCompanionError

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
    return jobs


def _keys(item: Any) -> InstanceRef:
    """The grouping keys of a header record, or the ref itself (records are kept when not spilled)."""
    from medmm.imaging.series import series_key_of

    if isinstance(item, InstanceRef):
        return item
    keys = (item.path, item.sop_instance_uid, item.study_uid, series_key_of(item), item.kind)
    return InstanceRef(*keys, part="", index=0)


def _records(items: list[Any]) -> list[Any]:
    """Full header records of ``items`` (read back from the header parts for refs)."""
    refs = [i for i in items if isinstance(i, InstanceRef)]
    return load_instances(refs) if len(refs) == len(items) else items


def _partition(items: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]], list[list[str]]]:
    """Split paths as :func:`~medmm.imaging.series.assemble_series` does, from the keys alone.

    Returns the non-volume objects (non-image kinds and unsupported pixel data), the duplicates as
    (path, kept path), and the study/series groups in assembly order.
    """
    from medmm.imaging.records import DicomKind

    others: list[str] = []
    duplicates: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(items):
        k = _keys(items[path])
        if k.kind is DicomKind.unsupported_image or not k.kind.is_image:
            others.append(path)
        elif k.sop_instance_uid in seen:
            duplicates.append((path, seen[k.sop_instance_uid]))
        else:
            seen[k.sop_instance_uid] = path
            groups[(k.study_uid, k.series_key)].append(path)
    return others, duplicates, [groups[g] for g in sorted(groups)]


def _outcomes(items: Mapping[str, Any], chunks: Iterable[list[str]], book: RowBook) -> None:
    """Settle the per-file outcomes of series assembly over ``chunks`` of paths."""
    from medmm.imaging.series import assemble_series

    for chunk in chunks:
        outcomes = assemble_series(_records([items[p] for p in chunk])).outcomes
        for path, outcome in sorted(outcomes.items()):
            book.settle([book.resolve(path, Status(outcome.status), outcome.reason)])


def _dicom_jobs(dicoms: list[Scanned], book: RowBook) -> list[ConvertJob]:
    """Series assembly one study/series group at a time: only that group's records are in memory."""
    from medmm.imaging.series import assemble_series

    items = {s.row.path: s.instance for s in dicoms if s.instance is not None}
    others, duplicates, groups = _partition(items)
    _outcomes(items, (others[i : i + _CHUNK] for i in range(0, len(others), _CHUNK)), book)
    # a duplicate's reason comes from assembling it after the file that was kept
    _outcomes(items, ([kept, path] for path, kept in duplicates), book)
    placed = set(others) | {path for path, _ in duplicates}
    jobs = []
    for group in groups:
        assembly = assemble_series(_records([items[p] for p in group]))
        for path, outcome in sorted(assembly.outcomes.items()):  # none expected: the group is clean
            book.settle([book.resolve(path, Status(outcome.status), outcome.reason)])
            placed.add(path)
        for stack in assembly.stacks:
            paths = [p for p in stack.paths if p not in placed]
            placed.update(paths)
            if stack.problems:
                reason = stack.reason
                book.settle([book.resolve(p, Status.quarantined, reason) for p in paths])
                continue
            if paths:
                key = f"dicom:{stack.stack_key}:{paths[0]}"
                refs = [items[p] for p in stack.paths]
                jobs.append(ConvertJob(key=key, paths=paths, stack=stack, instances=refs))
    for path in sorted(set(items) - placed):
        err = IngestTaskError(
            path, "series assembly did not place this file", "re-run; report it if it persists"
        )
        book.settle([book.resolve(path, Status.quarantined, reason_of(err))])
    return jobs


def plan_jobs(scanned: list[Scanned], book: RowBook, img_to_hdr: Mapping[str, str]) -> list[ConvertJob]:
    """Settle what needs no conversion; return the conversion jobs (DICOM stacks, then files).

    Parameters
    ----------
    scanned
        Results of the scan tasks (final rows and pending images).
    book
        Receives the settled rows; remembers the pending ones for the jobs' results.
    img_to_hdr
        ``.img`` -> ``.hdr`` name pairs found in the archive.

    >>> plan_jobs([], RowBook(None, {}), {})
    []
    """
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
    dicoms = [s for s in pending if s.instance is not None]
    images = [s for s in files if s.instance is None]
    jobs = _dicom_jobs(dicoms, book) if dicoms else []
    return jobs + _image_jobs(images, book, img_to_hdr)
