"""The scan phase as the driver runs it: the archive's files cut into batches and streamed to scan tasks.

Each batch of up to :data:`SCAN_BATCH` files goes to a :func:`~medmm.ingest.groups.scan_item` task;
at most :func:`~medmm.ingest.stream.run_streamed`'s window of batches is in flight, so the driver holds
the walk's entries only a window at a time. The tasks write rows and header records to part files and
return O(series) summaries (:class:`~medmm.ingest.groups.ScanSummary`), gathered in a
:class:`ScanFound`. While a starting local cluster has no worker yet, its first batches wait in the
scheduler, and after :data:`DRIVER_SCAN_AFTER_S` the driver scans batches itself. A batch whose task
fails is quarantined, file by file.

>>> from medmm.ingest.scan_phase import scan_batch_size
>>> scan_batch_size(5000, SCAN_BATCH, slots=2), scan_batch_size(1000, SCAN_BATCH, slots=2)
(500, 125)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from medmm.ingest.discover import Entry, PackedEntries, pack_entries, unpack_entries
from medmm.ingest.groups import ScanSummary, batch_digest, scan_item, scan_to_parts
from medmm.ingest.headers import drop_batch, headers_dir
from medmm.ingest.journal import Journal
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.run_cluster import await_worker, n_workers
from medmm.ingest.stream import run_streamed, submit_now
from medmm.ingest.tasks import Scanned, unexpected
from medmm.records import Status
from medmm.workflows.cluster import TaskFailure

__all__ = [
    "DRIVER_SCAN_AFTER_S",
    "EARLY_BATCHES_PER_THREAD",
    "SCAN_BATCH",
    "ScanFound",
    "scan_batch_size",
    "scan_entries",
]

log = logging.getLogger(__name__)

#: Files per scan task at most (``--batch-size``, also the CLI's default): each task costs ~2 ms of
#: Dask CPU in its worker and as much in the driver; 500 instead of 200 saved ~0.01 ms per slice at
#: 5,000 slices (10 tasks instead of 25; docs/ingest.md, "Session 4: worker CPU")
SCAN_BATCH = 500

#: scan batches per worker thread submitted before any worker of a starting local cluster has joined:
#: the scheduler gives a one-thread worker up to two tasks at a time (Dask's worker-saturation 1.1),
#: so each worker starts its first one as it registers and has the next one at hand, while the
#: driver, which otherwise looks for joined workers every 5 ms and then submits, is not in the way
#: (10-20 ms from a worker's registration to its first task before)
EARLY_BATCHES_PER_THREAD = 2
#: how long the driver waits for a first worker before it scans batches itself (its first scan costs
#: it ~0.25 s of imports: worth it only when the workers are slow to come)
DRIVER_SCAN_AFTER_S = 0.5


def scan_batch_size(n: int, size: int, slots: int = 1) -> int:
    """At most ``size`` files per batch, and at least 4 batches per worker slot when there are enough
    files, so that no worker sits idle while another one scans the last large batch.

    >>> scan_batch_size(1000, 500, slots=2), scan_batch_size(3, 500, slots=2)
    (125, 1)
    """
    return max(1, min(size, -(-n // (4 * max(1, slots)))))


def _batches(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    """``entries`` in consecutive lists of ``size`` (the last one shorter), one list at a time."""
    it = iter(entries)
    while batch := list(islice(it, size)):
        yield batch


@dataclass
class ScanFound:
    """The driver's view of the scan: O(series) group ids and series pseudonyms, image-file rows.

    >>> found = ScanFound()
    >>> found.groups, found.images
    ({}, [])
    """

    groups: dict[str, int] = field(default_factory=dict)  # group id -> files
    series_ids: set[str] = field(default_factory=set)
    images: list[Scanned] = field(default_factory=list)

    def add(self, summary: ScanSummary) -> None:
        """Add one scan batch's summary."""
        for gid, n in summary.groups.items():
            self.groups[gid] = self.groups.get(gid, 0) + n
        self.series_ids |= summary.series_ids
        self.images += summary.images


def scan_entries(
    client: Any,
    entries: Iterable[Entry],
    n_entries: int,
    root: Path,
    key: bytes,
    batch_size: int,
    progress: bool | None,
    out: Path,
    slots: int,
    journal: Journal,
    seq: int,
    companions: Collection[str],
    starting: bool = False,
) -> ScanFound:
    """Scan ``entries`` in batches; while no worker has joined yet, the driver scans batches itself.

    A local cluster's workers usually join within a few tenths of a second (they are forked from a
    server that started importing as the run began). When the run has just started that cluster
    (``starting``), the first :data:`EARLY_BATCHES_PER_THREAD` batches per worker thread are
    submitted at once: they wait in the scheduler, which hands them to each worker as it registers.
    When no worker has joined after ``DRIVER_SCAN_AFTER_S``, the driver scans the next batches
    in-process (the same :func:`scan_to_parts`) instead of waiting, and hands every remaining batch to
    the workers as soon as one has joined.
    With a running cluster all batches go to the workers. Rows and header records go to part files;
    a batch whose task fails is quarantined. ``entries`` (``n_entries`` of them) are read as the
    batches go: at most :func:`~medmm.ingest.stream.run_streamed`'s window of batches
    (8 per worker thread) is in flight.

    >>> found = scan_entries(client, entries, len(entries), root, key, 500, False, out, 2,
    ...                      journal, seq, set())  # doctest: +SKIP
    >>> sorted(found.groups)  # doctest: +SKIP
    ['1f3a...', ...]
    """
    found = ScanFound()
    if not n_entries:
        return found
    size = scan_batch_size(n_entries, batch_size, max(slots, n_workers(client), 1))
    n_batches = -(-n_entries // size)
    batches = _batches(entries, size)
    args = (str(root), key, str(out), seq)
    start = 0
    early: list[tuple[tuple[PackedEntries, frozenset[str]], Any]] = []
    if not n_workers(client):  # a local cluster is starting: its first worker usually joins soon
        if starting:  # the first batches wait in the scheduler: each worker gets its own as it joins
            first = list(islice(batches, min(n_batches, EARLY_BATCHES_PER_THREAD * max(slots, 1))))
            items0 = [(pack_entries(b), _companions(b, companions)) for b in first]
            early = submit_now(client, scan_item, items0, args=args)
            start = len(early)
        with contextlib.suppress(TimeoutError):
            client.wait_for_workers(1, timeout=DRIVER_SCAN_AFTER_S)
    on_driver = 0
    while start < n_batches and n_workers(client) == 0:
        batch = next(batches)
        try:
            found.add(scan_to_parts(batch, *args, _companions(batch, companions)))
        except Exception as exc:  # as a failed task: never kills the run
            _failed(batch, exc, out, seq, journal)
        start += 1
        on_driver += len(batch)
    if start < n_batches:
        await_worker(client)
    if on_driver:
        log.info("scanned %d files on the driver while the workers started", on_driver)
    items = ((pack_entries(b), _companions(b, companions)) for b in batches)
    total = n_batches - start + len(early)
    for item, result in run_streamed(
        client, scan_item, items, label="scan", args=args, total=total, show_progress=progress, started=early
    ):
        if isinstance(result, TaskFailure):
            _failed(unpack_entries(item[0]), result.exception, out, seq, journal)
        else:
            found.add(result)
    return found


def _companions(batch: list[Entry], companions: Collection[str]) -> frozenset[str]:
    return frozenset(e.rel for e in batch if e.rel in companions)


def _failed(batch: list[Entry], exc: BaseException, out: Path, seq: int, journal: Journal) -> None:
    drop_batch(headers_dir(out, seq), batch_digest(batch))
    journal.add(
        IngestManifestRow(
            path=e.rel,
            size=e.size,
            mtime_ns=e.mtime_ns,
            format="unknown",
            status=Status.quarantined,
            reason=unexpected(e.rel, exc),
        )
        for e in batch
    )
