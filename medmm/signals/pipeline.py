"""The signals stage: discover records, process each in a Dask task, write the run's tables.

``run_signals(INPUT, RUN_DIR)`` is what ``medmm signals ingest`` and workflows call. Every input file
gets exactly one row in ``manifest_signals.parquet``; a record whose task raises (an
:class:`~medmm.errors.InputError` or anything else) is quarantined with the reason, its companions
with it, and the batch goes on. ``workers=0`` runs the tasks serially in this process (the
benchmark's baseline and the simplest way to debug).

>>> from medmm.datasets import shared_data_dir
>>> import tempfile, pathlib
>>> root = shared_data_dir()
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> key = Pseudonymizer(b"k" * 32)
>>> data = root / "signals/wfdb_sample_data" if root else None
>>> counts = run_signals(data, out, workers=0, pseudonymizer=key) if data else None
>>> counts is None or (counts["records"] == 11 and counts["quarantined"] > 0)
True
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import pickle
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.errors import ConfigError, InputError, reason_of
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.records import Status
from medmm.runinfo import Timer, claim_site_key, update_run_json
from medmm.signals.discover import RecordJob, discover
from medmm.signals.errors import SignalFileError
from medmm.signals.process import RecordResult, Settings, process_record
from medmm.signals.records import (
    BeatRow,
    EventRow,
    SignalManifestRow,
    SignalRow,
    VitalRow,
    WindowRow,
    WindowVitalRow,
)
from medmm.tables import atomic_write_bytes, records_to_frame, write_table

__all__ = ["TABLES", "process_resumable", "run_signals"]

log = logging.getLogger(__name__)

#: Tables written to the run directory.
TABLES = (
    "manifest_signals",
    "signals",
    "beats",
    "features",
    "windows",
    "vitals",
    "events",
    "window_vitals",
)


_PARTS = ".signals_parts"
#: errno of a run directory that cannot take more data: the run stops (every record would fail alike).
_RUN_DIR_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _has_files(root: Path) -> bool:
    """Whether ``root`` holds a file (not hidden, in no hidden folder), found without a full walk."""
    for _dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(not f.startswith(".") for f in filenames):
            return True
    return False


def _fingerprint(root: Path, job: RecordJob, settings: Settings, pz: Pseudonymizer) -> str:
    files = [
        [f, (root / f).stat().st_size, (root / f).stat().st_mtime_ns] for f in [job.main, *job.companions]
    ]
    opts = settings.options()
    if not opts["recover_small_beats"]:  # default off: saved results of runs made before the option resume
        del opts["recover_small_beats"]
    blob = json.dumps([files, opts, pz.id("signals-fingerprint", "fingerprint")], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def process_resumable(
    job: RecordJob, root: str, settings: Settings, pseudonymizer: Pseudonymizer, run_dir: str
) -> RecordResult | Exception:
    """:func:`~medmm.signals.process.process_record`, or its saved result from an earlier run.

    A result is saved (atomically) under ``RUN_DIR/.signals_parts`` and reused when it was made from
    the same input files (paths, sizes, mtimes), settings and site key; anything else recomputes.
    A bad input is *returned* as its :class:`~medmm.errors.InputError` (to be quarantined), not raised:
    a raised error would be retried by Dask and logged with a traceback for every try. So is any other
    exception but an ``OSError`` (which may pass, and is retried).

    >>> from medmm.signals.discover import RecordJob
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = open(f"{root}/v.csv", "w").write("foo,bar\\n1,2\\n")
    >>> job = RecordJob(record="v", kind="table", main="v.csv")
    >>> err = process_resumable(job, root, Settings(), Pseudonymizer(b"k" * 32), root)
    >>> type(err).__name__
    'NotASignalError'
    """
    try:
        fp = _fingerprint(Path(root), job, settings, pseudonymizer)
    except FileNotFoundError as exc:
        gone = Path(exc.filename or job.main).name
        return SignalFileError(
            job.main, f"{gone} disappeared during the run", "run again once the export has finished"
        )
    part = Path(run_dir) / _PARTS / f"{hashlib.sha1(job.record.encode()).hexdigest()}.pkl"
    if part.exists():
        try:
            done = pickle.loads(part.read_bytes())  # written by this stage into this run directory
        except Exception:  # unreadable cache: recompute
            done = None
        if isinstance(done, RecordResult) and done.fingerprint == fp:
            done.resumed, done.part = True, str(part)
            done.n_beats = 0 if done.beats is None else len(done.beats)
            done.n_windows = len(done.windows)
            return done
    try:
        res = process_record(job, root, settings, pseudonymizer, run_dir)
    except InputError as exc:
        return exc
    except OSError:  # may pass (a share gone away): Dask tries it again
        raise
    except Exception as exc:  # an input nobody foresaw: returned too, so that Dask neither retries it
        return exc  # nor logs its message on the worker (a library's message can quote a header value)
    res.fingerprint, res.part = fp, str(part)
    res.n_beats = 0 if res.beats is None else len(res.beats)
    res.n_windows = len(res.windows)
    atomic_write_bytes(part, pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
    return res


def _serial(
    jobs: list[RecordJob], args: tuple[Any, ...]
) -> Iterator[tuple[int, RecordResult | BaseException]]:
    """The records one after the other in this process, with the Dask path's progress bar on a terminal
    (or with ``MEDMM_PROGRESS`` set)."""
    from contextlib import nullcontext

    from medmm.workflows.cluster import interactive, progress_bar

    bar = progress_bar("signals", len(jobs)) if interactive() and jobs else None
    with bar if bar is not None else nullcontext():
        for i, job in enumerate(jobs):
            try:
                res: RecordResult | BaseException = process_resumable(job, *args)
            except Exception as exc:  # one bad record never stops the batch
                res = exc
            if bar is not None:
                bar.advance(bar.task_ids[0])
            yield i, res


def _dask(
    jobs: list[RecordJob], args: tuple[Any, ...], workers: int | None, scheduler: str | None
) -> Iterator[tuple[int, Any]]:
    from medmm.workflows.cluster import TaskFailure, dask_client, run_tasks

    with dask_client(workers=workers, scheduler=scheduler, quiet=True) as client:
        if scheduler:  # the workers must see the input, the run directory and the key (docs/cluster.md)
            from medmm.workflows.external import check_paths
            from medmm.workflows.worker_key import KeyPathPseudonymizer, check_key

            root, _, pz, out = args
            check_paths(client, scheduler, read=[root], write=[out])
            if isinstance(pz, KeyPathPseudonymizer):
                check_key(client, scheduler, pz.ref)
        for i, res in run_tasks(client, process_resumable, jobs, label="signals", args=args):
            yield i, (res.exception if isinstance(res, TaskFailure) else res)


def _quarantine(root: Path, job: RecordJob, exc: BaseException) -> list[SignalManifestRow]:
    if isinstance(exc, InputError):
        reason = reason_of(exc)
    elif isinstance(exc, OSError):  # unreadable (permissions, an NFS/SMB share gone away, I/O error)
        name = Path(exc.filename).name if isinstance(exc.filename, str) else job.main
        reason = (
            f"{type(exc).__name__}: {job.main}: {name} could not be read ({exc.strerror or exc}). "
            "Fix: check that the file is readable (permissions, the share is mounted) and run again; "
            "finished records are kept"
        )
    else:  # a bug or an input we did not foresee: still one row, naming the file
        from medmm.imaging.errors import library_message  # hides quoted values; imported only here

        reason = (
            f"{type(exc).__name__}: {job.main}: unexpected error while processing ({library_message(exc)}). "
            "Fix: report it with this file to the medmm maintainers"
        )
    rows = []
    for rel in [job.main, *job.companions]:
        try:
            st: os.stat_result | None = (root / rel).stat()
        except OSError:  # removed or moved while the run went on (e.g. by the export job)
            st = None
        rows.append(
            SignalManifestRow(
                path=rel,
                size=None if st is None else st.st_size,
                mtime_ns=None if st is None else st.st_mtime_ns,
                format=job.kind,
                status=Status.quarantined,
                reason=reason if rel == job.main else f"part of {job.main}, which is quarantined: {reason}",
                record=job.record,
            )
        )
    return rows


def _stream_frames(out: Path, results: list[RecordResult]) -> None:
    """Write windows / beats / features / vitals record by record from the saved results (:mod:`.sink`)."""
    from medmm.signals.beats import BEAT_COLUMNS
    from medmm.signals.ecg import BEAT_KEYS
    from medmm.signals.sink import FrameSink, model_types

    feature_cols = ["record", "channel", "sample", *[c for c in BEAT_COLUMNS if c not in BEAT_KEYS]]
    sinks = {
        "windows": FrameSink(out / "windows.parquet", list(WindowRow.model_fields), model_types(WindowRow)),
        "beats": FrameSink(out / "beats.parquet", list(BeatRow.model_fields)),
        "features": FrameSink(out / "features.parquet", feature_cols),
        "vitals": FrameSink(out / "vitals.parquet", list(VitalRow.model_fields)),
    }
    try:
        for r in results:
            full = pickle.loads(Path(r.part).read_bytes())  # this run's own saved result
            if not isinstance(full, RecordResult) or full.fingerprint != r.fingerprint:
                raise RuntimeError(f"{r.part}: saved result of {r.record} changed during the run")
            sinks["windows"].add(records_to_frame(full.windows, WindowRow) if full.windows else None)
            sinks["beats"].add(full.beats)
            sinks["features"].add(full.features)
            sinks["vitals"].add(full.vitals)
            del full
        for sink in sinks.values():
            sink.close()
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise


def run_signals(
    input_root: Path,
    run_dir: Path,
    *,
    settings: Settings | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    key_file: Path | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, int]:
    """Run the signals stage on ``input_root``; write tables to ``run_dir``; return status counts.

    Parameters
    ----------
    input_root
        Folder of records (WFDB, EDF, CSV/Parquet vitals, DICOM waveforms), walked recursively.
    run_dir
        Output folder (created); see ``docs/signals.md`` for its tables.
    settings
        Stage options (target rate, windows, anchors ...); defaults of :class:`Settings`.
    workers, scheduler
        Local Dask workers, or the address of a running scheduler; ``workers=0`` runs serially here.
    key_file, pseudonymizer
        The site key (or a ready :class:`Pseudonymizer`) for patient pseudonyms and date shifts.
    only
        Process only these files (paths relative to ``input_root``), e.g. the waveform DICOMs that the
        imaging ingest marked ``non_image`` "routed to the signals stage"; see
        :func:`~medmm.signals.discover.discover`.
    """
    timer = Timer()
    settings = settings or Settings()
    # absolute: the tasks may run in workers whose working folder is another one (--scheduler)
    root, out = Path(input_root).absolute(), Path(run_dir).absolute()
    if not root.is_dir():  # e.g. an export share not mounted: never an empty, "successful" run
        raise ConfigError(
            f"{root}: the signals input must be an existing folder (not found, or not a folder); "
            "check the path (and that the export is mounted)"
        )
    try:
        re.compile(settings.anchor_events)
    except re.error as exc:  # else every record would be quarantined with the same error
        raise ConfigError(
            f"anchor events: {settings.anchor_events!r} is not a valid regular expression ({exc}); "
            "fix --anchor-events (e.g. '^alarm' or 'Lights off|^\\+\\(AFIB')"
        ) from None
    if only is None and not _has_files(root):  # an unmounted share's empty mount point, a wrong folder
        raise ConfigError(
            f"{root}: the signals input folder holds no files (hidden ones aside); check the path and that "
            "the export share is mounted"
        )
    if only is None and out.resolve().is_relative_to(root.resolve()):
        raise ConfigError(
            f"{out}: the run directory is inside the signals input {root}, so the run's own tables would "
            "be read as inputs next time; choose an --out outside the input folder"
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"{out}: the run directory (--out) is an existing file; give a folder (new or a run's)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only share, a parent that is a file ...
        raise ConfigError(
            f"{out}: the run directory cannot be created ({exc.strerror}); choose another --out"
        ) from None
    if pseudonymizer is None and scheduler:  # workers read the key from its path (docs/cluster.md)
        from medmm.workflows.worker_key import KeyPathPseudonymizer, worker_key

        pseudonymizer = KeyPathPseudonymizer(worker_key(key_file))
    pz = pseudonymizer or Pseudonymizer(load_key(key_file))
    claim_site_key(out, pz.check_value())  # a run directory made with another key is refused
    with timer("discover"):
        jobs, manifest = discover(root, only)
    args = (str(root), settings, pz, str(out))
    results: list[RecordResult] = []
    samples = 0
    with timer("process"):
        stream = (
            _serial(jobs, args) if workers == 0 and not scheduler else _dask(jobs, args, workers, scheduler)
        )
        for i, res in stream:
            if isinstance(res, RecordResult):
                res.beats = res.features = res.vitals = None  # streamed from res.part when writing
                res.windows = []
                results.append(res)
                manifest += res.manifest
                samples += res.n_samples
            else:
                if isinstance(res, OSError) and res.errno in _RUN_DIR_FULL:
                    raise ConfigError(
                        f"{out}: {os.strerror(res.errno or 0)} while writing the results of {jobs[i].main}; "
                        "free space (or choose another --out) and run again: finished records are kept"
                    ) from res
                log.info("quarantined %s: %s", jobs[i].main, type(res).__name__)
                manifest += _quarantine(root, jobs[i], res)
    with timer("write"):
        results.sort(key=lambda r: r.record)
        manifest.sort(key=lambda r: r.path)
        write_table(manifest, out / "manifest_signals.parquet", SignalManifestRow)
        write_table([s for r in results for s in r.signals], out / "signals.parquet", SignalRow)
        write_table([e for r in results for e in r.events], out / "events.parquet", EventRow)
        _stream_frames(out, results)
        wv = _window_vitals(out, settings.vitals_tolerance_s)
        write_table(wv, out / "window_vitals.parquet", WindowVitalRow)
        # the whole input, every folder listed: what is not in it any more goes (a folder that cannot be
        # listed tonight keeps its records' saved results for the night it can again)
        if only is None and not any(m.format == "folder" for m in manifest):
            _remove_orphans(out, jobs)
    counts = {s.value: sum(1 for m in manifest if m.status == s) for s in Status}
    counts = {k: v for k, v in counts.items() if v} | {
        "records": len(results),
        "channels": sum(len(r.signals) for r in results),
        "windows": sum(r.n_windows for r in results),
        "beats": sum(r.n_beats for r in results),
        "samples": samples,
    }
    counts.setdefault("quarantined", 0)
    counts["resumed"] = sum(1 for r in results if r.resumed)
    opts = settings.options() | {
        "workers": workers,
        "scheduler": scheduler,
        "input": str(root),
        "only": None if only is None else len(only),
    }
    update_run_json(out, "signals", options=opts, counts=counts, timings=timer.total())
    return counts


def _remove_orphans(out: Path, jobs: Sequence[RecordJob]) -> None:
    """Remove window arrays that ``windows.parquet`` no longer lists and saved results of records no
    longer in the input: those of a record deleted, renamed or moved in the export since an earlier run,
    or quarantined now (a re-export that is broken). Nothing reads them any more, and a record deleted
    from the export must not stay in the run directory night after night (its waveform windows).

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = write_table([], run / "windows.parquet", WindowRow)
    >>> (run / "windows" / "gone").mkdir(parents=True)
    >>> _ = (run / "windows" / "gone" / "II.npy").write_bytes(b"")
    >>> _remove_orphans(run, [])
    >>> (run / "windows").exists()
    False
    """
    listed = set(pd.read_parquet(out / "windows.parquet", columns=["path"])["path"])
    store = out / "windows"
    if store.is_dir():
        for path in store.rglob("*.npy"):
            if path.relative_to(out).as_posix() not in listed:
                path.unlink(missing_ok=True)
        for folder in sorted((d for d in store.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):  # removed only when empty
                folder.rmdir()
        with contextlib.suppress(OSError):
            store.rmdir()
    parts = out / _PARTS
    if parts.is_dir():
        current = {f"{hashlib.sha1(job.record.encode()).hexdigest()}.pkl" for job in jobs}
        for path in parts.glob("*.pkl"):
            if path.name not in current:
                path.unlink(missing_ok=True)


def _window_vitals(out: Path, tolerance_s: float) -> pd.DataFrame:
    """Join every window (centre, shifted absolute time) with the patient's vitals within tolerance."""
    from medmm.signals.align import join_nearest_values

    win = pd.read_parquet(out / "windows.parquet")
    vit = pd.read_parquet(out / "vitals.parquet")
    win = win[win["start_abs_s"].notna() & win["patient_id"].isin(set(vit["patient_id"]))]
    vit = vit[vit["abs_time_s"].notna()]
    if win.empty or vit.empty:
        return pd.DataFrame(columns=list(WindowVitalRow.model_fields))
    centre = win["start_abs_s"] + (
        win["pad_before"] + win["stop_sample"] - win["start_sample"] + win["pad_after"]
    ) / (2 * win["fs"])
    left = win[["record", "patient_id", "channel", "path", "row"]].assign(t=centre.to_numpy())
    right = vit.rename(columns={"channel": "series", "abs_time_s": "t"})[
        ["patient_id", "series", "t", "value"]
    ]
    joined = join_nearest_values(left, right, tolerance_s=tolerance_s)
    return joined.rename(columns={"series": "vital"}).reindex(columns=list(WindowVitalRow.model_fields))
