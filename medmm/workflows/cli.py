"""``medmm run WORKFLOW.yaml``: the same stages as the CLI commands, from a workflow file."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def run(
    workflow: Path = typer.Argument(..., help="Workflow YAML (see workflows/)."),
    run_dir: Path | None = typer.Option(None, "--out", help="Run directory; overrides the file's run_dir."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local Dask worker processes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Existing Dask scheduler address."),
    strict: bool | None = typer.Option(None, "--strict/--no-strict", help="Exit 1 on quarantined inputs."),
) -> None:
    """Run every stage of a workflow file on one run directory (re-running resumes)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from medmm.errors import MedmmError
    from medmm.workflows.config import load_workflow
    from medmm.workflows.run import run_workflow

    console = Console(stderr=True)
    try:
        config, base = load_workflow(workflow)
        result = run_workflow(config, base, run_dir=run_dir, workers=workers, scheduler=scheduler)
    except MedmmError as exc:  # a wrong setting, or a stage's missing/unusable input (model, table ...)
        where = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
        console.print(f"[red]error{escape(where)}:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    table = Table(title=f"workflow {config.name}")
    table.add_column("stage")
    table.add_column("counts by status")
    for stage, counts in result.counts.items():
        table.add_row(stage, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    console.print(table)
    typer.echo(f"results: {result.run_dir}")
    if (config.strict if strict is None else strict) and result.n_quarantined:
        bad = {k: v["quarantined"] for k, v in result.counts.items() if v.get("quarantined")}
        stages = ", ".join(f"{k} {n}" for k, n in bad.items())
        console.print(
            f"strict: {result.n_quarantined} inputs quarantined ({stages}); "
            "see the reason column of the run's manifest tables",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``medmm run`` to the CLI."""
    app.command("run")(run)
