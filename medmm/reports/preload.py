"""Local ``parse`` workers forked from a server that has already built the pipeline.

``medmm reports parse`` on a local cluster gives :func:`medmm.workflows.dask_client` a
``worker_preload`` list (:func:`local_cluster`): its workers are forked from one server process
(:mod:`medmm.workflows.forkserver`) that imports the task modules and, last, this module. Imported
there with :data:`SPEC_ENV` set (the JSON of a :class:`~medmm.reports.nlp.PipelineSpec`), it builds
that pipeline into the per-process cache of :func:`~medmm.reports.nlp.get_pipeline` (through
:func:`~medmm.reports.tasks.warm`), so each forked worker finds it built: one build instead of one
per worker, and the pipeline's C-level tables (vocabulary, lexemes, matcher tables) are the server's
copy-on-write pages, shared by the workers instead of one copy each.

Imported anywhere without :data:`SPEC_ENV` it does nothing; a build that fails leaves the cache empty
(the workers then build the pipeline themselves, as with spawned workers).

>>> import medmm.reports.preload  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from medmm.reports.nlp import PipelineSpec

__all__ = ["SPEC_ENV", "WORKER_MODULES", "local_cluster", "preload_pipeline", "spec_json", "worker_server"]

log = logging.getLogger(__name__)

#: environment variable naming the pipeline the worker server builds (JSON of a ``PipelineSpec``)
SPEC_ENV = "MEDMM_REPORTS_PRELOAD_SPEC"

#: modules a parse task imports, then this one (which builds the pipeline): the worker server's list
WORKER_MODULES = [
    "medmm.reports.batch_extract",  # spaCy, the row builders (imported by a task, not by pipeline)
    "medmm.reports.batch_sides",
    "pyarrow.feather",  # the parts a task writes (resume.Parts)
    "medmm.reports.tasks",
    "medmm.reports.pipeline",
    "medmm.reports.resume",
    __name__,
]


def spec_json(spec: PipelineSpec) -> str:
    """``spec`` as the JSON :data:`SPEC_ENV` holds.

    >>> spec_json(PipelineSpec())
    '{"model": null, "lexicon": true}'
    """
    return json.dumps({"model": spec.model, "lexicon": spec.lexicon})


def preload_pipeline(value: str | None = None) -> PipelineSpec | None:
    """Build the pipeline named by ``value`` (default: ``os.environ[SPEC_ENV]``) into this process's
    cache; returns its spec, or ``None`` when there is nothing to build or the build failed.

    Never raises: the multiprocessing forkserver imports this module and dies on any error other than
    ``ImportError``, so a failure is logged and left to the workers (``warm`` builds it there again,
    and reports a real error).

    >>> preload_pipeline("")  # nothing to build
    """
    value = os.environ.get(SPEC_ENV) if value is None else value
    if not value:
        return None
    try:
        fields = json.loads(value)
        spec = PipelineSpec(model=fields.get("model"), lexicon=bool(fields.get("lexicon", True)))
        from medmm.reports.tasks import warm

        warm(spec)
    except Exception:  # see the docstring: the workers build it themselves
        log.warning("worker server: the pipeline was not preloaded", exc_info=True)
        return None
    return spec


@contextmanager
def local_cluster(workers: int | None, spec: PipelineSpec, **kwargs: Any) -> Iterator[Any]:
    """The local Dask client ``parse --workers N`` uses: ``dask_client(workers, quiet=True,
    malloc_trim=False, **kwargs)`` whose workers are forked from a server that built ``spec``'s
    pipeline (:data:`WORKER_MODULES`).

    >>> with local_cluster(2, PipelineSpec()) as client:  # doctest: +SKIP
    ...     client.run(warm, PipelineSpec())  # already built: returns at once
    """
    from medmm.workflows.cluster import dask_client

    with ExitStack() as stack:
        with _spec_environ(spec):  # the server (if not running yet) is launched with this environment
            client = stack.enter_context(
                dask_client(workers, quiet=True, malloc_trim=False, worker_preload=WORKER_MODULES, **kwargs)
            )
        yield client


@contextmanager
def worker_server(spec: PipelineSpec) -> Iterator[bool]:
    """Launch now, in the background, the server the workers of :func:`local_cluster` (``spec``) are
    forked from, and stop it on leaving; yields whether it runs.

    The server imports spaCy and builds the pipeline (~1-2 s of CPU) while the caller goes on (reads
    its input): ``local_cluster`` entered inside finds it running and forks its workers from it.
    Left without a cluster (nothing to parse, a bad input), the server is stopped at once.

    >>> with worker_server(PipelineSpec()) as running:  # doctest: +SKIP
    ...     with local_cluster(2, PipelineSpec()) as client:
    ...         pass
    """
    from medmm.workflows.forkserver import start_worker_server, stop_worker_server

    with _spec_environ(spec):
        running = start_worker_server(WORKER_MODULES, malloc_trim=False)
    try:
        yield running
    finally:
        if running:
            stop_worker_server()  # a no-op when local_cluster stopped it already


@contextmanager
def _spec_environ(spec: PipelineSpec) -> Iterator[None]:
    """:data:`SPEC_ENV` set to ``spec`` inside (the worker server is launched with it)."""
    saved = os.environ.get(SPEC_ENV)
    os.environ[SPEC_ENV] = spec_json(spec)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(SPEC_ENV, None)
        else:
            os.environ[SPEC_ENV] = saved


preload_pipeline()
