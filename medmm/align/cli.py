"""``medmm align RUN_DIR``: multimodal records per patient + study (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def align(
    run_dir: Path = typer.Argument(..., help="Run directory with volumes / report_labels / windows tables"),
    window: str = typer.Option(
        "24h",
        "--window",
        help="Time tolerance (inclusive) for joining an item without a study id (ECG windows) to its "
        "patient's nearest study: 90s, 30m, 36h, 2d or plain seconds",
    ),
    report_window: str = typer.Option(
        "3d",
        "--report-window",
        help="How far (inclusive) a report's date (reports parse --date-column) may be from the study it "
        "is linked to by date, when neither its study uid nor its accession number links it: 90s, 30m, "
        "36h, 3d or plain seconds; dates without a time compare as whole days",
    ),
    label_finding: list[str] = typer.Option([], "--label-finding", help="Report finding used as a label"),
    pvc_label: str | None = typer.Option(
        None,
        help="Label name for 'window holds a V beat' (beats.parquet; null for a record without reference "
        "annotations)",
    ),
    min_quality: float = typer.Option(0.5, help="Minimum signal window quality"),
    image_size: int = typer.Option(64, help="Model input image size (pixels per side)"),
    image_dims: int = typer.Option(2, help="2: middle axial slice, 3: whole volume"),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="CSV/TSV/Parquet of labels: column 'patient' (raw id), optional 'study' (StudyInstanceUID), "
        "one column per label with 1/0/empty; ids are pseudonymized with the site key",
    ),
    key_file: Path | None = typer.Option(
        None, help="Site key file for --labels (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key)"
    ),
) -> None:
    """Join imaging, report findings and ECG windows per patient + study into records.parquet."""
    from medmm.align.join import parse_duration
    from medmm.align.pipeline import align_run
    from medmm.errors import MedmmError

    try:
        counts = align_run(
            run_dir,
            parse_duration(window),
            label_finding,
            pvc_label,
            min_quality,
            image_size,
            image_dims,
            labels=labels,
            key_file=key_file,
            report_window_s=parse_duration(report_window, "--report-window"),
        )
    except MedmmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
    typer.echo(f"wrote {run_dir / 'records.parquet'}")


def register(app: typer.Typer) -> None:
    """Add ``align`` to the medmm CLI."""
    app.command("align")(align)
