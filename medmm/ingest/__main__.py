"""``python -m medmm.ingest ARCHIVE --out RUN``: the ``medmm ingest`` command without the other stages.

Same options and behaviour as ``medmm ingest``. It exists because multiprocessing runs the parent's
main module again in every Dask worker: under ``medmm`` that is the whole CLI with every stage
registered (imported once by the server the workers are forked from, or by each worker where workers
are spawned), whereas a package's ``__main__`` is not run again, so workers start with only what
ingest needs (see docs/ingest.md, Performance). Run as a program, it launches the workers' server
first thing, before importing typer (docs/ingest.md, "Session 4: start-up").

>>> from medmm.ingest.__main__ import app
>>> [c.name for c in app.registered_commands]
['ingest']
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # the workers' server starts importing before this process imports typer
    from medmm.ingest.workers import start_workers_for_argv

    start_workers_for_argv(sys.argv[1:])

import typer

from medmm.ingest.cli import ingest

__all__ = ["app"]

app = typer.Typer(add_completion=False, help="Ingest an imaging archive (same as `medmm ingest`).")
app.command("ingest")(ingest)


@app.callback(invoke_without_command=False)
def _root() -> None:
    """Keep ``ingest`` as an explicit sub-command, as in ``medmm ingest``."""


if __name__ == "__main__":
    from medmm.ingest.cli import end_process, runs

    before = runs()
    try:
        app()
    except SystemExit as exc:  # after a run, without the interpreter's teardown of every module
        end_process(exc, before)
