"""The Dask side of ``medmm reports parse``: task items, task sizes, the task function and worker set-up.

A task gets a :class:`Work` item (a batch of reports as columns: ids, texts, known sections, paths and
resume keys; cheap to pickle), or the path of a scratch file holding one (:func:`stage`), parses it
with :func:`~medmm.reports.pipeline.parse_columns` and, when its worker sees the run directory, writes
the resumable part itself (:func:`parse_to_part`). Task sizes shrink towards the end of the run
(:func:`plan_sizes`) so that the workers finish together.

>>> plan_sizes(10_236, 2)
[2559, 2559, 1280, 1280, 640, 640, 639, 639]
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmm.reports.io.inputs import ReportInput
from medmm.reports.nlp import PipelineSpec, get_pipeline

__all__ = [
    "TASK_LIMITS",
    "PartWritten",
    "Work",
    "cpu_seconds",
    "parse_to_part",
    "plan_sizes",
    "profiler",
    "run_parse",
    "sees_marker",
    "stage",
    "warm",
]

#: Smallest and largest number of reports in a task planned by :func:`plan_sizes`: each task costs
#: ~2 ms in its worker beyond its reports (pipe start, tables, part files), ~1-2 ms of Dask's hand-off
#: in the worker and ~0.6 ms in the driver (scheduler and client messages, on the same cores), so the
#: last round stays at ~400 reports (~0.1 s); the docs are streamed, so a large task holds only its
#: small token arrays. A finer last round did not pay (10,236 reports, 2 workers, alternating runs:
#: minimum 100/150/200/250 -> 10-12 tasks, phase wall median 1.319-1.514 s vs 1.320-1.473 s with 400,
#: workers' CPU +10-40 ms): with one task queued per worker the last tasks are placed one task ahead.
TASK_LIMITS = (400, 5000)


@dataclass(frozen=True)
class Work:
    """One task's reports as columns (lists of strings pickle several times cheaper than records)."""

    ids: list[str]
    texts: list[str]
    sections: list[list[tuple[str, int, int, int]] | None]
    paths: list[str]
    keys: list[str]

    @classmethod
    def of(cls, batch: list[ReportInput], keys: list[str]) -> Work:
        """The columns of ``batch``; ``keys`` are its reports' resume keys, in order.

        >>> Work.of([ReportInput("1", "x#1", "csv", "No effusion.", 12)], ["k"]).texts
        ['No effusion.']
        """
        return cls(
            [r.report_id for r in batch],
            [r.text for r in batch],
            [r.sections for r in batch],
            [r.path for r in batch],
            list(keys),
        )


@dataclass(frozen=True)
class PartWritten:
    """What a task sends back when it wrote its part itself: the part's name and report count."""

    name: str
    n_reports: int


def plan_sizes(n_reports: int, n_workers: int, limits: tuple[int, int] = TASK_LIMITS) -> list[int]:
    """Reports per task, in submission order: rounds of ``n_workers`` equal tasks, each round taking half
    of what is left (*factoring*), within ``limits``; the last, small tasks even out the workers' finish.

    >>> plan_sizes(2_000, 2), plan_sizes(100, 2), plan_sizes(0, 2)
    ([500, 500, 500, 500], [100], [])
    """
    lo, hi = limits
    n_workers = max(1, n_workers)
    sizes: list[int] = []
    left = n_reports
    while left > 0:
        size = min(hi, -(-left // (2 * n_workers)))
        if size < lo:  # last round: what is left, in at most n_workers tasks of about lo or more
            k = min(n_workers, -(-left // lo))
            sizes += [left // k + (1 if i < left % k else 0) for i in range(k)]
            break
        sizes += [size] * n_workers
        left -= size * n_workers
    return sizes


def parse_to_part(
    item: Work | str, run_dir: str, token: str, model: str | None = None, lexicon: bool = True
) -> Any:
    """Dask task: parse a batch (:func:`~medmm.reports.pipeline.parse_columns`) with the pipeline of
    ``PipelineSpec(model, lexicon)`` and, when this worker sees the run directory (marker ``token``),
    write the part itself and send back only its name (:class:`PartWritten`); else send the tables
    (:class:`~medmm.reports.pipeline.BatchTables`).

    ``item`` is the batch, or the path of the scratch file holding it (:func:`stage`). The other
    arguments are plain values, so they travel inside the tasks (no scatter round trip).
    """
    import gc

    from medmm.reports.pipeline import parse_columns, save_part
    from medmm.reports.resume import Parts

    # no cyclic GC during the task: the batch's columns (lists, section tuples) and tables are
    # young objects that each collection would traverse again, while parsing makes next to no cyclic
    # garbage (a plain nlp.pipe triggers ~1 collection per 2,500 reports); collections resume after it
    enabled = gc.isenabled()
    gc.disable()
    try:
        if isinstance(item, str):
            with open(item, "rb") as f:
                item = pickle.load(f)  # written by stage() in this run
        assert isinstance(item, Work)
        spec = PipelineSpec(model=model, lexicon=lexicon)
        res = parse_columns(item.ids, item.texts, item.sections, spec, paths=item.paths)
        parts = Parts(Path(run_dir))
        if not parts.marked(token):
            return res
        return PartWritten(save_part(parts, item.ids, item.keys, res), len(item.ids))
    finally:
        if enabled:
            gc.enable()


def run_parse(
    client: Any,
    items: Sequence[Work | str],
    args: tuple[Any, ...],
    *,
    retries: int = 2,
    show_progress: bool | None = None,
) -> Iterator[tuple[int, Any]]:
    """Run :func:`parse_to_part` ``(item, *args)`` for each item on ``client``; yield ``(index,
    result)`` as the tasks finish, like :func:`medmm.workflows.cluster.run_tasks`, but a part the
    worker wrote itself is not fetched: its result is ``None``.

    The worker reports each result's type with the task's completion, so a :class:`PartWritten`
    (whose name and count the driver does not use) is known without asking the worker for it: no
    round trip per task (~0.7 ms of the driver's CPU, and the worker's event loop answering it,
    both on the cores the tasks use). Tables (a worker without the run directory) are fetched; a
    task that raised (or was lost) yields a :class:`~medmm.workflows.cluster.TaskFailure`.

    The cyclic GC of this process is off while the tasks run (the youngest generation is collected
    every 64 tasks; a phase of 8 tasks leaves 20-330 cyclic garbage objects): a local cluster's
    scheduler and nannies run on this process's event loop, and a full collection there (the driver
    holds every report read, and Dask's and pandas' objects: ~0.15 s per collection) stopped them for
    0.16 CPU-s (0.67 s of wall on a loaded machine) in about 1 of 10 parse phases of 10k reports,
    while the workers waited for their next task.

    >>> with local_cluster(1, PipelineSpec()) as client:  # doctest: +SKIP
    ...     list(run_parse(client, items, (run_dir, token, None, True)))
    [(0, None)]
    """
    import gc

    from distributed import as_completed

    from medmm.workflows.cluster import TaskFailure, interactive, progress_bar

    if not items:
        return
    n = len(items)
    show = interactive() if show_progress is None else show_progress
    enabled = gc.isenabled()
    gc.disable()  # see the docstring: no full collection while the tasks run
    try:
        columns = [[a] * n for a in args]
        futures = client.map(parse_to_part, list(items), *columns, pure=False, retries=retries)
        index = {f.key: i for i, f in enumerate(futures)}
        with progress_bar("reports", n) if show else nullcontext() as bar:
            for k, fut in enumerate(as_completed(futures), 1):
                result: Any = None
                if fut.status != "finished" or fut.type is not PartWritten:
                    try:
                        result = fut.result()
                    except Exception as exc:  # one bad task never stops the run
                        result = TaskFailure(exc)
                fut.release()
                if k % 64 == 0:  # the youngest objects only: what cyclic garbage there is stays bounded
                    gc.collect(0)
                if bar is not None:
                    bar.advance(bar.task_ids[0])
                yield index[fut.key], result
    finally:
        if enabled:
            gc.enable()


def sees_marker(run_dir: str, token: str) -> bool:
    """Whether this (worker) process sees the marker of ``Parts(run_dir).mark()``."""
    from medmm.reports.resume import Parts

    return Parts(Path(run_dir)).marked(token)


def stage(folder: Path, work: list[Work]) -> list[str]:
    """Write each batch to a scratch file in ``folder``; returns the paths (the task graph then holds
    only paths: the scheduler, in the driver process for a local cluster, would otherwise unpickle and
    pickle every report again)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, w in enumerate(work):
        path = folder / f"batch-{i:06d}.pkl"
        path.write_bytes(pickle.dumps(w, protocol=pickle.HIGHEST_PROTOCOL))
        paths.append(str(path))
    return paths


def cpu_seconds() -> float:
    """User + system CPU seconds of this (worker) process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def warm(spec: PipelineSpec) -> str:
    """Build (and cache) the pipeline in a worker process; returns its description.

    Arrow is kept to one thread (a worker runs one task at a time on its core).
    """
    import pyarrow as pa

    pa.set_cpu_count(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        get_pipeline(spec)
    return spec.describe()


def profiler(on: bool, dask_worker: Any = None) -> bool:
    """Stop (``on=False``) or restart Dask's statistical profiler in a worker (``client.run`` passes
    ``dask_worker``); returns whether it was running before.

    The profiler samples the task thread's stack every 10 ms from the worker's event loop thread,
    which takes the GIL from the task each time: ~15% more CPU for ``nlp.pipe`` in a worker (its deep
    Python stacks). ``parse`` pauses it for its tasks (on any cluster; the local cluster it starts has
    it off, :data:`medmm.workflows.cluster.LOCAL_CLUSTER_CONFIG`) and restarts it afterwards where it ran.
    """
    if dask_worker is None:
        return False
    was = False
    for name in ("profile", "profile-cycle"):
        pc = dask_worker.periodic_callbacks.get(name)
        if pc is None:
            continue
        was = was or pc.is_running()
        if on:
            pc.start()
        else:
            pc.stop()
    return was
