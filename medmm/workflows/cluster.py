"""Open a Dask client (local cluster or existing scheduler) and map stage functions with progress.

Stage functions are plain functions over small picklable records. :func:`run_tasks` submits one task
per item, shows a progress bar, and yields results as they complete; an exception inside one task is
yielded as a :class:`TaskFailure` instead of killing the run. Tasks lost with a killed worker are
re-run by Dask (``retries``), so nothing is lost or duplicated as long as stage functions write their
outputs atomically under deterministic names.

>>> from medmm.workflows import dask_client, run_tasks
>>> with dask_client(workers=1, processes=False) as client:  # doctest: +SKIP
...     print(sorted(r for _, r in run_tasks(client, abs, [-1, -2], label="abs")))
[1, 2]
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # rich's progress bars are imported when a run shows them (~0.01-0.02 s)
    from rich.console import Console

__all__ = [
    "LOCAL_CLUSTER_CONFIG",
    "LOCAL_QUIET_CONFIG",
    "TaskFailure",
    "dask_client",
    "interactive",
    "progress_bar",
    "run_tasks",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskFailure:
    """An exception raised inside one task (or the task was lost), as a value."""

    exception: BaseException

    @property
    def reason(self) -> str:
        from medmm.errors import reason_of

        return reason_of(self.exception)


#: Dask settings :func:`dask_client` applies to the local clusters it starts unless
#: ``worker_profile=True``: no statistical profiler in the workers (a stack sample of every thread
#: every 10 ms and a new profile every second).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False}

#: Dask intervals :func:`dask_client` applies to every local cluster it starts: the event-loop tick
#: every 200 ms instead of 20 ms, the memory monitor (a ``psutil`` call per worker) every 500 ms
#: instead of 100 ms and psutil's system monitor every 5 s instead of 0.5 s, in the scheduler and
#: nannies (in the driver, on the cores the workers use) and in each worker. An idle 2-worker cluster
#: spends 54-63 ms of CPU per second with Dask's defaults, 11-13 ms with these (tick ~30 ms/s, memory
#: monitor ~10-15, system monitor ~8); the dashboard's system plots update every 5 s.
LOCAL_QUIET_CONFIG: dict[str, Any] = {
    "distributed.admin.tick.interval": "200ms",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
}


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def interactive() -> bool:
    """Whether to show progress bars and the dashboard: stderr is a terminal or ``MEDMM_PROGRESS`` is set.

    >>> interactive() in (True, False)
    True
    """
    return sys.stderr.isatty() or bool(os.environ.get("MEDMM_PROGRESS"))


def progress_bar(label: str, total: int | None) -> Any:
    """A rich progress bar on stderr holding one task, ``label``, of ``total`` steps (rich imported
    only here: ~30 ms that unattended runs do not pay).

    >>> bar = progress_bar("scan", 10)
    >>> bar.advance(bar.task_ids[0])
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr_console(),
        transient=False,
    )
    progress.add_task(label, total=total)
    return progress


def _note(text: str) -> None:
    """Print a dim line on stderr: with rich on a terminal, as plain text otherwise (rich renders no
    style there, and unattended runs skip its import: ~25 ms of CPU)."""
    if sys.stderr.isatty():
        _stderr_console().print(text, style="dim", markup=False)
    else:
        print(text, file=sys.stderr, flush=True)


@contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    threads_per_worker: int = 1,
    processes: bool = True,
    memory_limit: str | int = "auto",
    quiet: bool = False,
    wait_for_workers: bool = True,
    fast_close: bool = False,
    malloc_trim: bool = True,
    dashboard: bool | None = None,
    worker_preload: Sequence[str] | None = None,
    worker_profile: bool = False,
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` when given, else to a new local cluster.

    Parameters
    ----------
    workers
        Local worker processes (default: CPU count, at most 4). Given with ``scheduler``: a
        :class:`~medmm.errors.ConfigError` (an existing cluster has its own workers).
    scheduler
        Address of an existing scheduler (``tcp://host:8786``), e.g. one started by dask-jobqueue
        on SLURM or by dask-kubernetes.
    processes
        Use worker processes (default) or threads (for notebooks/tests with tiny inputs).
    quiet
        Do not print the dashboard address.
    wait_for_workers
        With a local cluster, yield the client only once every worker process has started (default).
        ``False`` yields it as soon as the scheduler runs and starts the workers in the background: tasks
        submitted meanwhile wait for them, and the caller can do its own work while they start
        (``client.nthreads()`` lists the workers that have joined so far).
    fast_close
        On leaving, stop a local cluster's worker processes with SIGTERM instead of asking each to
        close and waiting for it (~0.1-0.8 s). Only for callers whose results are all in hand and whose
        workers write outputs atomically, so that a worker stopped mid-task leaves nothing half-written.
    malloc_trim
        Keep Dask's ``MALLOC_TRIM_THRESHOLD_`` for local worker processes (default), which makes glibc
        hand every freed block over 64 KB back to the OS and map large buffers afresh each time (page
        faults on every large array). ``False`` leaves glibc's adaptive default, for stages whose
        workers are bounded by one task's working set and reuse their large buffers (about 25% less
        CPU per converted slice in ``medmm ingest``).
    dashboard
        Start the Dask dashboard of a local cluster and print its address. ``None`` (default): when
        stderr is a terminal or ``MEDMM_PROGRESS`` is set, like the progress bars; unattended runs skip
        it (it imports bokeh, ~0.3 s of CPU). An existing scheduler's dashboard is always printed.
    worker_preload
        Modules the tasks import. When given, a local cluster's worker processes are forked from one
        server process that imports them (and distributed) once, instead of each worker being a new
        interpreter that imports them itself (:mod:`medmm.workflows.forkserver`; ~0.3-0.6 s of CPU
        saved per worker). ``None``: Dask's default (``spawn``).
    worker_profile
        Keep Dask's statistical profiler in a local cluster's workers (the dashboard's "Profile"
        page). Off by default (:data:`LOCAL_CLUSTER_CONFIG`): it samples every worker thread's stack
        every 10 ms, which cost ~5-15% of the workers' CPU in medmm's stages. Set through the
        configuration the nannies hand their workers, so spawned and forked workers both get it.
        Ignored with ``scheduler`` (that cluster's own configuration applies).

    With ``scheduler``, the client is yielded once the cluster has a worker and every worker runs this
    medmm and the same releases of Python and the data packages
    (:mod:`medmm.workflows.external`; a :class:`~medmm.workflows.external.ClusterError` otherwise).

    A local cluster also gets Dask's periodic work less often (:data:`LOCAL_QUIET_CONFIG`), and its
    client sees workers join without polling the scheduler (``client.wait_for_workers``).
    """
    import dask
    from distributed import Client, LocalCluster  # before dask.config.set: distributed's defaults

    if workers and scheduler:
        from medmm.errors import ConfigError

        raise ConfigError(
            f"--workers {workers} and --scheduler {scheduler} both given: --workers sizes a local cluster, "
            "an existing cluster has its own workers. Fix: give only one of them"
        )
    if dashboard is None:
        dashboard = interactive()

    if not logging.getLogger().isEnabledFor(logging.INFO):  # keep distributed's INFO chatter out of CLIs
        logging.getLogger("distributed").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:  # the worker server (if any) stops after the cluster
        if scheduler:
            client, cluster = _connect(Client, scheduler), None
            stack.callback(client.close)  # also when its workers fail the checks below
            _check_external(client, scheduler)
        else:
            n = workers or max(1, min(4, os.cpu_count() or 1))
            # read by the scheduler and each nanny when they are made (also by cluster.scale later)
            stack.enter_context(dask.config.set(LOCAL_QUIET_CONFIG))
            if not worker_profile:
                stack.enter_context(dask.config.set(LOCAL_CLUSTER_CONFIG))
            extra: dict[str, Any] = {}
            if processes and not malloc_trim:
                extra["worker_class"] = _nanny_without_malloc_trim()
            if processes and worker_preload is not None:
                stack.enter_context(_forked_workers(worker_preload, malloc_trim))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n if wait_for_workers else 0,
                    threads_per_worker=threads_per_worker,
                    processes=processes,
                    memory_limit=memory_limit,
                    dashboard_address=":0",  # Dask's HTTP routes (health, metrics) on a free port
                    scheduler_kwargs={"dashboard": dashboard},  # the bokeh dashboard on request only
                    silence_logs=logging.ERROR,
                    **extra,
                )
            )
            client = _local_client_class()(cluster)
            client._medmm_scheduler = getattr(cluster, "scheduler", None)  # in this process
            if not wait_for_workers:
                cluster.scale(n)  # returns at once; the worker processes start in the background
        if not quiet:
            where = scheduler or f"local cluster, {n} workers"
            board = (
                f"dashboard {client.dashboard_link}"
                if cluster is None or dashboard
                else "dashboard off (--dashboard)"
            )
            _note(f"dask: {where}; {board}")
        try:
            yield client
        finally:
            client.close()
            if cluster is not None and fast_close and processes:
                _stop_worker_processes(cluster)


@contextmanager
def _forked_workers(preload: Sequence[str], malloc_trim: bool) -> Iterator[None]:
    """Local workers forked from a server that imported ``preload``; the server stops on leaving."""
    import dask

    from medmm.workflows.forkserver import start_worker_server, stop_worker_server

    if not start_worker_server(preload, malloc_trim=malloc_trim):
        log.debug("a forkserver with other settings runs: workers are spawned")
        yield
        return
    try:
        with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
            yield
    finally:
        stop_worker_server()


#: how often a local cluster's client looks at its scheduler's workers while it waits for them
LOCAL_WAIT_POLL_S = 0.005


@functools.cache
def _local_client_class() -> type:
    """A ``distributed.Client`` for a local cluster whose scheduler runs in this process.

    ``Client.wait_for_workers`` (through ``LocalCluster.wait_for_workers``) asks the scheduler for its
    workers every 0.1 s: a worker that joins just after a look is seen up to 0.1 s late, on the
    critical path of a short run (measured: 85 ms between a worker's registration and the end of the
    wait at ``medmm ingest``'s start). This one reads the scheduler's worker states directly every
    ``LOCAL_WAIT_POLL_S`` on the event loop they share (no message), then looks once as ``Client``
    does (same views, same errors); without a scheduler in this process it is ``Client``'s wait.
    """
    import asyncio
    import time

    from distributed import Client
    from distributed.core import Status
    from distributed.exceptions import WorkerStartTimeoutError

    class LocalClusterClient(Client):
        _medmm_scheduler: Any = None

        def wait_for_workers(self, n_workers: int, timeout: float | None = None) -> None:
            if self._medmm_scheduler is not None and isinstance(n_workers, int) and n_workers >= 1:
                self.sync(self._wait_local, n_workers, timeout)
            super().wait_for_workers(n_workers, timeout)  # one look now: the views and errors as before

        async def _wait_local(self, n_workers: int, timeout: float | None) -> None:
            from dask.utils import parse_timedelta

            scheduler = self._medmm_scheduler
            limit = parse_timedelta(timeout) if timeout else None
            deadline = None if limit is None else time.monotonic() + limit

            def running() -> int:
                return sum(ws.status == Status.running for ws in list(scheduler.workers.values()))

            while running() < n_workers:
                if limit is not None and deadline is not None and time.monotonic() > deadline:
                    raise WorkerStartTimeoutError(running(), n_workers, limit)
                await asyncio.sleep(LOCAL_WAIT_POLL_S)

    return LocalClusterClient


_TRIM = "MALLOC_TRIM_THRESHOLD_"


def _nanny_without_malloc_trim() -> type:
    """A ``distributed.Nanny`` that starts its worker without Dask's ``MALLOC_TRIM_THRESHOLD_``."""
    import dask
    from distributed import Nanny

    dask_value = str(dask.config.get(f"distributed.nanny.pre-spawn-environ.{_TRIM}", ""))

    class AdaptiveMallocNanny(Nanny):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.pre_spawn_env.pop(_TRIM, None)
            self.env.pop(_TRIM, None)
            if dask_value and os.environ.get(_TRIM) == dask_value:  # put there by an earlier nanny
                os.environ.pop(_TRIM)

    return AdaptiveMallocNanny


def _stop_worker_processes(cluster: Any) -> None:
    """SIGTERM every worker process of a local cluster; their nannies then close without waiting."""
    import signal

    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(getattr(nanny, "process", None), "pid", None)
        if not isinstance(pid, int):
            continue
        nanny.auto_restart = False  # a stopped worker is not replaced
        with contextlib.suppress(OSError):  # already gone
            os.kill(pid, signal.SIGTERM)


def run_tasks(
    client: Any,
    fn: Callable[..., R],
    items: Sequence[T],
    *,
    label: str,
    args: tuple[Any, ...] = (),
    retries: int = 2,
    show_progress: bool | None = None,
    unfetched: type | None = None,
    pause_gc: bool = False,
) -> Iterator[tuple[int, R | TaskFailure | None]]:
    """Run ``fn(item, *args)`` for each item on ``client``; yield ``(index, result)`` as they finish.

    A task that raises yields ``(index, TaskFailure)``; the other tasks go on. A task whose worker
    died is run again on another one (Dask's ``distributed.scheduler.allowed-failures``: 3 deaths,
    then a ``KilledWorker`` failure). Losing the scheduler raises a
    :class:`~medmm.workflows.external.ClusterError` (the inputs are not at fault), as does a task
    cancelled by the cluster. ``args`` are scattered once to a local cluster (e.g. a pseudonymizer or
    settings) rather than pickled into every task; on an existing cluster each task carries them.

    ``unfetched``: a result of this type is not fetched from its worker (its type comes with the
    task's completion), and ``None`` is yielded instead - for acknowledgements the driver does not
    read (e.g. "this worker wrote its part itself"): no round trip per task (~0.7 ms of the driver's
    CPU, and the worker's event loop answering it). ``pause_gc``: this process's cyclic GC is off
    while the tasks run (the youngest generation is collected every 64 tasks), restored afterwards: a
    local cluster's scheduler and nannies run on this process's event loop, and a full collection of
    a driver holding large inputs (~0.15 s) stops them while the workers wait for their next task
    (seen in ~1 of 10 reports parse phases: 0.67 s of wall on a loaded machine).
    """
    if not items:
        return
    if show_progress is None:
        show_progress = interactive()
    # hash=False: a fresh key per call, so releasing an earlier run's copy never cancels this run's tasks
    # on an existing cluster every task carries its arguments: a scattered copy dies with the workers
    # holding it (a batch job ending), and every task still waiting for it would be cancelled
    scatter = getattr(client, "_medmm_external", None) is None
    shared = [client.scatter(a, broadcast=True, hash=False) if scatter and _is_big(a) else a for a in args]
    futures = client.map(fn, list(items), *[[a] * len(items) for a in shared], pure=False, retries=retries)
    completed = _completed(futures, unfetched, pause_gc, client)
    if not show_progress:  # rich only for the bars
        yield from completed
        return
    with progress_bar(label, len(futures)) as progress:
        for i, result in completed:
            progress.advance(progress.task_ids[0])
            yield i, result


def _completed(
    futures: list[Any], unfetched: type | None, pause_gc: bool, client: Any = None
) -> Iterator[tuple[int, Any]]:
    """``(index, result or TaskFailure)`` of ``futures`` as they complete; each is released once read
    (see :func:`run_tasks` for ``unfetched`` and ``pause_gc``). On an existing cluster, a cluster left
    without workers is an error after a while (:func:`~medmm.workflows.external.completed_watched`)."""
    import gc

    from distributed import as_completed

    from medmm.workflows.external import completed_watched, task_result

    external = getattr(client, "_medmm_external", None)
    stream = completed_watched(futures, client, external) if external else as_completed(futures)

    index = {f.key: i for i, f in enumerate(futures)}
    enabled = gc.isenabled()
    if pause_gc:
        gc.disable()
    try:
        for k, fut in enumerate(stream, 1):
            result: Any = None
            if unfetched is None or fut.status != "finished" or fut.type is not unfetched:
                result = task_result(fut)  # a lost scheduler raises: nothing is quarantined for it
            fut.release()
            if pause_gc and k % 64 == 0:  # the youngest objects only: cyclic garbage stays bounded
                gc.collect(0)
            yield index[fut.key], result
    finally:
        if pause_gc and enabled:
            gc.enable()


def _check_external(client: Any, address: str) -> None:
    """Wait for a worker of the existing cluster at ``address`` and check its versions (the workers'
    facts are kept on the client for later messages)."""
    from medmm.workflows.external import check_versions, wait_for_workers

    wait_for_workers(client, address)
    client._medmm_worker_facts = check_versions(client, address)
    client._medmm_external = address


def _connect(client_type: Any, address: str) -> Any:
    """``client_type(address)``, a scheduler that cannot be reached being a :class:`ConfigError` that
    names the address and the fix (Dask's ``OSError`` after its connect timeout,
    ``distributed.comm.timeouts.connect``, 30 s by default)."""
    from medmm.errors import ConfigError

    try:
        return client_type(address)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {address!r} ({type(exc).__name__}: {exc}). Fix: check "
            "the address (e.g. tcp://host:8786) and that the scheduler is running and reachable from "
            "this machine, or leave --scheduler out to use a local cluster"
        ) from exc


def _is_big(obj: Any) -> bool:
    """Scatter objects that are not trivially small to pickle."""
    return not isinstance(obj, (int, float, str, bytes, bool, type(None)))
