"""Checks for an existing Dask cluster (``--scheduler``): its workers are other processes, often on other
machines, started by someone else (SLURM, Kubernetes), in another folder and environment.

What a stage needs from such workers, checked before any task runs, each failure a
:class:`ClusterError` that names the worker (address and host) and what to fix:

* at least one worker (:func:`wait_for_workers`: a scheduler without workers would hold the tasks
  forever);
* the same medmm and, release for release (major.minor), the same Python and data packages as this
  process (:func:`check_versions`: a worker with another medmm could write other results into the
  same run directory without any error; Dask itself only warns, and only about its own packages);
* the input and run folders at the same absolute paths, readable / writable, and the site key file
  (:func:`check_paths`, :mod:`medmm.workflows.worker_key`): a worker that cannot see them would
  otherwise fail every task, and every input would be quarantined for a reason that is not the
  input's.

:func:`task_result` tells a task's own failure (quarantine the input) from the loss of the scheduler
(stop the run with a :class:`ClusterError`: the inputs are fine, a re-run resumes).

>>> same_release("3.11.7", "3.11.9"), same_release("2.2.3", "2.3.0")
(True, False)
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from medmm.errors import MedmmError

__all__ = [
    "WORKER_WAIT_S",
    "ClusterError",
    "check_paths",
    "check_versions",
    "completed_watched",
    "same_release",
    "task_result",
    "wait_for_workers",
    "worker_facts",
]

log = logging.getLogger(__name__)

#: How long a run waits for the first worker of an existing cluster (a batch queue may hold the
#: workers' jobs for a while). Dask configuration ``medmm.worker-wait`` overrides it, e.g. the
#: environment variable ``DASK_MEDMM__WORKER_WAIT="1 hour"``.
WORKER_WAIT_S = 600.0

#: Packages compared release for release (major.minor) between this process and every worker; medmm
#: itself must be the very same version.
COMPARED = ("python", "numpy", "pandas", "pyarrow", "pydantic", "dask", "distributed", "pydicom",
            "nibabel", "wfdb", "scipy", "spacy")  # fmt: skip


class ClusterError(MedmmError):
    """The Dask cluster cannot run the stage (no worker, a worker that cannot see a path or runs other
    versions, the scheduler lost); the message names the worker or address and the fix."""


def same_release(a: str, b: str) -> bool:
    """Whether two version strings share their major and minor numbers.

    >>> same_release("1.26.4", "1.26.0"), same_release("1.26.4", "2.0.0")
    (True, False)
    """
    return a.split(".")[:2] == b.split(".")[:2]


def worker_facts() -> dict[str, Any]:
    """What :func:`check_versions` compares, as this process sees it (run on each worker).

    >>> facts = worker_facts()
    >>> sorted(facts)[:3], facts["medmm"] == __import__("medmm").__version__
    (['dask', 'distributed', 'host'], True)
    """
    import medmm
    from medmm.runinfo import package_versions

    versions = package_versions()
    facts: dict[str, Any] = {k: versions[k] for k in COMPARED if k in versions}
    facts["medmm"] = medmm.__version__  # the imported one: an old copy on the workers' path shows here
    facts["host"] = socket.gethostname()
    return facts


def _where(address: str, facts: Mapping[str, Any] | None) -> str:
    host = (facts or {}).get("host")
    return f"worker {address}" + (f" (host {host})" if host else "")


def worker_wait_s() -> float:
    """Seconds to wait for a worker: Dask configuration ``medmm.worker-wait`` or :data:`WORKER_WAIT_S`.

    >>> worker_wait_s() > 0
    True
    """
    import dask
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("medmm.worker-wait", WORKER_WAIT_S), "s") or 0)


def wait_for_workers(client: Any, address: str, timeout: float | None = None) -> None:
    """Return once the cluster at ``address`` has a worker; :class:`ClusterError` after ``timeout``
    seconds (default: Dask configuration ``medmm.worker-wait``, else :data:`WORKER_WAIT_S`).

    >>> wait_for_workers(client, "tcp://head:8786", timeout=60)  # doctest: +SKIP
    """
    if client.scheduler_info(n_workers=1).get("workers"):
        return
    if timeout is None:
        timeout = worker_wait_s()
    log.warning("the Dask scheduler at %s has no worker yet: waiting up to %.0f s", address, timeout)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as exc:
        raise ClusterError(
            f"the Dask scheduler at {address} has had no worker for {timeout:.0f} s. Fix: start workers "
            f"(`dask worker {address}`, or your SLURM/Kubernetes cluster's scale/adapt), or wait longer "
            "with DASK_MEDMM__WORKER_WAIT (e.g. '1 hour'); see docs/cluster.md"
        ) from exc


def check_versions(client: Any, address: str) -> dict[str, dict[str, Any]]:
    """Compare :func:`worker_facts` of every worker with this process's; returns them by worker.

    Raises
    ------
    ClusterError
        A worker cannot import medmm, runs another medmm version, or another major.minor release of
        Python or of a package in :data:`COMPARED` (where both have it).

    >>> check_versions(client, "tcp://head:8786")  # doctest: +SKIP
    {'tcp://10.0.0.5:40123': {'medmm': '0.1.0', 'python': '3.11.7', ...}}
    """
    mine = worker_facts()
    answers = client.run(worker_facts, on_error="return")
    problems: list[str] = []
    for worker, facts in sorted(answers.items()):
        if isinstance(facts, BaseException):
            problems.append(
                f"{_where(worker, None)} cannot run medmm ({type(facts).__name__}: {facts}); install this "
                f"medmm ({mine['medmm']}) in the workers' environment"
            )
            continue
        diff = [
            f"{name} {facts.get(name)} (here {mine[name]})"
            for name in ("medmm", *COMPARED)
            if name in mine
            and facts.get(name) not in (None, "absent")
            and mine[name] != "absent"
            and not (facts[name] == mine[name] if name == "medmm" else same_release(facts[name], mine[name]))
        ]
        if diff:
            problems.append(f"{_where(worker, facts)} runs {', '.join(diff)}")
    if problems:
        raise ClusterError(
            f"the Dask cluster at {address} does not run this medmm's versions: {'; '.join(problems)}. "
            "Fix: start the workers from the same environment as this command (same medmm version, "
            "same major.minor releases of Python and of these packages), e.g. the same container image "
            "or conda environment"
        )
    return {w: f for w, f in answers.items() if not isinstance(f, BaseException)}


def _probe(read: list[str], write: list[str]) -> list[str]:
    """On a worker: the problems it has with ``read`` folders/files and ``write`` folders."""
    problems = []
    for path in read:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            problems.append(f"cannot see {path} (no such file or folder here)")
            continue
        except OSError as exc:  # e.g. a folder above it that this user may not enter
            problems.append(f"cannot see {path} ({exc.strerror or exc} for uid {os.getuid()})")
            continue
        if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
            problems.append(f"cannot read {path} (permission denied for uid {os.getuid()})")
    for path in write:
        probe = os.path.join(path, f".medmm-write-check-{socket.gethostname()}-{os.getpid()}")
        try:
            with open(probe, "w"):
                pass
            os.unlink(probe)
        except OSError as exc:
            problems.append(f"cannot write in {path} ({exc.strerror or exc}, uid {os.getuid()})")
    return problems


def check_paths(
    client: Any, address: str, *, read: Iterable[Path | str] = (), write: Iterable[Path | str] = ()
) -> None:
    """Check that every worker sees ``read`` (inputs) and can write in ``write`` (the run directory),
    at the same absolute paths as this process.

    Relative paths are made absolute here first (a worker runs in its own folder: a relative path
    would name another file there).

    Raises
    ------
    ClusterError
        Naming each worker, its host and the path it cannot use.

    >>> check_paths(client, "tcp://h:8786", read=["/data/archive"], write=["/data/runs/r1"])  # doctest: +SKIP
    """
    reads = [str(Path(p).resolve()) for p in read]
    writes = [str(Path(p).resolve()) for p in write]
    answers = client.run(_probe, reads, writes, on_error="return")
    hosts = {w: f.get("host") for w, f in getattr(client, "_medmm_worker_facts", {}).items()}
    problems = [
        f"{_where(worker, {'host': hosts.get(worker)})}: "
        + ("; ".join(found) if isinstance(found, list) else f"{type(found).__name__}: {found}")
        for worker, found in sorted(answers.items())
        if not isinstance(found, list) or found
    ]
    if problems:
        raise ClusterError(
            f"workers of the Dask cluster at {address} cannot use this run's files: {' | '.join(problems)}. "
            "Fix: run the workers on the filesystem this process uses, shared at the same absolute paths "
            "(inputs readable by the workers' user, the run directory writable); see docs/cluster.md"
        )


#: how often :func:`completed_watched` looks at the cluster's workers while no task finishes
WATCH_S = 1.0


def completed_watched(futures: list[Any], client: Any, address: str) -> Iterator[Any]:
    """``futures`` as they complete (as ``distributed.as_completed``), on an existing cluster whose
    workers may all go away (a batch job's time limit, a node drained): when it has had no worker for
    :func:`worker_wait_s`, a :class:`ClusterError` instead of waiting forever.

    >>> for future in completed_watched(futures, client, "tcp://head:8786"):  # doctest: +SKIP
    ...     print(future.key)
    """
    import time

    from distributed import as_completed

    done = as_completed(futures)
    looked = time.monotonic()
    since: float | None = None  # when the cluster was first seen without workers
    while not done.is_empty():
        if done.has_ready():
            yield next(done)
            continue
        with done.thread_condition:
            done.thread_condition.wait(timeout=0.1)
        now = time.monotonic()
        if now - looked < WATCH_S or done.has_ready():
            continue
        looked = now
        if client.nthreads():
            since = None
        elif since is None:
            since = now
            log.warning("the Dask cluster at %s has no worker left: waiting for one", address)
        elif now - since > worker_wait_s():
            raise ClusterError(
                f"every worker of the Dask cluster at {address} left while tasks were running, and none "
                f"joined within {worker_wait_s():.0f} s (e.g. the workers' batch jobs reached their time "
                "limit). Nothing was quarantined for it: finished inputs are saved, and running the same "
                "command again resumes. Fix: start workers again (longer job time limits), or wait longer "
                "with DASK_MEDMM__WORKER_WAIT"
            )


def task_result(future: Any) -> Any:
    """``future.result()``; a task's own exception as a :class:`~medmm.workflows.cluster.TaskFailure`
    (its input is quarantined), a task cancelled by the cluster - the scheduler lost, or data it needs
    lost with its workers - as a :class:`ClusterError` (raised: the run stops, nothing is quarantined
    for it; medmm never cancels its own tasks).

    >>> task_result(future)  # doctest: +SKIP
    """
    from distributed.client import FutureCancelledError

    from medmm.workflows.cluster import TaskFailure

    try:
        return future.result()
    except FutureCancelledError as exc:
        address = getattr(getattr(future.client, "scheduler", None), "address", "the scheduler")
        what = (
            f"lost the connection to the Dask scheduler at {address} while tasks were running"
            if exc.reason == "scheduler-connection-lost"
            else f"the Dask cluster at {address} cancelled a task ({exc.reason}: e.g. data it needed was "
            "lost with the workers holding it)"
        )
        raise ClusterError(
            f"{what}. Nothing was quarantined for it: finished inputs are saved, and running the same "
            "command again resumes. Fix: check the scheduler and the workers (their logs; the network "
            "between them and this machine), then run again"
        ) from exc
    except Exception as exc:  # one bad task never kills the run
        return TaskFailure(exc)
