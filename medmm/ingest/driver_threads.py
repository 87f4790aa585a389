"""Work the ingest driver hands to threads, off its critical path: deletions, the cluster's close, imports.

While the workers scan and convert, the driver's main thread mostly waits for them; at the end of a run
it writes the tables. Work that need not hold either up runs in a thread beside it:

* :class:`Janitor` deletes folders (header records, the journal's parts) in order, and is joined before
  the run returns, so a run never leaves header records (raw identifiers) behind;
* :class:`InThread` runs one function (the cluster's close) and hands its error to whoever joins it;
* :func:`import_in_background` imports the final tables' modules (:data:`TABLE_MODULES`) and reads the
  versions ``run.json`` records while the driver waits for its workers.

>>> from medmm.ingest.driver_threads import InThread
>>> InThread(lambda: None, "nothing").join()
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from medmm.runinfo import package_versions

__all__ = ["TABLE_MODULES", "InThread", "Janitor", "import_in_background"]

log = logging.getLogger(__name__)


class Janitor:
    """Delete folders in a thread, in the order given; :meth:`join` waits until all are gone.

    File deletion is cheap in CPU but can wait on a busy file system (a run's ~200 journal parts
    took 4-190 ms to delete on a shared disk): the driver hands each study/series group's header
    records over as soon as its conversion is journaled, and the journal's parts once the tables are
    written; ``ingest_archive`` joins before it returns (then deletes whatever is left itself), so a
    run never leaves header records (raw identifiers) behind.

    >>> janitor = Janitor()
    >>> janitor.delete(Path("/nonexistent/medmm-janitor-example"))  # a missing folder is no error
    >>> janitor.join()
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


class InThread:
    """Run ``fn`` in a thread now; :meth:`join` waits for it and raises what it raised.

    The end of a run closes the Dask cluster (client, workers, nannies, scheduler, the worker server:
    ~30-40 ms, mostly waiting for processes to exit; once every task's result is in, its workers have
    written their journal parts and volumes, atomically) in a thread beside the table writing and
    ``run.json`` (the journal's parts are deleted by a :class:`Janitor`); the run returns only once
    it is done (joined), so it never leaves its cluster behind.

    >>> def close() -> None:
    ...     raise RuntimeError("scheduler gone")
    >>> InThread(close, "closing").join()
    Traceback (most recent call last):
    RuntimeError: scheduler gone
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


def import_in_background(modules: Collection[str]) -> threading.Thread:
    """Import ``modules`` in a daemon thread (an import that fails is left to the code that needs it),
    then read the package versions ``run.json`` records (:func:`~medmm.runinfo.package_versions`,
    ~10-30 ms) and the pandas version the tables' metadata names (~2 ms), both kept for the process.

    While the workers start, scan and convert, the driver's main thread waits for them: work in another
    thread takes that idle time instead of adding to the serial parts of the run (the gap between the
    scan and the conversion, the write at the end). Imports hold per-module locks, so code that imports
    the same module meanwhile waits for it.

    >>> import_in_background(["json"]).join()
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
