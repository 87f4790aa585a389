"""One ``medmm run`` at a time per run directory: ``RUN_DIR/.medmm-run.lock``.

A nightly run that is still busy when the next night's starts (a big export, a slow cluster), or a
person starting the workflow by hand beside cron, must not run the stages twice at once on the same
tables: the later run is refused at once, before any stage, naming the process that holds the run
directory. The lock is an ``flock``: the operating system releases it when that process ends, however
it ends (``kill -9``, the machine's OOM killer), so a killed run never blocks the next night.

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> with workflow_lock(run):
...     pass
>>> (run / LOCK_NAME).exists()
True
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medmm.errors import ConfigError

__all__ = ["LOCK_NAME", "refuse_while_running", "run_in_progress", "sweep_temp_files", "workflow_lock"]

log = logging.getLogger(__name__)

#: the lock file in the run directory (its content names the process holding it; informative only)
LOCK_NAME = ".medmm-run.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (pid, host, start time), for the refusal's message."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return f"process {info['pid']} on {info.get('host', '?')}, started {info.get('started_at', '?')}"


@contextmanager
def workflow_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s workflow lock while inside; refuse at once if another run holds it.

    Parameters
    ----------
    run_dir
        The run directory (created when missing).

    Raises
    ------
    ConfigError
        Another ``medmm run`` (or :func:`~medmm.workflows.run.run_workflow`) holds the run directory,
        or the run directory cannot be created or written (read-only share, a file in its place).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> with workflow_lock(run):
    ...     with workflow_lock(run):
    ...         pass
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: ...: another `medmm run` is working on this run directory (process ...
    """
    import fcntl

    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+", encoding="utf-8")  # not "w": the holder's details stay readable until locked
    except OSError as exc:
        raise ConfigError(
            f"{run_dir}: the run directory cannot be created or written ({exc.strerror or exc}). Fix: check "
            "the folder's permissions and free space (a read-only share, a file in its place?), or give "
            "another --out"
        ) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{run_dir}: another `medmm run` is working on this run directory ({_holder(path)}); "
                "this run did nothing. Fix: let that run finish (the next run resumes where it stops), or "
                "give this one another --out. The lock is released when that process ends, even if it is "
                "killed: no lock file needs removing"
            ) from None
        except OSError as exc:  # a filesystem without flock (NFSv3 without lockd: ENOLCK): run unlocked
            log.warning(
                "%s: the run directory cannot be locked (%s): a second `medmm run` on it would not be "
                "refused; keep the runs of this run directory on one schedule (see docs/nightly.md)",
                run_dir,
                exc.strerror or exc,
            )
            yield
            return
        try:
            fh.seek(0)
            fh.truncate()
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": started}))
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_in_progress(run_dir: Path) -> str | None:
    """Who is rewriting ``run_dir`` now (``"process PID on HOST, started TIME"``), or ``None``.

    A non-blocking shared ``flock`` on the lock file, released at once: it fails only while a
    ``medmm run`` holds the directory. Nothing is created: a run directory without a lock file (never
    run by a workflow, or a read-only copy) has no run in progress.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> run_in_progress(run) is None, (run / LOCK_NAME).exists()
    (True, False)
    >>> with workflow_lock(run):
    ...     run_in_progress(run).startswith("process ")
    True
    """
    try:
        import fcntl
    except ImportError:  # not POSIX (a run directory copied to a Windows laptop): no `medmm run` lock
        return None

    path = Path(run_dir) / LOCK_NAME
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError:  # no lock file (no workflow ever ran here) or unreadable: nothing to wait for
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        except OSError:  # a filesystem without flock: as the workflow would not lock it either
            return None
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def refuse_while_running(run_dir: Path) -> None:
    """Refuse to read ``run_dir`` while a ``medmm run`` rewrites it (its tables would mix two nights).

    Raises
    ------
    ConfigError
        A ``medmm run`` holds ``run_dir`` (:func:`run_in_progress`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> refuse_while_running(pathlib.Path(tempfile.mkdtemp()))  # no run: nothing happens
    """
    holder = run_in_progress(run_dir)
    if holder is not None:
        raise ConfigError(
            f"{run_dir}: a `medmm run` ({holder}) is rewriting this run directory; its tables are "
            "not all of one run until it finishes, so nothing was read. Fix: wait for it to finish "
            "(see docs/nightly.md), then run this command again"
        )


#: the temporary file of an atomic write (:mod:`medmm.tables`, :mod:`medmm.models.store`):
#: ``tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")`` -> ``.NAME.XXXXXXXX.tmp``
TEMP_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def sweep_temp_files(run_dir: Path, before: float, skip: Iterable[Path] = ()) -> int:
    """Remove the temporary files that atomic writes of a killed run (``kill -9``) left in ``run_dir``.

    Only regular files named as :data:`TEMP_PATTERN` and last modified before ``before`` (epoch
    seconds: the start of the run that sweeps, which holds :func:`workflow_lock`) are removed, in
    ``run_dir`` and its sub-folders (symbolic links are not followed) except the folders in ``skip``
    (the stages' inputs: an export kept inside the run directory holds the user's files). Nothing else
    is touched; a file that cannot be removed is logged and left. Returns how many were removed.

    Examples
    --------
    >>> import tempfile, pathlib, time
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / ".beats.parquet.ab12cd_x.tmp").write_bytes(b"half")
    >>> _ = (run / "notes.tmp").write_text("a user's file")
    >>> sweep_temp_files(run, time.time() + 1), sorted(p.name for p in run.iterdir())
    (1, ['notes.tmp'])
    """
    removed = 0
    skipped = {Path(p).resolve() for p in skip}
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        dirs[:] = [d for d in dirs if (Path(folder) / d).resolve() not in skipped]
        for name in files:
            if not TEMP_PATTERN.match(name):
                continue
            path = Path(folder) / name
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < before:
                    path.unlink()
                    removed += 1
            except OSError as exc:
                log.warning("could not remove %s, left by a killed run: %s", path, exc.strerror or exc)
    if removed:
        log.info("removed %d temporary files left by a killed run in %s", removed, run_dir)
    return removed
