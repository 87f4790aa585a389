"""``medmm run WORKFLOW.yaml``: the same stages as the CLI commands, from a workflow file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from medmm.workflows.run import WorkflowResult

__all__ = ["register"]


def run(
    workflow: Path = typer.Argument(..., help="Workflow YAML (see workflows/)."),
    run_dir: Path | None = typer.Option(None, "--out", help="Run directory; overrides the file's run_dir."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local Dask worker processes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Existing Dask scheduler address."),
    strict: bool | None = typer.Option(None, "--strict/--no-strict", help="Exit 1 on quarantined inputs."),
) -> None:
    """Run every stage of a workflow file on one run directory (re-running resumes).

    The last line on stdout sums the run up for a cron mail or a monitoring check (outcome, exit code,
    each stage's inputs, processed now, quarantined; the run directory). Exit codes: 0 done, 1
    --strict and an input quarantined, 2 an error (stderr names it and the fix), 3 an unexpected
    error (a bug; traceback on stderr), 143 stopped by SIGTERM (129 SIGHUP, 130 Ctrl-C). See docs/nightly.md.
    """
    from medmm.errors import MedmmError
    from medmm.workflows.config import load_workflow
    from medmm.workflows.run import WorkflowResult, run_workflow
    from medmm.workflows.summary import summary_line
    from medmm.workflows.terminate import Terminated, terminate_as_exception

    try:
        config, base = load_workflow(workflow)
    except MedmmError as exc:
        _error(str(exc))
        typer.echo(summary_line(workflow.stem, {}, run_dir or "-", exit_code=2))
        raise typer.Exit(2) from exc
    result = WorkflowResult(run_dir=Path(run_dir or config.run_dir))
    try:
        with terminate_as_exception():
            run_workflow(
                config,
                base,
                run_dir=run_dir,
                workers=workers,
                scheduler=scheduler,
                strict=strict,
                result=result,
            )
    except MedmmError as exc:  # a wrong setting, or a stage's missing/unusable input (model, table ...)
        where = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
        _error(str(exc), where)
        _summary(config.name, result, 2)
        raise typer.Exit(2) from exc
    except Exception as exc:  # a bug: its own exit code (1 means "inputs quarantined" to a monitor)
        import traceback

        traceback.print_exc()
        stage = f" in stage '{result.stopped}'" if result.stopped else ""
        _error(f"unexpected {type(exc).__name__}{stage} (a bug in medmm: report it with the traceback above)")
        _summary(config.name, result, 3)
        raise typer.Exit(3) from None
    except (Terminated, KeyboardInterrupt) as exc:
        code = exc.exit_code if isinstance(exc, Terminated) else 130
        what = exc.name if isinstance(exc, Terminated) else "Ctrl-C"
        stage = f" in stage '{result.stopped}'" if result.stopped else ""
        _error(f"stopped by {what}{stage}; finished inputs are kept and the next run resumes", "")
        _summary(config.name, result, code)
        raise typer.Exit(code) from None
    _table(config.name, result)
    if result.exit_code:
        bad = {k: v["quarantined"] for k, v in result.counts.items() if v.get("quarantined")}
        stages = ", ".join(f"{k} {n}" for k, n in bad.items())
        _stderr(
            f"strict: {result.n_quarantined} inputs quarantined ({stages}); "
            "see the reason column of the run's manifest tables"
        )
    typer.echo(summary_line(config.name, result.counts, result.run_dir, exit_code=result.exit_code))
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _stderr(text: str) -> None:
    typer.echo(text, err=True)


def _error(message: str, where: str = "") -> None:
    """``error (stage ...): message`` on stderr, red on a terminal."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    console.print(f"[red]error{escape(where)}:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _summary(name: str, result: WorkflowResult, code: int) -> None:
    """The one-line summary (:mod:`medmm.workflows.summary`) of a run that stopped, on stdout."""
    from medmm.workflows.summary import summary_line

    typer.echo(summary_line(name, result.counts, result.run_dir, exit_code=code, stopped=result.stopped))


def _table(name: str, result: WorkflowResult) -> None:
    """The counts of every stage, as a table on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"workflow {name}")
    table.add_column("stage")
    table.add_column("counts by status")
    for stage, counts in result.counts.items():
        table.add_row(stage, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    Console(stderr=True).print(table)


def register(app: typer.Typer) -> None:
    """Add ``medmm run`` to the CLI."""
    app.command("run")(run)
