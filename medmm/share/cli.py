"""``medmm share RUN_DIR --out DIR``: a de-identified copy of a run for collaborators.

Heavy imports happen inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]


def share(
    run_dir: Path = typer.Argument(..., help="Run directory to share (the site's internal ledger)"),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the de-identified copy"),
    key_file: Path | None = typer.Option(
        None, help="Site key the run was made with (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key)"
    ),
    with_volumes: bool = typer.Option(
        False, "--with-volumes", help="Also copy the canonical NIfTI volumes (text header fields blanked)"
    ),
    with_windows: bool = typer.Option(
        False,
        "--with-windows",
        help="Also copy the signal windows (windows/<record pseudonym>/<channel>.npy)",
    ),
    reports_deidentified: bool = typer.Option(
        False,
        "--reports-deidentified",
        help="The report texts were de-identified before parsing: keep the entity text spans "
        "(report texts themselves are never shared)",
    ),
) -> None:
    """Write a de-identified copy of RUN_DIR: allow-listed tables, paths and record names pseudonymized,
    file times, report text and caches left out; refused (exit 2) if a source name would remain."""
    from medmm.errors import MedmmError
    from medmm.share.share import share_run
    from medmm.workflows.lock import refuse_while_running

    try:
        refuse_while_running(run_dir)  # a nightly `medmm run` rewriting it: its tables mix two nights
        report = share_run(
            run_dir,
            out,
            key_file=key_file,
            with_volumes=with_volumes,
            with_windows=with_windows,
            reports_deidentified=reports_deidentified,
        )
    except MedmmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _summary(report, out)


def _summary(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="medmm share", title_justify="left")
    for col in ("artifact", "rows", "pseudonymized", "dropped", "left out"):
        table.add_column(col)
    for name, spec in report["tables"].items():
        cut = spec.get("text_removed", {})
        changed = [
            f"{c} ({cut[c]} cut to medmm's words)" if c in cut else c
            for c, pol in spec["columns"].items()
            if pol not in ("keep", "vocab")
        ]
        table.add_row(
            name,
            str(spec["rows"]),
            ", ".join(changed),
            ", ".join(spec["dropped_columns"]),
            ", ".join(spec["left_out_columns"]),
        )
    for name, spec in report["json"].items():
        lost = list(spec["dropped"])
        table.add_row(name, "", "names in values", f"{len(lost)} path value(s)" if lost else "", "")
    console = Console()
    console.print(table)
    files = report["files"]
    console.print(
        f"volumes {files['volumes']} (text header fields blanked: {files['nifti_fields_blanked']}), "
        f"sidecars {files['sidecars']}, signal windows {files['windows']}"
    )
    for path, reasons in report["dropped"].items():
        for why, n in reasons.items():
            console.print(f"not shared: {path} ({n} file(s)): {why}")
    for path, reasons in report["left_out"].items():
        for why, n in reasons.items():
            console.print(f"left out: {path} ({n} file(s)): {why}", style="yellow")
    for note in report.get("notes", []):
        console.print(f"note: {note}", style="yellow")
    check = report["self_check"]
    console.print(
        f"self-check: {check['files']} files read back, {check['names']} source names looked for, none found"
    )
    console.print(f"wrote {out} (see {out / 'share_report.json'})")


def register(app: typer.Typer) -> None:
    """Add ``share`` to the medmm CLI."""
    app.command("share")(share)
