"""Tasks submitted from a stream, a bounded number in flight: the driver never holds them all.

:func:`~medmm.workflows.cluster.run_tasks` submits a list of items at once; the scheduler (in the
driver process for a local cluster) then holds every task's arguments until it finishes. For the scan,
whose items are batches of the archive's files, :func:`run_streamed` instead pulls items from an
iterator and keeps at most ``window`` tasks submitted, so the driver's memory does not grow with the
archive.

>>> list(run_streamed(None, len, iter([]), label="scan"))
[]
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from medmm.workflows.cluster import TaskFailure, interactive, progress_bar

__all__ = ["MIN_WINDOW", "WINDOW_PER_THREAD", "run_streamed", "submit_now"]

T = TypeVar("T")
R = TypeVar("R")

#: Tasks submitted and not yet finished, at most, per worker thread (each a scan batch of up to 500 files:
#: ~25 KB of arguments, as much again in the scheduler); at least :data:`MIN_WINDOW`.
WINDOW_PER_THREAD = 8
MIN_WINDOW = 16


def submit_now(
    client: Any, fn: Callable[..., Any], items: Iterable[T], *, args: tuple[Any, ...] = (), retries: int = 2
) -> list[tuple[T, Any]]:
    """Submit ``fn(item, *args)`` for each item at once; the ``(item, future)`` pairs are for
    :func:`run_streamed`'s ``started``.

    Tasks submitted before any worker has joined wait in the scheduler, which hands them to the first
    workers as they register, in the same step: no round trip of the driver between a worker's
    arrival and its first task.

    >>> submit_now(None, len, [])
    []
    """
    return [(item, client.submit(fn, item, *args, pure=False, retries=retries)) for item in items]


def run_streamed(
    client: Any,
    fn: Callable[..., R],
    items: Iterable[T],
    *,
    label: str,
    args: tuple[Any, ...] = (),
    window: int | None = None,
    retries: int = 2,
    total: int | None = None,
    show_progress: bool | None = None,
    started: Iterable[tuple[T, Any]] = (),
) -> Iterator[tuple[T, R | TaskFailure]]:
    """Run ``fn(item, *args)`` for each item on ``client``, at most ``window`` at a time; yield
    ``(item, result)`` as they finish (a task that raises yields a :class:`TaskFailure`).

    Parameters
    ----------
    client
        A ``distributed.Client``.
    fn, items, args
        The task function, its items (pulled as tasks finish) and extra arguments (small: sent with
        every task).
    window
        Tasks in flight at most (default: :data:`WINDOW_PER_THREAD` per worker thread of the cluster,
        at least :data:`MIN_WINDOW`).
    retries
        Dask retries of a task whose worker died.
    total
        Number of items, for the progress bar.
    show_progress
        Progress bar on stderr (default: when stderr is a terminal or ``MEDMM_PROGRESS`` is set).
    started
        Tasks of earlier items submitted already (:func:`submit_now`): they count in the window and
        their results are yielded like the others'.

    >>> list(run_streamed(None, len, [], label="x"))
    []
    """
    it = iter(items)
    early = list(started)
    first = next(it, _END)
    if first is _END and not early:
        return
    if first is not _END:
        it = itertools.chain([first], it)
    from distributed import as_completed

    from medmm.workflows.external import task_result

    if show_progress is None:
        show_progress = interactive()
    if window is None:
        window = max(MIN_WINDOW, WINDOW_PER_THREAD * sum(client.nthreads().values()))
    pending: dict[str, T] = {}
    done = as_completed()
    for item, fut in early:
        pending[fut.key] = item
        done.add(fut)

    def submit(item: T) -> None:
        fut = client.submit(fn, item, *args, pure=False, retries=retries)
        pending[fut.key] = item
        done.add(fut)

    while len(pending) < window:  # the rest go as tasks finish
        nxt = next(it, _END)
        if nxt is _END:
            break
        submit(nxt)
    progress = progress_bar(label, total) if show_progress else None  # rich only for the bar
    with progress or contextlib.nullcontext():
        for fut in done:
            item = pending.pop(fut.key)
            result: R | TaskFailure = task_result(fut)  # a lost cluster raises (ClusterError)
            fut.release()
            nxt = next(it, _END)
            if nxt is not _END:
                submit(nxt)
            if progress is not None:
                progress.advance(progress.task_ids[0])
            yield item, result


_END: Any = object()
