"""What the ingest tasks import, for the server that a local cluster's workers are forked from.

Kept apart from :mod:`medmm.ingest.pipeline` (which imports pydantic records, the journal ...) so that
``medmm ingest`` can launch that server first thing, before the driver's own imports: the server then
imports these modules while the driver imports, walks the archive and starts the scheduler.

>>> from medmm.ingest.workers import WORKER_MODULES
>>> "medmm.ingest.groups" in WORKER_MODULES
True
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WORKER_MODULES", "start_workers_early", "start_workers_for_argv"]

#: the modules the scan and convert tasks import (their heavy dependencies first). Not pydicom nor
#: nibabel (~0.09 s of CPU, nibabel importing pydicom): a plain DICOM file is scanned and converted
#: without them (:mod:`medmm.imaging._element_stream`, :mod:`medmm.imaging._nifti_header`); a worker
#: imports them with the first file that needs them (compressed pixels, NIfTI inputs, odd headers).
WORKER_MODULES = (
    "numpy",
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


#: options after which ``ingest`` runs no local cluster, or nothing at all
_NO_LOCAL_CLUSTER = ("--scheduler", "--help")


def start_workers_for_argv(argv: Sequence[str]) -> bool:
    """Launch the workers' server when ``argv`` (``sys.argv[1:]``) runs ``ingest`` on a local cluster.

    Meant for the first lines of a command-line entry point, before it imports its command-line
    framework (typer, click, rich: ~50-80 ms), so that the server's imports, the critical path of a
    short run, start that much sooner. Only a plain guess from the words: the sub-command is the first
    word that is not an option (options before it, like ``-v``, are skipped) and must be ``ingest``;
    ``--scheduler`` (an existing cluster) and ``--help`` launch nothing. A guess that is wrong costs
    nothing but an idle process: the command itself starts (or reuses) the server when it needs one,
    and the server exits with this process.

    Returns
    -------
    bool
        Whether a server now runs (``False`` also where the platform has no forkserver).

    Examples
    --------
    >>> start_workers_for_argv(["ingest", "archive", "--scheduler", "tcp://h:8786"])
    False
    >>> start_workers_for_argv(["reports", "parse", "x"])
    False
    """
    words = list(argv)
    command = next((w for w in words if not w.startswith("-")), None)
    if command != "ingest" or any(w.split("=", 1)[0] in _NO_LOCAL_CLUSTER for w in words):
        return False
    return start_workers_early()
