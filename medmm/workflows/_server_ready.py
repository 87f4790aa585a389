"""Imported last by the worker server (:mod:`medmm.workflows.forkserver`), after the modules it preloads.

First it fills the per-process caches every Dask worker fills when it registers with its scheduler
(:func:`warm_worker_caches`), so that the forked workers inherit them instead of each computing them
again. Then it moves every object the server holds (modules, classes, functions: ~90,000 for ``medmm
ingest``) into the garbage collector's permanent generation (:func:`gc.freeze`), as Python's
documentation advises before ``fork()`` without ``exec()``. Without it, the first full collection in
each forked worker walks all of them and writes to the pages that hold them (copy-on-write): ~65 ms of
CPU per worker before it has done anything (measured: a forked child's ``gc.collect()`` 65 ms ->
0.5 ms), and pages no longer shared with the server. The objects stay alive as before (frozen
objects are never collected; these live as long as the process anyway).

Nothing imports this module but the server; imported anywhere else it would only fill those caches
and freeze that process's current objects, which is harmless.

>>> import medmm.workflows._server_ready  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import sys

__all__ = ["warm_worker_caches"]


#: modules a forked worker still imported while it started (seen with cProfile between its fork and
#: its registration): its event loop's tornado adapter and the multiprocessing parts of its nanny link
_WORKER_START_MODULES = (
    "tornado.platform.asyncio",
    "multiprocessing.synchronize",
    "multiprocessing.popen_forkserver",
)


def warm_worker_caches() -> None:
    """Fill the caches a Dask worker fills before it registers, once, here in the server.

    A worker sends its scheduler ``distributed.versions.get_versions()``: the installed versions of
    nine packages (``importlib.metadata``, which parses their ``METADATA`` files: ~25 ms of CPU) and
    ``platform.uname().processor`` (a ``uname -p`` subprocess), both cached per process. Each forked
    worker computed them again while registering; computed here they come with the fork. The
    worker's HTTP route modules and the few modules it imported while starting
    (``_WORKER_START_MODULES``) are imported here too. Without distributed
    imported it does nothing; a failure only leaves the work to the workers, as before.

    >>> warm_worker_caches()
    """
    if "distributed.versions" not in sys.modules:
        return
    try:
        import dask.config
        from distributed.versions import get_versions

        get_versions()
        for name in (*dask.config.get("distributed.worker.http.routes", []), *_WORKER_START_MODULES):
            __import__(name)
    except Exception:  # pragma: no cover - a cache left cold costs only time, in each worker
        return


warm_worker_caches()
gc.freeze()
