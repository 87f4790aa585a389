"""The Dask cluster of one ``medmm ingest`` run, seen from the driver: start it, and wait for workers.

A run either uses the client or scheduler it is given, or starts a local cluster (:func:`cluster_client`)
whose workers are forked from a worker server that the command launched as it started
(:func:`early_worker_server`), so that their imports overlap the driver's walk and start-up. A local
cluster's workers join a few tenths of a second after it starts: :func:`n_workers` tells how many have,
:func:`await_worker` waits for the first one with a clear error instead of forever.

>>> from medmm.ingest.run_cluster import cluster_client, n_workers
>>> with cluster_client(None, 1, None, processes=False, dashboard=False) as client:  # doctest: +SKIP
...     n_workers(client)
1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from medmm.ingest.workers import WORKER_MODULES, start_workers_early
from medmm.workflows.cluster import dask_client
from medmm.workflows.forkserver import stop_worker_server

__all__ = [
    "DASK_LOG_LENGTH",
    "WORKER_START_TIMEOUT_S",
    "await_worker",
    "cluster_client",
    "early_worker_server",
    "n_workers",
]

#: Entries of Dask's developer logs kept by a local cluster started here (scheduler transitions,
#: events, each comm's recent messages; Dask's default is 1,000): a message that submits a scan task
#: holds its batch's paths, so 1,000 of them held ~10 MB of the driver's memory.
DASK_LOG_LENGTH = 100


@contextmanager
def cluster_client(
    client: Any, workers: int | None, scheduler: str | None, processes: bool, dashboard: bool
) -> Iterator[Any]:
    """``client`` itself when given, else a client of ``scheduler`` or of a new local cluster.

    A local cluster does not wait for its workers (they join while the driver walks the archive and
    scans the first batches), closes fast, keeps glibc's adaptive malloc in its workers, preloads
    :data:`~medmm.ingest.workers.WORKER_MODULES` and keeps :data:`DASK_LOG_LENGTH` log entries.

    >>> with cluster_client(None, 1, None, processes=False, dashboard=False) as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
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
def early_worker_server(local: bool) -> Iterator[None]:
    """With a local cluster, launch its workers' server at once: it imports their modules while the
    driver walks the archive, loads the journal and starts the scheduler. It is stopped on leaving
    when the run never used it (nothing to do, or an error); the cluster stops it otherwise.

    >>> with early_worker_server(local=False):  # another cluster's workers: nothing to launch
    ...     pass
    """
    if not local:
        yield
        return
    start_workers_early()  # already running when the command started it
    try:
        yield
    finally:
        stop_worker_server()  # a no-op when the cluster has stopped it already


def n_workers(client: Any) -> int:
    """Worker threads that have joined the cluster so far (0 while a local cluster starts).

    >>> n_workers(client)  # doctest: +SKIP
    2
    """
    return sum(client.nthreads().values())


#: how long tasks wait for the first worker of a cluster that is still starting
WORKER_START_TIMEOUT_S = 120.0


def await_worker(client: Any) -> None:
    """Return once a worker has joined; a clear error instead of waiting forever for one that fails.

    Raises
    ------
    medmm.errors.ConfigError
        When no worker joined within :data:`WORKER_START_TIMEOUT_S`.

    >>> await_worker(client)  # doctest: +SKIP
    """
    if n_workers(client):
        return
    try:
        client.wait_for_workers(1, timeout=WORKER_START_TIMEOUT_S)
    except TimeoutError as exc:
        from medmm.errors import ConfigError

        raise ConfigError(
            f"no Dask worker joined within {WORKER_START_TIMEOUT_S:.0f} s; check the worker logs above, "
            f"or start a cluster yourself and pass --scheduler"
        ) from exc
