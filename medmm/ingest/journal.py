"""The ingest progress journal: what is already done in a run directory, and what was done since.

Final manifest rows and volume records are appended, as tasks finish, to numbered parquet parts under
``RUN_DIR/.parts/`` (written atomically, a few seconds apart). A killed run leaves parts behind; the next
run reads ``manifest.parquet`` + ``volumes.parquet`` + the parts (later parts win) and skips every input
whose size and mtime are unchanged and whose volume exists. :meth:`Journal.finish` merges everything into
the tables and removes the parts.

>>> import tempfile, pathlib
>>> from medmm.records import Status
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> j = Journal(run)
>>> j.add([IngestManifestRow(path="a.txt", size=1, mtime_ns=0, format="text", status=Status.non_image)])
>>> j.flush()
>>> sorted(Journal(run).load()[0])
['a.txt']
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from medmm.errors import ConfigError
from medmm.ingest.errors import IngestTaskError
from medmm.ingest.records import IngestManifestRow

if TYPE_CHECKING:
    from medmm.ingest.finalize import ManifestSummary

__all__ = ["Done", "Journal", "row_parts", "run_lock", "volume_parts", "write_part"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.parquet"
VOLUMES = "volumes.parquet"
STATE = ".ingest_state.json"
#: where a finished run's parts go until they are deleted (:meth:`Journal.finish_streamed`)
FINISHED_PARTS = ".parts.finished"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN_DIR/.ingest.lock`` for the run; a second ingest into the same folder is refused.

    The lock is an ``flock``: the OS releases it when the process ends, even when killed, so a killed
    run never leaves a stale lock behind.

    >>> import tempfile, pathlib
    >>> with run_lock(pathlib.Path(tempfile.mkdtemp())):
    ...     pass
    """
    import fcntl

    path = Path(run_dir) / ".ingest.lock"
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"{run_dir}: another `medmm ingest` is writing to this run directory; wait for it to "
                f"finish or choose another --out"
            ) from exc
        except OSError as exc:  # a filesystem without flock (NFSv3 without lockd: ENOLCK): run unlocked
            log.warning(
                "%s: the run directory cannot be locked (%s): a second `medmm ingest` into it would not "
                "be refused; keep one ingest per run directory at a time (see docs/nightly.md)",
                run_dir,
                exc.strerror or exc,
            )
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_part(run_dir: Path, stem: str, rows: list[IngestManifestRow], volumes: Iterable[Any] = ()) -> None:
    """Write one journal part (volumes first, then rows; each atomically) under ``RUN_DIR/.parts/``.

    Tasks on the workers write their own parts; the name ``stem`` starts with the run's sequence number.

    >>> import tempfile, pathlib
    >>> from medmm.records import Status
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> write_part(run, "000001-x", [IngestManifestRow(path="a", format="text", status=Status.non_image)])
    >>> sorted(Journal(run).load()[0])
    ['a']
    """
    parts = Path(run_dir) / ".parts"
    volumes = [v.model_dump(mode="json") for v in volumes]
    if volumes:
        _atomic_pickle(volumes, parts / f"{stem}-volumes.pkl")
    if rows:  # plain dicts, pickled: no pandas or Arrow needed (nor imported) on the workers
        _atomic_pickle([r.model_dump(mode="json") for r in rows], parts / f"{stem}-rows.pkl")


def _atomic_pickle(obj: Any, path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def _load_pickle(path: Path) -> Any:
    with path.open("rb") as fh:
        return pickle.load(fh)  # our own journal part (0600), written by this or an earlier run


def row_parts(parts: Path) -> list[Path]:
    """Row parts of the journal in the order they were written (parquet from older runs, or pickles).

    >>> row_parts(Path("/nonexistent"))
    []
    """
    if not parts.exists():
        return []
    found = [*parts.glob("*-rows.parquet"), *parts.glob("*-rows.pkl")]
    return sorted(found, key=lambda p: p.name)


def volume_parts(parts: Path) -> list[Path]:
    """Volume parts of the journal in the order they were written.

    >>> volume_parts(Path("/nonexistent"))
    []
    """
    if not parts.exists():
        return []
    return sorted([*parts.glob("*-volumes.parquet"), *parts.glob("*-volumes.pkl")], key=lambda p: p.name)


class Done(NamedTuple):
    """What resuming needs of an input's last row: is it unchanged and finished, and its series."""

    size: int | None
    mtime_ns: int | None
    status: str
    volume_id: str | None
    series_id: str | None
    retry: bool  # the row records a crash or a lost worker (IngestTaskError): try the file again


class Journal:
    """Append-only record of finished inputs for one run directory.

    Parameters
    ----------
    run_dir
        The run directory.
    flush_every_s
        Buffered rows are written at most this many seconds after they arrive.
    """

    def __init__(self, run_dir: Path, flush_every_s: float = 5.0) -> None:
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / ".parts"
        self.flush_every_s = flush_every_s
        self._rows: list[IngestManifestRow] = []
        self._volumes: list[Any] = []
        self._last = time.monotonic()
        existing = [int(p.name.split("-")[0]) for p in row_parts(self.parts)]
        self._seq = max(existing, default=0) + 1

    # -- state of a previous run -------------------------------------------------------------------
    def state_matches(self, state: dict[str, str]) -> bool:
        """True when the previous run used the same key and archive (else its outputs are stale)."""
        path = self.run_dir / STATE
        if not path.exists():
            return not (self.run_dir / MANIFEST).exists() and not self.parts.exists()
        previous: dict[str, str] = json.loads(path.read_text())
        return previous == state

    def write_state(self, state: dict[str, str]) -> None:
        """Record the key fingerprint and archive this run directory belongs to."""
        from medmm.tables import atomic_write_json

        atomic_write_json(self.run_dir / STATE, state)

    def discard(self) -> None:
        """Forget previous results (parts and tables), e.g. after the site key changed."""
        shutil.rmtree(self.parts, ignore_errors=True)
        self.remove_finished_parts()
        for name in (MANIFEST, VOLUMES):
            (self.run_dir / name).unlink(missing_ok=True)
        self._seq = 1

    def is_fresh(self) -> bool:
        """Whether nothing of an earlier run is here to resume from: no tables, no journal parts.

        >>> import tempfile, pathlib
        >>> Journal(pathlib.Path(tempfile.mkdtemp())).is_fresh()
        True
        """
        tables = (self.run_dir / MANIFEST, self.run_dir / VOLUMES)
        return not any(p.exists() for p in tables) and not row_parts(self.parts) + volume_parts(self.parts)

    def load(self) -> tuple[dict[str, Done], dict[str, dict[str, Any]]]:
        """What resuming needs of each input (by path) and the volume records (by volume_id), from the
        last finished run plus any parts (later rows win). A few hundred bytes per input: the rows are
        read with Arrow, never as row records. A fresh run directory (no tables, no parts) returns at
        once, without importing pandas or Arrow (~0.3-0.5 s of CPU), which only the final tables need.

        >>> import tempfile, pathlib
        >>> Journal(pathlib.Path(tempfile.mkdtemp())).load()
        ({}, {})
        """
        if self.is_fresh():
            return {}, {}
        import pyarrow.compute as pc

        from medmm.ingest.merge import read_all
        from medmm.tables import read_table

        volumes: dict[str, dict[str, Any]] = {}
        if (self.run_dir / VOLUMES).exists():
            _add_volumes(volumes, read_table(self.run_dir / VOLUMES).to_dict(orient="records"))
        for part in volume_parts(self.parts):
            recs = _load_pickle(part) if part.suffix == ".pkl" else read_table(part).to_dict(orient="records")
            _add_volumes(volumes, recs)
        table = read_all(self.run_dir, self.parts)
        retry = pc.starts_with(table["reason"].cast("string"), f"{IngestTaskError.__name__}:")
        shared: dict[str | None, str | None] = {None: None}  # one string object per distinct id
        rows: dict[str, Done] = {}
        columns = [table[c].to_pylist() for c in ("size", "mtime_ns", "status", "volume_id", "series_id")]
        for path, size, mtime, status, vid, sid, again in zip(
            table["path"].to_pylist(), *columns, retry.to_pylist(), strict=True
        ):
            vid, sid = shared.setdefault(vid, vid), shared.setdefault(sid, sid)
            rows[path] = Done(size, mtime, status, vid, sid, bool(again))
        return rows, volumes

    # -- this run ---------------------------------------------------------------------------------
    def add(self, rows: Iterable[IngestManifestRow], volumes: Iterable[Any] = ()) -> None:
        """Buffer finished rows (and the volumes they point to); flushes when due."""
        self._rows.extend(rows)
        self._volumes.extend(volumes)
        if time.monotonic() - self._last >= self.flush_every_s:
            self.flush()

    def reserve(self) -> int:
        """A sequence number for parts written by tasks (this journal's own parts come after it)."""
        self.flush()
        seq, self._seq = self._seq, self._seq + 1
        return seq

    def flush(self) -> None:
        """Write buffered volumes, then rows, as the next numbered parts (atomic renames)."""
        self._last = time.monotonic()
        if not self._rows and not self._volumes:
            return
        write_part(self.run_dir, f"{self._seq:06d}", self._rows, self._volumes)
        self._seq += 1
        self._rows, self._volumes = [], []

    def finish_streamed(
        self,
        paths: Callable[[], Iterable[str]],
        volumes: Mapping[str, dict[str, Any]],
        *,
        remove_parts: bool = True,
    ) -> tuple[ManifestSummary, int]:
        """Write ``manifest.parquet`` and ``volumes.parquet`` from the journal, then drop the parts.

        The manifest holds the last row per path (one row per path; an input without any row gets a
        quarantined safety-net row), sorted by path; it is merged and written a row group at a time
        (:func:`~medmm.ingest.finalize.write_manifest`), and so is the volumes table, so the memory
        used does not grow with the archive.

        Parameters
        ----------
        paths
            Called twice; each call iterates every input of this run (files and links) once, sorted.
        volumes
            Volume records of earlier runs, by volume id (this run's are read from the journal parts).
        remove_parts
            Delete the parts (a few hundred files: the walk's spill, row and volume parts, the scan's
            header records) before returning. ``False``: they are only moved out of the journal's way
            (one rename, ``RUN_DIR/.parts.finished``) and the caller deletes them with
            :meth:`remove_finished_parts`, e.g. in a thread while it does other work; a run killed
            before that leaves them there, and :meth:`remove_finished_parts` at the next run's start
            deletes them (the tables written already hold everything they did).

        Returns
        -------
        manifest, n_volumes
            What the manifest holds (rows, counts, volume ids) and the volume records written.
        """
        from medmm.ingest.finalize import system_memory_pool, write_manifest, write_volumes

        self.flush()
        with system_memory_pool():
            summary = write_manifest(self.run_dir, self.parts, paths, self.run_dir / MANIFEST)
            n_volumes = write_volumes(self.parts, volumes, summary.volume_ids, self.run_dir / VOLUMES)
        if remove_parts:
            shutil.rmtree(self.parts, ignore_errors=True)
        elif self.parts.exists():
            self.remove_finished_parts()  # an earlier run's, left by a kill: not in the way of this one
            os.replace(self.parts, self.run_dir / FINISHED_PARTS)  # the tables hold what they held
        self._remove_orphans(set(summary.volume_ids))
        return summary, n_volumes

    def remove_finished_parts(self) -> None:
        """Delete the parts a finished run moved aside (``finish_streamed(..., remove_parts=False)``).

        >>> import tempfile, pathlib
        >>> Journal(pathlib.Path(tempfile.mkdtemp())).remove_finished_parts()
        """
        shutil.rmtree(self.run_dir / FINISHED_PARTS, ignore_errors=True)

    def _remove_orphans(self, keep: set[str]) -> None:
        """Delete volumes no manifest row points to any more, and temp files of killed writers."""
        folder = self.run_dir / "volumes"
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            name = path.name
            vid = name.split(".")[0]
            temp = (name.startswith(".") and name.endswith(".tmp.nii.gz")) or name.endswith(".tmp")
            if temp or (vid.startswith("vol-") and vid not in keep):
                path.unlink(missing_ok=True)


def _add_volumes(volumes: dict[str, dict[str, Any]], records: Iterable[dict[Any, Any]]) -> None:
    for rec in records:
        volumes[str(rec["volume_id"])] = {str(k): v for k, v in rec.items()}
