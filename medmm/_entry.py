"""The ``medmm`` console script: launch the ingest workers' server, then run the command line.

The command line (:mod:`medmm.cli`) imports typer and every stage's command module (~80 ms) before
anything runs. For ``medmm ingest`` on a local cluster the critical path of a short run is the
worker server's imports, so :func:`main` launches that server first
(:func:`medmm.ingest.workers.start_workers_for_argv`, a plain look at the words of the command
line), and only then imports :mod:`medmm.cli`. This module imports nothing else at module level:
multiprocessing imports the console script (and so this module) again in the worker server, which
then no longer imports the whole command line. ``python -m medmm`` runs the same (:mod:`medmm.__main__`).

>>> from medmm._entry import main
>>> main.__module__
'medmm._entry'
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run ``medmm`` with ``sys.argv`` (the console script's and ``python -m medmm``'s entry point).

    Examples
    --------
    >>> import sys
    >>> sys.argv = ["medmm", "--help"]
    >>> main()  # doctest: +SKIP
    """
    from medmm.ingest.workers import start_workers_for_argv

    start_workers_for_argv(sys.argv[1:])  # before typer and the stages' command modules are imported
    from medmm.cli import main as cli_main

    ingest_cli = sys.modules.get("medmm.ingest.cli")
    before = ingest_cli.runs() if ingest_cli is not None else 0
    try:
        cli_main()
    except SystemExit as exc:
        ingest_cli = sys.modules.get("medmm.ingest.cli")
        if ingest_cli is None:  # not an ingest run
            raise
        ingest_cli.end_process(exc, before)  # after `medmm ingest`: no teardown of the modules
