"""What the ingest tasks import, for the server that a local cluster's workers are forked from.

Kept apart from :mod:`medmm.ingest.pipeline` (which imports pydantic records, the journal ...) so that
``medmm ingest`` can launch that server first thing, before the driver's own imports: the server then
imports these modules while the driver imports, walks the archive and starts the scheduler.

>>> from medmm.ingest.workers import WORKER_MODULES
>>> "medmm.ingest.groups" in WORKER_MODULES
True
"""

from __future__ import annotations

__all__ = ["WORKER_MODULES", "start_workers_early"]

#: the modules the scan and convert tasks import (their heavy dependencies first)
WORKER_MODULES = (
    "numpy",
    "pydicom",
    "nibabel",
    "isal.igzip",
    "medmm.ingest.groups",
    "medmm.ingest.tasks",
    "medmm.ingest.sniff",
    "medmm.imaging.dicom_header",
    "medmm.imaging.series",
    "medmm.imaging.convert",
    "medmm.imaging.volume_store",
)


def start_workers_early() -> bool:
    """Launch the ingest workers' server now, in the background (see
    :func:`medmm.workflows.forkserver.start_worker_server`); ``ingest_archive`` with a local cluster
    uses it and stops it.

    >>> start_workers_early()  # doctest: +SKIP
    True
    """
    from medmm.workflows.forkserver import start_worker_server

    return start_worker_server(WORKER_MODULES, malloc_trim=False)
