"""``medmm ingest`` (typer); heavy imports happen inside the command.

>>> import typer
>>> app = typer.Typer()
>>> register(app)
>>> sorted(c.name for c in app.registered_commands)
['ingest']
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

import typer

__all__ = ["end_process", "register"]

#: ``ingest`` commands run to the end in this process (see :func:`end_process`)
_runs = 0


def runs() -> int:
    """How many ``ingest`` commands have run to the end in this process (for :func:`end_process`).

    >>> runs() >= 0
    True
    """
    return _runs


def end_process(exc: SystemExit, runs_before: int) -> NoReturn:
    """End the process with ``exc``'s status after ``medmm ingest``, skipping the interpreter's teardown.

    For the command-line entry points (``medmm``, ``python -m medmm``, ``python -m medmm.ingest``)
    once the command has returned: when it was ``ingest`` (:func:`runs` is above ``runs_before``, its
    value before the command) and no other thread but daemons still runs,
    the exit handlers run (``atexit``: logging, temporary files, Dask's and multiprocessing's own),
    stdout and stderr are flushed, and the process ends with ``os._exit``. What is skipped is the
    teardown of the ~1,000 imported modules and their objects (~25-70 ms after a run, on its critical
    path); the run's outputs are all written and closed by then, its cluster and worker server gone.
    Otherwise ``exc`` is raised again: Python exits as usual.

    Examples
    --------
    >>> end_process(SystemExit(0), runs_before=0)  # doctest: +SKIP
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if _runs <= runs_before or any(not t.daemon for t in others):
        raise exc
    code = exc.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as the interpreter prints a SystemExit's message
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or a broken pipe: nothing to flush
            stream.flush()
    os._exit(status)


def _print_counts(counts: dict[str, int], title: str) -> None:
    import sys

    if not sys.stdout.isatty():  # unattended runs: plain text, without rich's import (~25 ms of CPU)
        rows = [*counts.items(), ("total", sum(counts.values()))]
        width = max(len("status"), *(len(status) for status, _ in rows))
        digits = max(len("files"), *(len(str(n)) for _, n in rows))
        lines = [title, f"{'status':<{width}}  {'files':>{digits}}"]
        lines += [f"{status:<{width}}  {n:>{digits}}" for status, n in rows]
        typer.echo("\n".join(lines))
        return
    from rich.console import Console
    from rich.table import Table

    Console().print(f"[bold]{title}[/bold]")
    table = Table()
    table.add_column("status")
    table.add_column("files", justify="right")
    for status, n in counts.items():
        table.add_row(status, str(n))
    table.add_row("[bold]total[/bold]", f"[bold]{sum(counts.values())}[/bold]")
    Console().print(table)


def ingest(
    archive: Path = typer.Argument(..., exists=True, file_okay=False, help="Archive folder to ingest."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory for manifest, volumes and run.json."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Local Dask worker processes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler."),
    key_file: Path | None = typer.Option(
        None,
        "--key-file",
        help="Site key for pseudonyms (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key).",
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any input is quarantined."),
    keep_descriptions: bool = typer.Option(
        False,
        "--keep-descriptions",
        help="Write the DICOM SeriesDescription and ProtocolName into the volume sidecars: operator free "
        "text that may name the patient (docs/privacy.md); medmm share never copies it.",
    ),
    batch_size: int = typer.Option(  # scan_phase.SCAN_BATCH
        500, "--batch-size", min=1, help="Files per header-reading task (at most)."
    ),
    dashboard: bool | None = typer.Option(
        None,
        "--dashboard/--no-dashboard",
        help="Start the Dask dashboard of the local cluster and print its address "
        "(default: when stderr is a terminal, like the progress bars).",
    ),
    ids: Path | None = typer.Option(
        None,
        "--ids",
        exists=True,
        dir_okay=False,
        help="CSV table of patient/study ids for image files that carry none (PNG/JPEG/TIFF, NIfTI): "
        "one row per file, matched by path (see docs/ingest.md).",
    ),
    path_column: str = typer.Option("path", "--path-column", help="--ids: column of file paths or names."),
    patient_column: str = typer.Option("patient_id", "--patient-column", help="--ids: patient id column."),
    study_column: str = typer.Option("study_id", "--study-column", help="--ids: study id column (optional)."),
    modality_column: str = typer.Option(
        "modality", "--modality-column", help="--ids: modality column (optional)."
    ),
    time_column: str = typer.Option(
        "study_time",
        "--time-column",
        help="--ids: ISO study date/time column (optional; shifted per patient).",
    ),
    accession_column: str = typer.Option(
        "accession",
        "--accession-column",
        help="--ids: accession number column (optional; written only as the pseudonym accession_id, "
        "which links the reports parsed with `medmm reports parse --accession-column`).",
    ),
    modality: str | None = typer.Option(
        None,
        "--modality",
        help="Modality of pictures and NIfTI files without one in --ids (e.g. DX); never guessed.",
    ),
) -> None:
    """Ingest an imaging archive: canonical volumes + a manifest row for every input file.

    Re-running on the same --out resumes: unchanged inputs already done are skipped.
    """
    global _runs
    if workers and scheduler:
        raise typer.BadParameter("give either --workers (local cluster) or --scheduler, not both")
    from dataclasses import asdict

    from medmm.ingest.image_ids import IdColumns  # stdlib + medmm.errors only

    columns = IdColumns(
        path_column, patient_column, study_column, modality_column, time_column, accession_column
    )
    given, defaults = asdict(columns), asdict(IdColumns())
    named = ", ".join(f"--{field}-column" for field in given if given[field] != defaults[field])
    if ids is None and named:  # they would be ignored: the user expects their ids
        typer.echo(
            f"error: {named} name columns of an ids table, but no --ids table was given. "
            "Fix: add --ids TABLE.csv, or remove them",
            err=True,
        )
        raise typer.Exit(code=2)
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file; give a folder (created when missing)", param_hint="--out")
    # at exit, Python's last garbage collection walks every object of the ~1,400 modules a run
    # imports (~0.2 s); frozen objects are skipped. atexit: in a test session only when it ends
    atexit.register(gc.freeze)
    if scheduler is None:  # the local workers' server imports while this process imports and walks
        from medmm.ingest.workers import start_workers_early

        start_workers_early()
    if dashboard is None:  # interactive runs get the dashboard; unattended ones skip bokeh (~0.3 s CPU)
        from medmm.workflows.cluster import interactive

        dashboard = interactive()
    from medmm.errors import MedmmError
    from medmm.ingest.image_ids import IdTable
    from medmm.ingest.pipeline import ingest_archive
    from medmm.workflows.terminate import Terminated, terminate_as_exception

    try:
        table = None
        if ids is not None:
            table = IdTable.load(ids, columns, modality=modality or "")
        elif modality:
            table = IdTable({}, source="--modality", modality=modality)
        with (
            terminate_as_exception()
        ):  # SIGTERM: the run's header records (raw ids) are removed on the way out
            result = ingest_archive(
                archive,
                out,
                workers=workers,
                scheduler=scheduler,
                key_file=key_file,
                batch_size=batch_size,
                dashboard=dashboard,
                ids=table,
                keep_descriptions=keep_descriptions,
            )
    except MedmmError as exc:  # a setting or the run directory (another run holds it, bad key file ...)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except Terminated as stop:
        typer.echo(
            f"error: stopped by {stop.name}; finished inputs are kept and the next run resumes", err=True
        )
        raise typer.Exit(code=stop.exit_code) from None
    _runs += 1  # the run is complete: the process may end without the interpreter's teardown
    _print_counts(result.counts, f"medmm ingest: {result.n_files} files, {result.n_volumes} volumes")
    typer.echo(
        f"skipped (already done): {result.n_skipped}; total {result.timings.get('total_s', 0):.1f}s\n"
        f"manifest: {out / 'manifest.parquet'}\nvolumes:  {out / 'volumes.parquet'} ({out / 'volumes'})"
    )
    if strict and result.n_quarantined:
        typer.echo(
            f"--strict: {result.n_quarantined} inputs quarantined (see the manifest's reason column)",
            err=True,
        )
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the ``medmm`` app (``medmm demo`` lives in :mod:`medmm.demo.cli`)."""
    app.command("ingest")(ingest)
