"""``medmm ingest``: an archive in, canonical volumes and a manifest with one row per input file out.

Flow (driver = this process, tasks = Dask workers):

1. walk the archive on the driver (names, sizes, mtimes only), in path order, into a spill file
   (:mod:`.spill`) and compare with the journal of the run directory: unchanged inputs that are done
   are skipped;
2. scan tasks (batches of up to 500 files, cut from the spill as they are submitted, a few in flight per
   worker thread: :mod:`.stream`) sniff formats and read DICOM headers; they journal final rows
   themselves and write header records + provisional rows partitioned by study/series group under
   ``RUN_DIR/.parts/headers/``; the driver gets O(series) summaries (:mod:`.groups`);
3. conversion tasks of one or a few study/series groups each (:func:`~.groups.bundle_groups`) assemble
   each group's stacks, write their volumes and journal the settled rows; one task per NIfTI/ANALYZE
   file converts it (its rows are settled here, few);
4. ``manifest.parquet`` and ``volumes.parquet`` are merged from the journal parts and written a row
   group at a time (:mod:`.finalize`); ``run.json`` gets the counts. On a fresh run the driver holds
   nothing per input file: its memory does not grow with the archive.

>>> from medmm.ingest.pipeline import ingest_archive
>>> result = ingest_archive("archive/", "runs/a", workers=2)  # doctest: +SKIP
>>> result.counts  # doctest: +SKIP
{'ingested': 120, 'non_image': 4, 'quarantined': 2}
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from medmm.ingest.discover import Entry, PackedEntries, iter_archive, pack_entries, unpack_entries
from medmm.ingest.groups import (
    GroupDone,
    ScanSummary,
    batch_digest,
    bundle_groups,
    convert_item,
    scan_item,
    scan_to_parts,
)
from medmm.ingest.headers import HEADERS_SUBDIR, drop_batch, headers_dir, read_group
from medmm.ingest.journal import FINISHED_PARTS, Done, Journal, run_lock
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.resolve import RowBook, plan_jobs
from medmm.ingest.spill import WALK_SUBDIR, EntrySpill
from medmm.ingest.stream import run_streamed, submit_now
from medmm.ingest.tasks import Converted, ConvertJob, Scanned, unexpected
from medmm.ingest.workers import WORKER_MODULES, start_workers_early
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.records import Status
from medmm.runinfo import Timer, package_versions, update_run_json
from medmm.workflows.cluster import TaskFailure, dask_client, run_tasks
from medmm.workflows.forkserver import stop_worker_server

__all__ = ["IngestResult", "ingest_archive"]

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What one ``medmm ingest`` run did (also written to ``run.json``)."""

    run_dir: Path
    counts: dict[str, int]
    n_files: int
    n_volumes: int
    n_skipped: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_quarantined(self) -> int:
        """Inputs quarantined (bad or unsupported)."""
        return self.counts.get(Status.quarantined.value, 0)


#: Files per scan task at most (``--batch-size``, also the CLI's default): each task costs ~2 ms of
#: Dask CPU in its worker and as much in the driver; 500 instead of 200 saved ~0.01 ms per slice at
#: 5,000 slices (10 tasks instead of 25; docs/ingest.md, "Session 4: worker CPU")
SCAN_BATCH = 500


def _batch_size(n: int, size: int, slots: int = 1) -> int:
    """At most ``size`` files per batch, and at least 4 batches per worker slot when there are enough
    files, so that no worker sits idle while another one scans the last large batch."""
    return max(1, min(size, -(-n // (4 * max(1, slots)))))


def _batches(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    """``entries`` in consecutive lists of ``size`` (the last one shorter), one list at a time."""
    it = iter(entries)
    while batch := list(islice(it, size)):
        yield batch


def _done(row: Done | None, entry: Entry, volumes: dict[str, dict[str, Any]], run_dir: Path) -> bool:
    if row is None or row.size != entry.size or row.mtime_ns != entry.mtime_ns:
        return False
    if row.retry:  # a crash or lost worker: retry it
        return False
    if row.status in (Status.ingested.value, Status.companion.value) and row.volume_id:
        vol = volumes.get(row.volume_id)
        return vol is not None and (run_dir / str(vol["path"])).exists()
    return True


#: Entries of Dask's developer logs kept by a local cluster started here (scheduler transitions,
#: events, each comm's recent messages; Dask's default is 1,000): a message that submits a scan task
#: holds its batch's paths, so 1,000 of them held ~10 MB of the driver's memory.
DASK_LOG_LENGTH = 100


@contextmanager
def _client(
    client: Any, workers: int | None, scheduler: str | None, processes: bool, dashboard: bool
) -> Iterator[Any]:
    if client is not None:
        yield client
        return
    import dask
    import distributed  # noqa: F401 - its defaults are in the configuration before it is changed below

    # (a dask.config.set of a key that does not exist yet removes the whole section on leaving)
    # the worker processes start while the driver walks the archive and scans the first batches
    with (
        dask.config.set({"distributed.admin.low-level-log-length": DASK_LOG_LENGTH}),
        dask_client(
            workers=workers,
            scheduler=scheduler,
            processes=processes,
            wait_for_workers=False,
            fast_close=True,
            malloc_trim=False,
            dashboard=dashboard,
            worker_preload=WORKER_MODULES,
        ) as made,
    ):
        yield made


@contextmanager
def _early_worker_server(local: bool) -> Iterator[None]:
    """With a local cluster, launch its workers' server at once: it imports their modules while the
    driver walks the archive, loads the journal and starts the scheduler. It is stopped on leaving
    when the run never used it (nothing to do, or an error); the cluster stops it otherwise."""
    if not local:
        yield
        return
    start_workers_early()  # already running when the command started it
    try:
        yield
    finally:
        stop_worker_server()  # a no-op when the cluster has stopped it already


#: allocations between two young-generation garbage collections during a run (Python's default: 700)
GC_THRESHOLD0 = 50_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage less often on the driver while a run holds many small records.

    The driver keeps a few objects per input file (rows, refs); with Python's default thresholds the
    collector ran ~200 times on a 5,000-file run and its full collections walked all of them: ~0.2 s
    of the driver's ~0.85 s CPU. Objects alive at the start (imported modules ...) are frozen out of
    the collections, the young generation is collected every 50,000 allocations instead of 700, and
    both settings are restored afterwards. Cyclic garbage is still collected, only later.
    """
    import gc

    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _n_workers(client: Any) -> int:
    """Worker threads that have joined the cluster so far (0 while a local cluster starts)."""
    return sum(client.nthreads().values())


#: scan batches per worker thread submitted before any worker of a starting local cluster has joined:
#: the scheduler gives a one-thread worker up to two tasks at a time (Dask's worker-saturation 1.1),
#: so each worker starts its first one as it registers and has the next one at hand, while the
#: driver, which otherwise looks for joined workers every 5 ms and then submits, is not in the way
#: (10-20 ms from a worker's registration to its first task before)
EARLY_BATCHES_PER_THREAD = 2
#: how long tasks wait for the first worker of a cluster that is still starting
WORKER_START_TIMEOUT_S = 120.0
#: how long the driver waits for a first worker before it scans batches itself (its first scan costs
#: it ~0.25 s of imports: worth it only when the workers are slow to come)
DRIVER_SCAN_AFTER_S = 0.5


def _await_worker(client: Any) -> None:
    """Return once a worker has joined; a clear error instead of waiting forever for one that fails."""
    if _n_workers(client):
        return
    try:
        client.wait_for_workers(1, timeout=WORKER_START_TIMEOUT_S)
    except TimeoutError as exc:
        from medmm.errors import ConfigError

        raise ConfigError(
            f"no Dask worker joined within {WORKER_START_TIMEOUT_S:.0f} s; check the worker logs above, "
            f"or start a cluster yourself and pass --scheduler"
        ) from exc


@dataclass
class _Scan:
    """The driver's view of the scan: O(series) group ids and series pseudonyms, image-file rows."""

    groups: dict[str, int] = field(default_factory=dict)  # group id -> files
    series_ids: set[str] = field(default_factory=set)
    images: list[Scanned] = field(default_factory=list)

    def add(self, summary: ScanSummary) -> None:
        for gid, n in summary.groups.items():
            self.groups[gid] = self.groups.get(gid, 0) + n
        self.series_ids |= summary.series_ids
        self.images += summary.images


def _scan(
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
) -> _Scan:
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
    """
    found = _Scan()
    if not n_entries:
        return found
    size = _batch_size(n_entries, batch_size, max(slots, _n_workers(client), 1))
    n_batches = -(-n_entries // size)
    batches = _batches(entries, size)
    args = (str(root), key, str(out), seq)
    start = 0
    early: list[tuple[tuple[PackedEntries, frozenset[str]], Any]] = []
    if not _n_workers(client):  # a local cluster is starting: its first worker usually joins soon
        if starting:  # the first batches wait in the scheduler: each worker gets its own as it joins
            first = list(islice(batches, min(n_batches, EARLY_BATCHES_PER_THREAD * max(slots, 1))))
            items0 = [(pack_entries(b), _companions(b, companions)) for b in first]
            early = submit_now(client, scan_item, items0, args=args)
            start = len(early)
        with contextlib.suppress(TimeoutError):
            client.wait_for_workers(1, timeout=DRIVER_SCAN_AFTER_S)
    on_driver = 0
    while start < n_batches and _n_workers(client) == 0:
        batch = next(batches)
        try:
            found.add(scan_to_parts(batch, *args, _companions(batch, companions)))
        except Exception as exc:  # as a failed task: never kills the run
            _failed(batch, exc, out, seq, journal)
        start += 1
        on_driver += len(batch)
    if start < n_batches:
        _await_worker(client)
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


def _group_failed(gid: str, out: Path, seq: int, exc: BaseException, journal: Journal) -> None:
    pairs = read_group(headers_dir(out, seq), gid)
    if pairs:
        reason = unexpected(pairs[0][0].path, exc)
        update = {"status": Status.quarantined, "reason": reason}
        journal.add(row.model_copy(update=update) for _, row in pairs)


def ingest_archive(
    archive: Path | str,
    run_dir: Path | str,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    key_file: Path | None = None,
    client: Any = None,
    processes: bool = True,
    batch_size: int = SCAN_BATCH,
    show_progress: bool | None = None,
    dashboard: bool = False,
) -> IngestResult:
    """Ingest an imaging archive into ``run_dir`` (resumable; bad inputs become manifest rows).

    Parameters
    ----------
    archive
        Folder to ingest (walked recursively; links are never followed out of it).
    run_dir
        Output folder: ``manifest.parquet``, ``volumes.parquet``, ``volumes/``, ``run.json``.
    workers, scheduler, processes
        Local Dask cluster size / an existing scheduler address / threads instead of processes.
    key_file
        Site key for pseudonyms (default ``$MEDMM_KEY_FILE`` or the per-user default, created 0600).
    client
        An existing ``distributed.Client`` to use (overrides ``workers``/``scheduler``).
    batch_size
        Files per header-scanning task.
    dashboard
        Start the Dask dashboard of the local cluster (off by default: it costs ~0.3 s of CPU).

    Returns
    -------
    IngestResult
        Counts by status, volumes written, inputs skipped as already done, timings.

    Examples
    --------
    >>> r = ingest_archive("archive/", "runs/a", workers=2)  # doctest: +SKIP
    >>> r.n_files == sum(r.counts.values())  # doctest: +SKIP
    True
    """
    root, out = Path(archive), Path(run_dir)
    if not root.is_dir():
        from medmm.errors import ConfigError

        raise ConfigError(f"{root}: the archive must be an existing folder")
    out.mkdir(parents=True, exist_ok=True)
    local = client is None and scheduler is None and processes
    with _early_worker_server(local), run_lock(out), _fewer_collections():
        headers = out / HEADERS_SUBDIR
        shutil.rmtree(headers, ignore_errors=True)  # left by a killed run: they are rebuilt by scanning
        shutil.rmtree(out / WALK_SUBDIR, ignore_errors=True)
        shutil.rmtree(out / FINISHED_PARTS, ignore_errors=True)  # left by a run killed at its very end
        janitor = _Janitor()
        try:
            return _ingest(
                janitor,
                root,
                out,
                workers,
                scheduler,
                key_file,
                client,
                processes,
                batch_size,
                show_progress,
                dashboard,
            )
        finally:  # header records hold raw identifiers: never left behind by a run that ends
            janitor.join()
            shutil.rmtree(headers, ignore_errors=True)
            shutil.rmtree(out / WALK_SUBDIR, ignore_errors=True)
            shutil.rmtree(out / FINISHED_PARTS, ignore_errors=True)


def _ingest(
    janitor: _Janitor,
    root: Path,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    key_file: Path | None,
    client: Any,
    processes: bool,
    batch_size: int,
    show_progress: bool | None,
    dashboard: bool,
) -> IngestResult:
    timer = Timer()
    # tasks get the key bytes inline: scattering the same object again in a later phase races with the
    # release of the earlier scatter (same content key) and cancels tasks with "lost dependencies"
    key = load_key(key_file)
    pz = Pseudonymizer(key)
    journal = Journal(out)
    state = {"key_fingerprint": pz.id("medmm-key-check", "key"), "archive": str(root.resolve())}
    if not journal.state_matches(state):
        log.warning("run directory was made with another site key or archive: starting it afresh")
        journal.discard()
    journal.write_state(state)

    fresh = journal.is_fresh()  # nothing to resume: then load() imports neither pandas nor Arrow
    with contextlib.ExitStack() as stack:
        dask = None
        if fresh and not _empty(root):  # the cluster starts before the walk: it will have work
            dask = stack.enter_context(_client(client, workers, scheduler, processes, dashboard))
        with timer("walk"):
            # the walk goes to disk in path order: nothing per file stays in the driver's memory
            spill = EntrySpill(out / WALK_SUBDIR / "entries.pkl")
            walk_rows: list[IngestManifestRow] = []
            img_to_hdr: dict[str, str] = {}
            for entry in iter_archive(root, walk_rows, img_to_hdr):
                spill.add(entry)
            spill.close()
            link_rows = sorted(walk_rows, key=lambda r: r.path)
            previous, volumes = journal.load()
        partner = {**img_to_hdr, **{h: i for i, h in img_to_hdr.items()}}
        done: set[str] = set()
        if previous:  # resuming: what is unchanged and finished (a fresh run holds no set per file)
            done = {e.rel for e in spill.entries() if _done(previous.get(e.rel), e, volumes, out)}
            done -= {rel for rel in done if rel in partner and partner[rel] not in done}
        dirty_series = {r.series_id for p, r in previous.items() if r.series_id and p not in done}
        n_todo = len(spill) - len(done)
        todo = (e for e in spill.entries() if e.rel not in done)
        log.info("%d files, %d already done, %d to scan", len(spill), len(done), n_todo)

        book = RowBook(journal)
        stale = any(previous[rel].series_id in dirty_series for rel in done)
        no_work = not n_todo and not stale  # nothing changed: no cluster needed
        seq = journal.reserve()  # this run's task parts sort after earlier runs' and before its own
        journal.add(link_rows)
        companions = set(img_to_hdr)
        if dask is None and not no_work:
            dask = stack.enter_context(_client(client, workers, scheduler, processes, dashboard))
        if fresh:  # the final tables' modules, imported while this thread mostly waits on the workers
            _import_in_background(TABLE_MODULES)
        with timer("scan"):
            slots = workers or (min(4, os.cpu_count() or 1) if scheduler is None and client is None else 1)
            scan = (out, slots, journal, seq, companions)
            starting = client is None and scheduler is None and processes  # this run's local cluster
            found = _scan(dask, todo, n_todo, root, key, batch_size, show_progress, *scan, starting)
            dirty_series |= found.series_ids
            again = (
                [e for e in spill.entries() if e.rel in done and previous[e.rel].series_id in dirty_series]
                if done
                else []
            )
            if again:  # files of a series that changed are assembled again with it
                found2 = _scan(dask, again, len(again), root, key, batch_size, show_progress, *scan)
                for gid, n in found2.groups.items():
                    found.groups[gid] = found.groups.get(gid, 0) + n
                found.images += found2.images
                done -= {e.rel for e in again}
        with timer("assemble"):
            jobs = plan_jobs(found.images, book, img_to_hdr)
            # groups bundled into fewer tasks (a task costs ~2 ms of Dask CPU: "Session 4: worker CPU")
            bundles = bundle_groups(found.groups, max(slots, _n_workers(dask))) if found.groups else []
            items: list[tuple[str, ...] | ConvertJob] = [*bundles, *jobs]
            del found
            journal.flush()  # rows settled without conversion survive a kill from here on
        with timer("convert"):
            if items:
                _await_worker(dask)
            for i, result in run_tasks(
                dask,
                convert_item,
                items,
                label="convert",
                args=(str(root), str(out), key, seq),
                show_progress=show_progress,
            ):
                item = items[i]
                if isinstance(item, tuple):  # a bundle of groups
                    outcomes: list[Any] = (
                        [result] * len(item) if isinstance(result, TaskFailure) else list(result)  # type: ignore[arg-type]
                    )
                    for gid, outcome in zip(item, outcomes, strict=True):
                        if not isinstance(outcome, GroupDone):
                            exc = outcome.exception if isinstance(outcome, TaskFailure) else outcome
                            _group_failed(gid, out, seq, exc, journal)
                        # its rows are journaled: its header records go now, not in the run's tail
                        janitor.delete(headers_dir(out, seq) / gid)
                    # a group's volume records are in its journal part: the write reads them there
                    continue
                if isinstance(result, TaskFailure):
                    first = item.paths[0] if item.paths else item.key
                    result = Converted(item.key, reason=unexpected(first, result.exception))
                if isinstance(result, Converted):
                    book.converted(item, result)
        # every task's result is in: the cluster shuts down in a thread while this one writes the tables
        closing = _InThread(stack.pop_all().close, "medmm-close-cluster")
    try:
        with timer("write"):

            def paths() -> Iterator[str]:  # every input, sorted: the walk's files and its other rows
                return heapq.merge(spill.rels(), (r.path for r in link_rows))

            manifest, n_volumes = journal.finish_streamed(paths, volumes, remove_parts=False)
            # the parts (a few hundred files) are deleted beside run.json and the cluster's shut-down
            janitor.delete(out / FINISHED_PARTS)
        counts, n_rows = manifest.counts, manifest.n_rows
        timings = timer.total()
        update_run_json(
            out,
            "ingest",
            options={
                "archive": str(root.resolve()),
                "workers": workers,
                "scheduler": scheduler,
                "batch_size": batch_size,
            },
            counts=counts,
            timings=timings,
            extra={"n_files": n_rows, "n_volumes": n_volumes, "n_skipped": len(done)},
        )
    except BaseException:
        closing.join(raise_error=False)  # the error of the write is the one to report
        raise
    closing.join()  # the cluster is gone (an error while closing it is raised here)
    return IngestResult(out, counts, n_rows, n_volumes, len(done), timings)


def _empty(folder: Path) -> bool:
    """Whether ``folder`` holds nothing at all (then a fresh run needs no cluster)."""
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:  # the walk reports an unreadable archive
        return False


class _Janitor:
    """Delete folders in a thread, in the order given; :meth:`join` waits until all are gone.

    File deletion is cheap in CPU but can wait on a busy file system (a run's ~200 journal parts
    took 4-190 ms to delete on a shared disk): the driver hands each study/series group's header
    records over as soon as its conversion is journaled, and the journal's parts once the tables are
    written; ``ingest_archive`` joins before it returns (then deletes whatever is left itself), so a
    run never leaves header records (raw identifiers) behind.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def delete(self, folder: Path) -> None:
        """Delete ``folder`` (and all it holds) soon; a missing folder is no error."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="medmm-delete-parts", daemon=True)
            self._thread.start()
        self._queue.put(folder)

    def _run(self) -> None:
        while (folder := self._queue.get()) is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def join(self) -> None:
        """Wait until every folder handed over is deleted."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


class _InThread:
    """Run ``fn`` in a thread now; :meth:`join` waits for it and raises what it raised.

    The end of a run closes the Dask cluster (client, workers, nannies, scheduler, the worker server:
    ~30-40 ms, mostly waiting for processes to exit; once every task's result is in, its workers have
    written their journal parts and volumes, atomically) in a thread beside the table writing and
    ``run.json`` (the journal's parts are deleted by a :class:`_Janitor`); the run returns only once
    it is done (joined), so it never leaves its cluster behind.
    """

    def __init__(self, fn: Callable[[], object], name: str) -> None:
        self.name = name
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name)
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the main thread by join()
            self._error = exc

    def join(self, raise_error: bool = True) -> None:
        """Wait for ``fn`` to return; raise the error it raised, if any (else log it)."""
        self._thread.join()
        if self._error is not None:
            if raise_error:
                raise self._error
            log.warning("%s failed: %s", self.name, self._error)


#: what writing the final tables imports (Arrow and its parquet writer, ~0.03 s of CPU; not pandas,
#: not pyarrow.compute: see :mod:`medmm.ingest.arrow_rows`). Not ``medmm.imaging``: the conversion
#: tasks of DICOM groups return volume ids, not records, so a DICOM-only run's driver never imports it
TABLE_MODULES = ("pyarrow", "pyarrow.parquet", "medmm.ingest.finalize")


def _import_in_background(modules: Collection[str]) -> threading.Thread:
    """Import ``modules`` in a daemon thread (an import that fails is left to the code that needs it),
    then read the package versions ``run.json`` records (:func:`~medmm.runinfo.package_versions`,
    ~10-30 ms) and the pandas version the tables' metadata names (~2 ms), both kept for the process.

    While the workers start, scan and convert, the driver's main thread waits for them: work in another
    thread takes that idle time instead of adding to the serial parts of the run (the gap between the
    scan and the conversion, the write at the end). Imports hold per-module locks, so code that imports
    the same module meanwhile waits for it.
    """

    def run() -> None:
        import importlib

        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # pragma: no cover - re-raised where the module is imported for use
                log.debug("background import of %s failed", name, exc_info=True)
                return
        package_versions()
        from medmm.ingest.arrow_rows import pandas_version

        pandas_version()  # the tables' pandas metadata names it (read once per process)

    thread = threading.Thread(target=run, name="medmm-import-tables", daemon=True)
    thread.start()
    return thread
