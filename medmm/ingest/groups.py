"""Scan and convert without the driver holding anything per file: results go to part files.

A scan task (:func:`scan_to_parts`) journals the final manifest rows of its batch itself and writes
the header records of its DICOM images, with their provisional rows, partitioned by study/series group
(``RUN_DIR/.parts/headers/<run>/<group>/<batch>.pkl``). It returns a :class:`ScanSummary`: the groups it
touched with their file counts, the series pseudonyms it saw, and the rows of NIfTI/ANALYZE files (few:
each is its own volume). :func:`convert_group` then reads one study/series group's parts, assembles its
stacks, writes their volumes and journals the settled rows (and volume records); it returns the
written volumes' ids only, so that the driver unpickles no ``VolumeRecord`` (whose module imports the
whole imaging package: ~40 ms of the driver's CPU). Small
groups go to the workers a few at a time (:func:`bundle_groups`, :func:`convert_groups`): a Dask task
costs a few milliseconds of CPU, as much as converting ~10-20 slices. The manifest is merged from the
journal parts at the end (:mod:`.merge`).

>>> scan_to_parts([], "/nonexistent", b"k" * 32, "/nonexistent", 1).groups
{}
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmm.errors import InputError, reason_of
from medmm.ingest.discover import Entry, PackedEntries, unpack_entries
from medmm.ingest.errors import IngestTaskError
from medmm.ingest.headers import group_id, headers_dir, read_group, write_group_part
from medmm.ingest.journal import write_part
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.tasks import (
    Converted,
    ConvertJob,
    Scanned,
    _as_pseudonymizer,
    _maybe_die_for_test,
    convert_job,
    quiet_readers,
    scan_batch,
    unexpected,
)
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status

if TYPE_CHECKING:
    from medmm.imaging.records import DicomInstance, VolumeRecord

__all__ = [
    "GroupDone",
    "ScanSummary",
    "batch_digest",
    "bundle_groups",
    "convert_group",
    "convert_groups",
    "convert_item",
    "scan_item",
    "scan_to_parts",
]


@dataclass
class ScanSummary:
    """What a scan task returns: O(series) keys and counts, never one record per DICOM file."""

    groups: dict[str, int] = field(default_factory=dict)  # group id -> files written to its part
    series_ids: set[str] = field(default_factory=set)  # series pseudonyms of the batch's rows
    images: list[Scanned] = field(default_factory=list)  # NIfTI/ANALYZE rows and .img companions
    counts: dict[str, int] = field(default_factory=dict)  # final rows journaled, by status


@dataclass
class GroupDone:
    """What a group task returns: the ids of the volumes it wrote (their records and the rows are in
    its journal part)."""

    gid: str
    volume_ids: list[str] = field(default_factory=list)
    n_rows: int = 0


def batch_digest(entries: Iterable[Entry]) -> str:
    """Name of a scan batch's part files (a retried task overwrites its own parts).

    >>> batch_digest([Entry("a", 1, 0)]) == batch_digest([Entry("a", 1, 0)])
    True
    """
    return hashlib.sha256("\n".join(e.rel for e in entries).encode()).hexdigest()[:24]


def _with(row: IngestManifestRow, status: Status, reason: str, **extra: Any) -> IngestManifestRow:
    return row.model_copy(update={"status": status, "reason": reason, **extra})


def _settle(pairs: list[tuple[Any, IngestManifestRow]], outcomes: dict[str, Any]) -> list[IngestManifestRow]:
    rows = {inst.path: row for inst, row in pairs}
    return [
        rows[path].model_copy(update={"status": Status(o.status), "reason": o.reason})
        for path, o in sorted(outcomes.items())
    ]


def scan_to_parts(
    entries: list[Entry],
    archive_root: str,
    pseudonymizer: Pseudonymizer | bytes,
    run_dir: str,
    seq: int,
    companions: Collection[str] = (),
) -> ScanSummary:
    """Scan a batch (:func:`~medmm.ingest.tasks.scan_batch`) and write its results to part files.

    Parameters
    ----------
    entries
        Files to scan.
    archive_root, run_dir
        The archive; the run directory whose ``.parts/`` receive the rows and header records.
    pseudonymizer
        The site key (or a ready pseudonymizer).
    seq
        Journal sequence number of this run's worker parts (earlier runs' parts sort before it).
    companions
        ``.img`` files that have a ``.hdr`` beside them: their rows go back to the driver, which pairs them.

    Returns
    -------
    ScanSummary
        Groups touched, series pseudonyms, the rows of image files, counts of journaled rows.

    >>> scan_to_parts([], "/nonexistent", b"k" * 32, "/nonexistent", 1).groups
    {}
    """
    from medmm.imaging.records import DicomKind
    from medmm.imaging.series import assemble_series, series_key_of

    scanned = scan_batch(entries, archive_root, pseudonymizer)
    out = ScanSummary()
    final: list[IngestManifestRow] = []
    others: list[tuple[Any, IngestManifestRow]] = []
    by_group: dict[str, list[tuple[Any, IngestManifestRow]]] = {}
    for s in scanned:
        if s.row.series_id:
            out.series_ids.add(s.row.series_id)
        inst = s.instance
        if inst is None:
            if s.pending or s.row.path in companions:
                out.images.append(s)
            else:
                final.append(s.row)
        elif inst.kind is DicomKind.unsupported_image or not inst.kind.is_image:
            others.append((inst, s.row))  # settled on its own: no other file changes its outcome
        else:
            gid = group_id(inst.study_uid, series_key_of(inst))
            by_group.setdefault(gid, []).append((inst, s.row))
    if others:
        with quiet_readers():
            final += _settle(others, assemble_series([i for i, _ in others]).outcomes)
    digest = batch_digest(entries)
    headers = headers_dir(run_dir, seq)
    for gid, pairs in by_group.items():
        write_group_part(headers, gid, digest, pairs)
        out.groups[gid] = len(pairs)
    if final:
        write_part(Path(run_dir), f"{seq:06d}-s{digest}", final)
    out.counts = dict(Counter(r.status.value for r in final))
    return out


def _convert_stacks(
    pairs: list[tuple[DicomInstance, IngestManifestRow]],
    root: Path,
    out: Path,
    pz: Pseudonymizer,
    keep_descriptions: bool = False,
) -> tuple[list[IngestManifestRow], list[VolumeRecord]]:
    from medmm.imaging.convert import convert_stack
    from medmm.imaging.series import assemble_series, decodable_in

    by_path = {inst.path: (inst, row) for inst, row in pairs}
    # of two copies of one instance, keep one whose pixels decode (only repeated instances are decoded)
    assembly = assemble_series([inst for inst, _ in pairs], decodable=decodable_in(root))
    rows = _settle(pairs, assembly.outcomes)
    placed = set(assembly.outcomes)
    volumes: list[VolumeRecord] = []
    for stack in assembly.stacks:
        paths = [p for p in stack.paths if p not in placed]
        placed.update(paths)
        if stack.problems:
            reason = stack.reason
            rows += [_with(by_path[p][1], Status.quarantined, reason) for p in paths]
            continue
        if not paths:
            continue
        try:
            insts = [by_path[p][0] for p in stack.paths]
            volume = convert_stack(stack, insts, root, out, pz, keep_descriptions=keep_descriptions)
        except InputError as exc:
            failed = reason_of(exc)
        except Exception as exc:  # a bug in one conversion never kills the run
            failed = unexpected(paths[0], exc)
        else:
            vid = volume.volume_id
            volumes.append(volume)
            rows += [_with(by_path[p][1], Status.ingested, "", volume_id=vid) for p in paths]
            continue
        rows += [_with(by_path[p][1], Status.quarantined, failed) for p in paths]
    for path in sorted(set(by_path) - placed):
        err = IngestTaskError(
            path, "series assembly did not place this file", "re-run; report it if it persists"
        )
        rows.append(_with(by_path[path][1], Status.quarantined, reason_of(err)))
    return rows, volumes


def convert_group(
    gid: str,
    archive_root: str,
    run_dir: str,
    pseudonymizer: Pseudonymizer | bytes,
    seq: int,
    keep_descriptions: bool = False,
) -> GroupDone:
    """Assemble one study/series group from its parts, write its volumes and journal its rows.

    Parameters
    ----------
    gid
        The group (see :func:`group_id`).
    archive_root, run_dir
        Where inputs are read, and where ``volumes/`` and the journal parts are written.
    pseudonymizer
        The site key (or a ready pseudonymizer).
    seq
        Journal sequence number of this run's worker parts.
    keep_descriptions
        Write SeriesDescription / ProtocolName into the sidecars (``medmm ingest --keep-descriptions``).

    Returns
    -------
    GroupDone
        The ids of the volumes written (their records and the rows are in ``RUN_DIR/.parts/``).

    >>> import tempfile
    >>> convert_group("0" * 24, "/nonexistent", tempfile.mkdtemp(), b"k" * 32, 1).n_rows
    0
    """
    _maybe_die_for_test()
    root, out = Path(archive_root), Path(run_dir)
    pairs = read_group(headers_dir(out, seq), gid)
    if not pairs:
        return GroupDone(gid)
    with quiet_readers():
        pz = _as_pseudonymizer(pseudonymizer)
        rows, volumes = _convert_stacks(pairs, root, out, pz, keep_descriptions)
    write_part(out, f"{seq:06d}-g{gid}", rows, volumes)
    return GroupDone(gid, [v.volume_id for v in volumes], len(rows))


#: tries after the first of a group that raises inside a bundle (the retries its own task had)
GROUP_RETRIES = 2


def convert_groups(
    gids: tuple[str, ...],
    archive_root: str,
    run_dir: str,
    pseudonymizer: Pseudonymizer | bytes,
    seq: int,
    keep_descriptions: bool = False,
) -> list[GroupDone | BaseException]:
    """:func:`convert_group` for several groups in turn (one task for a few small series).

    Each group is read, converted and journaled on its own, exactly as in its own task, so a worker
    holds one group at a time; a group that raises leaves its exception in its place and the next
    group goes on (a group that raises is tried again, up to :data:`GROUP_RETRIES` times).

    >>> import tempfile
    >>> [d.n_rows for d in convert_groups(("0" * 24,), "/nonexistent", tempfile.mkdtemp(), b"k" * 32, 1)]
    [0]
    """
    pz = _as_pseudonymizer(pseudonymizer)  # one key schedule for the bundle
    done: list[GroupDone | BaseException] = []
    for gid in gids:
        for attempt in range(1 + GROUP_RETRIES):
            try:
                done.append(convert_group(gid, archive_root, run_dir, pz, seq, keep_descriptions))
                break
            except Exception as exc:  # as a failed task of this group alone (retried as Dask would)
                if attempt == GROUP_RETRIES:
                    done.append(exc)
    return done


def bundle_groups(sizes: dict[str, int], slots: int, per_slot: int = 2) -> list[tuple[str, ...]]:
    """Cut the study/series groups (by id, with their file counts) into conversion tasks.

    A Dask task costs a few milliseconds of CPU in the worker and the scheduler, as much as ~10-20
    small slices; groups are therefore bundled, in id order, guided by what is left: each bundle gets
    about ``1 / (per_slot * slots)`` of the files not yet bundled (at least one group), so bundles are
    large at first and single groups at the end, where they keep every worker busy until the last.
    ``per_slot=2`` (4 before Session 5) makes 14 instead of 25 tasks for 50 groups of 100 slices on 2
    workers: ~50 ms less CPU and a conversion phase ~50 ms shorter, the workers still finishing within
    ~10 ms of each other (docs/ingest.md, "Session 5: coarser conversion bundles").

    >>> bundle_groups({"a": 100, "b": 100, "c": 100, "d": 100}, slots=1, per_slot=2)
    [('a', 'b'), ('c',), ('d',)]
    >>> bundle_groups({}, slots=2)
    []
    """
    gids = sorted(sizes)
    left = sum(sizes.values())
    out: list[tuple[str, ...]] = []
    i = 0
    while i < len(gids):
        target = left / (per_slot * max(1, slots))
        bundle = [gids[i]]
        files = sizes[gids[i]]
        i += 1
        while i < len(gids) and files + sizes[gids[i]] <= target:
            files += sizes[gids[i]]
            bundle.append(gids[i])
            i += 1
        left -= files
        out.append(tuple(bundle))
    return out


# The functions Dask runs live here, not in the pipeline module: a worker imports only what they need
# (importing the pipeline would load pandas and Arrow into every worker, ~60 MB each).


def scan_item(
    item: tuple[PackedEntries, frozenset[str]], archive_root: str, key: bytes, run_dir: str, seq: int
) -> ScanSummary:
    """One scan task: a packed batch and its ``.img`` files that have a ``.hdr`` beside them.

    >>> from medmm.ingest.discover import pack_entries
    >>> scan_item((pack_entries([]), frozenset()), "/nonexistent", b"k" * 32, "/nonexistent", 1).groups
    {}
    """
    return scan_to_parts(unpack_entries(item[0]), archive_root, key, run_dir, seq, item[1])


def convert_item(
    item: str | tuple[str, ...] | ConvertJob,
    archive_root: str,
    run_dir: str,
    key: bytes,
    seq: int,
    keep_descriptions: bool = False,
) -> GroupDone | list[GroupDone | BaseException] | Converted:
    """One conversion task: a study/series group (by id), a bundle of groups, or an image file job
    (``keep_descriptions``: DICOM sidecars get SeriesDescription / ProtocolName).

    >>> import tempfile
    >>> convert_item("0" * 24, "/nonexistent", tempfile.mkdtemp(), b"k" * 32, 1).n_rows
    0
    """
    if isinstance(item, str):
        return convert_group(item, archive_root, run_dir, key, seq, keep_descriptions)
    if isinstance(item, tuple):
        return convert_groups(item, archive_root, run_dir, key, seq, keep_descriptions)
    return convert_job(item, archive_root, run_dir, key, keep_descriptions)
