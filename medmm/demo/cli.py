"""``medmm demo``: the whole pipeline on sample data, with a summary and where the results are."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory for the demo outputs."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Local Dask worker processes."),
    key_file: Path | None = typer.Option(
        None, "--key-file", help="Site key (default: $MEDMM_KEY_FILE or ~/.config/medmm/site.key)."
    ),
) -> None:
    """Run every stage (ingest, reports, signals, anomalies, align, predict) on sample data."""
    from rich.console import Console
    from rich.table import Table

    from medmm.demo.run import run_full_demo
    from medmm.errors import MedmmError

    try:
        summary = run_full_demo(out, workers=workers, key_file=key_file)
    except MedmmError as exc:  # e.g. a run directory made with another site key
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table(title="medmm demo: counts by stage")
    table.add_column("stage")
    table.add_column("counts")
    for stage, counts in summary["stages"].items():
        table.add_row(stage, ", ".join(f"{k}={v}" for k, v in counts.items()))
    console = Console()
    console.print(table)
    console.print(f"report pipeline: {summary['pipeline']}")
    console.print(
        f"results: {summary['run_dir']}  (manifest.parquet, volumes.parquet, entities.parquet, "
        "report_labels.parquet, signals.parquet, beats.parquet, anomalies.parquet, "
        "window_anomalies.parquet, anomaly_records.parquet, records.parquet, "
        "predictions.parquet, run.json)"
    )
    for fig in summary["figures"]:
        console.print(f"figure: {fig}")


def register(app: typer.Typer) -> None:
    """Add ``medmm demo``."""
    app.command("demo")(demo)
