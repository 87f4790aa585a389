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
