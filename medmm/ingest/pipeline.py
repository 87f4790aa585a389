"""``medmm ingest``: an archive in, canonical volumes and a manifest with one row per input file out.

Flow (driver = this process, tasks = Dask workers):

1. walk the archive on the driver (names, sizes, mtimes only), in path order, into a spill file
   (:mod:`.spill`) and compare with the journal of the run directory: unchanged inputs that are done
   are skipped;
2. scan tasks (batches of up to 500 files, cut from the spill as they are submitted, a few in flight per
   worker thread: :mod:`.scan_phase`, :mod:`.stream`) sniff formats and read DICOM headers; they
   journal final rows themselves and write header records + provisional rows partitioned by
   study/series group under ``RUN_DIR/.parts/headers/``; the driver gets O(series) summaries
   (:mod:`.groups`);
3. conversion tasks of one or a few study/series groups each (:func:`~.groups.bundle_groups`) assemble
   each group's stacks, write their volumes and journal the settled rows; one task per NIfTI/ANALYZE
   file converts it (its rows are settled here, few);
4. ``manifest.parquet`` and ``volumes.parquet`` are merged from the journal parts and written a row
   group at a time (:mod:`.finalize`); ``run.json`` gets the counts. On a fresh run the driver holds
   nothing per input file: its memory does not grow with the archive.

The run's Dask cluster is started and waited for by :mod:`.run_cluster`; deletions, the cluster's close
and the tables' imports run in threads beside the driver (:mod:`.driver_threads`).

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
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmm.ingest.discover import Entry, iter_archive
from medmm.ingest.driver_threads import TABLE_MODULES, InThread, Janitor, import_in_background
from medmm.ingest.groups import GroupDone, bundle_groups, convert_item
from medmm.ingest.headers import HEADERS_SUBDIR, headers_dir, read_group
from medmm.ingest.image_ids import IdTable
from medmm.ingest.journal import FINISHED_PARTS, Done, Journal, run_lock
from medmm.ingest.records import IngestManifestRow
from medmm.ingest.resolve import RowBook, plan_jobs
from medmm.ingest.run_cluster import await_worker, cluster_client, early_worker_server, n_workers
from medmm.ingest.scan_phase import SCAN_BATCH, scan_entries
from medmm.ingest.spill import WALK_SUBDIR, EntrySpill
from medmm.ingest.tasks import Converted, ConvertJob, unexpected
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.records import Status
from medmm.runinfo import Timer, claim_site_key, update_run_json
from medmm.workflows.cluster import TaskFailure, run_tasks

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


def _same_mtime(recorded: int | None, now: int) -> bool:
    """Whether a recorded mtime (ns) is ``now``'s. A manifest with a row without size and mtime (a folder
    that cannot be listed ...) stores those columns as doubles, as pandas does: 2026's mtimes in ns
    (~1.8e18) come back rounded to 256 ns; compared exactly, every file was "changed" and redone.

    >>> t = 1795620530695004824
    >>> _same_mtime(int(float(t)), t), _same_mtime(t + 1000, t)
    (True, False)
    """
    return recorded is not None and (recorded == now or float(recorded) == float(now))


def _done(row: Done | None, entry: Entry, volumes: dict[str, dict[str, Any]], run_dir: Path) -> bool:
    if row is None or row.size != entry.size or not _same_mtime(row.mtime_ns, entry.mtime_ns):
        return False
    if row.retry:  # a crash or lost worker: retry it
        return False
    if row.status in (Status.ingested.value, Status.companion.value) and row.volume_id:
        vol = volumes.get(row.volume_id)
        return vol is not None and (run_dir / str(vol["path"])).exists()
    return True


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
    ids: IdTable | None = None,
    keep_descriptions: bool = False,
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
    ids
        Patient/study ids (and modality, study time) for image files that carry none: pictures, NIfTI,
        ANALYZE (:class:`~medmm.ingest.image_ids.IdTable`, ``medmm ingest --ids``). A run directory
        ingested with other ids (or none) starts afresh.
    keep_descriptions
        Also write the DICOM SeriesDescription and ProtocolName into the volume sidecars (operator free
        text: it may name the patient; ``medmm share`` never copies it). A run directory ingested
        without it (or with it) starts afresh when this changes.

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
    # absolute: the tasks may run in workers whose working folder is another one (--scheduler)
    root, out = Path(archive).absolute(), Path(run_dir).absolute()
    if not root.is_dir():
        from medmm.errors import ConfigError

        raise ConfigError(
            f"{root}: the archive must be an existing folder (not found, or not a folder). Fix: give the "
            "folder that holds the images (mounted, if it is a share); for a single file, its folder"
        )
    if out.resolve().is_relative_to(root.resolve()):  # its outputs would be walked as inputs next time
        from medmm.errors import ConfigError

        raise ConfigError(
            f"{out}: the run directory is inside the archive {root}, so the run's own files would be "
            "ingested as archive files; choose an --out outside the archive"
        )
    _check_archive(root, out)
    out.mkdir(parents=True, exist_ok=True)
    local = client is None and scheduler is None and processes
    with early_worker_server(local), run_lock(out), _fewer_collections():
        headers = out / HEADERS_SUBDIR
        shutil.rmtree(headers, ignore_errors=True)  # left by a killed run: they are rebuilt by scanning
        shutil.rmtree(out / WALK_SUBDIR, ignore_errors=True)
        shutil.rmtree(out / FINISHED_PARTS, ignore_errors=True)  # left by a run killed at its very end
        janitor = Janitor()
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
                ids,
                keep_descriptions,
            )
        finally:  # header records hold raw identifiers: never left behind by a run that ends
            janitor.join()
            shutil.rmtree(headers, ignore_errors=True)
            shutil.rmtree(out / WALK_SUBDIR, ignore_errors=True)
            shutil.rmtree(out / FINISHED_PARTS, ignore_errors=True)


def _ingest(
    janitor: Janitor,
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
    ids: IdTable | None = None,
    keep_descriptions: bool = False,
) -> IngestResult:
    timer = Timer()
    # tasks get the key bytes inline: scattering the same object again in a later phase races with the
    # release of the earlier scatter (same content key) and cancels tasks with "lost dependencies"
    key = load_key(key_file)
    pz = Pseudonymizer(key)
    if scheduler is not None:  # workers of an existing cluster read the key from its path (docs/cluster.md)
        from medmm.workflows.worker_key import KeyPathPseudonymizer, worker_key

        key = KeyPathPseudonymizer(worker_key(key_file))  # type: ignore[assignment]
    claim_site_key(out, pz.check_value())  # a run directory made with another key is refused
    journal = Journal(out)
    state = {"key_fingerprint": pz.id("medmm-key-check", "key"), "archive": str(root.resolve())}
    legacy = dict(state)
    if ids is not None:  # image files' ids come from this table: other ids (or none) redo every file
        # keyed: the table holds raw patient ids, and its plain digest could confirm guessed ones
        state["ids"], legacy["ids"] = pz.id(ids.digest, "ids"), ids.digest  # legacy: runs made before
    if keep_descriptions:  # the sidecars differ: a run made without it (or with it) is redone
        state["descriptions"] = legacy["descriptions"] = "kept"
    if not (journal.state_matches(state) or journal.state_matches(legacy)):
        log.warning(
            "run directory was made with another site key, archive, ids table or --keep-descriptions "
            "setting: starting it afresh"
        )
        journal.discard()
    journal.write_state(state)

    fresh = journal.is_fresh()  # nothing to resume: then load() imports neither pandas nor Arrow
    with contextlib.ExitStack() as stack:
        dask = None
        if fresh and not _empty(root):  # the cluster starts before the walk: it will have work
            dask = stack.enter_context(cluster_client(client, workers, scheduler, processes, dashboard))
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
            dask = stack.enter_context(cluster_client(client, workers, scheduler, processes, dashboard))
        if fresh:  # the final tables' modules, imported while this thread mostly waits on the workers
            import_in_background(TABLE_MODULES)
        with timer("scan"):
            slots = workers or (min(4, os.cpu_count() or 1) if scheduler is None and client is None else 1)
            scan = (out, slots, journal, seq, companions)
            starting = client is None and scheduler is None and processes  # this run's local cluster
            found = scan_entries(dask, todo, n_todo, root, key, batch_size, show_progress, *scan, starting)
            dirty_series |= found.series_ids
            again = (
                [e for e in spill.entries() if e.rel in done and previous[e.rel].series_id in dirty_series]
                if done
                else []
            )
            if again:  # files of a series that changed are assembled again with it
                found2 = scan_entries(dask, again, len(again), root, key, batch_size, show_progress, *scan)
                for gid, n in found2.groups.items():
                    found.groups[gid] = found.groups.get(gid, 0) + n
                found.images += found2.images
                done -= {e.rel for e in again}
        with timer("assemble"):
            jobs = plan_jobs(found.images, book, img_to_hdr, ids)
            # groups bundled into fewer tasks (a task costs ~2 ms of Dask CPU: "Session 4: worker CPU")
            bundles = bundle_groups(found.groups, max(slots, n_workers(dask))) if found.groups else []
            items: list[tuple[str, ...] | ConvertJob] = [*bundles, *jobs]
            del found
            journal.flush()  # rows settled without conversion survive a kill from here on
        with timer("convert"):
            if items:
                await_worker(dask)
            for i, result in run_tasks(
                dask,
                convert_item,
                items,
                label="convert",
                args=(str(root), str(out), key, seq, keep_descriptions),
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
        closing = InThread(stack.pop_all().close, "medmm-close-cluster")
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
                "ids": None if ids is None else {"table": ids.source, "modality": ids.modality or None},
                "keep_descriptions": keep_descriptions,
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


def _check_archive(root: Path, out: Path) -> None:
    """Refuse an archive folder that cannot be listed, or that is empty while the run directory holds
    earlier results: both are what an export share not mounted tonight (or mounted without the rights)
    looks like, and the run would drop every earlier file's rows and volumes as deleted.

    >>> import tempfile
    >>> _check_archive(Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp()))  # empty, nothing to lose
    """
    from medmm.errors import ConfigError

    try:
        with os.scandir(root) as it:
            empty = next(it, None) is None
    except OSError as exc:
        raise ConfigError(
            f"{root}: the archive folder cannot be listed ({exc.strerror}). Fix: check that the share is "
            f"mounted and readable by this user; nothing in {out} was changed"
        ) from None
    if not empty or not (out / "manifest.parquet").exists():
        return
    import pyarrow.parquet as pq

    n_rows = pq.ParquetFile(out / "manifest.parquet").metadata.num_rows
    if n_rows:
        raise ConfigError(
            f"{root}: the archive folder is empty, but the run directory {out} holds {n_rows} files' results "
            "of earlier runs, which this run would drop as deleted. Fix: check that the export share is "
            "mounted; to empty the run on purpose, remove the run directory (or give another --out)"
        )


def _empty(folder: Path) -> bool:
    """Whether ``folder`` holds nothing at all (then a fresh run needs no cluster)."""
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:  # the walk reports an unreadable archive
        return False
