"""``medmm predict --model CKPT RUN_DIR`` (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def predict(
    run_dir: Path = typer.Argument(..., help="Run directory with records.parquet and inputs/"),
    model: Path = typer.Option(..., "--model", help="model.pt written by `medmm train`"),
    out: Path | None = typer.Option(None, "--out", help="Default: RUN_DIR/predictions.parquet"),
    batch_size: int = typer.Option(64, min=1, help="Records scored per forward pass."),
    slice_aggregation: str | None = typer.Option(
        None,
        help="mean | max: how the slice scores of a record (image_input.slice: all) combine into one "
        "score per record. Default: the checkpoint's (mean).",
    ),
    slice_scores: bool = typer.Option(
        False, help="Also write the per-slice scores to <out>_slices.parquet (slice: all)."
    ),
    device: str = typer.Option(
        "auto", help="auto (the GPU when there is one, else the CPU), cpu, cuda or cuda:N."
    ),
    anomaly_rate: float | None = typer.Option(
        None,
        help="False-alarm rate of the imaging anomaly flag (embedding_anomaly_flag), e.g. 0.01; the "
        "threshold is re-derived from the checkpoint's calibration scores. Default: the checkpoint's (0.05).",
    ),
    anomaly_calibration: Path | None = typer.Option(
        None,
        "--anomaly-calibration",
        help="CAL_RUN_DIR: an aligned run of studies this site declares normal (none of them in RUN_DIR): "
        "the imaging anomaly threshold is calibrated on its images (one score per distinct image) at "
        "the rate, instead of the training-time validation images.",
    ),
) -> None:
    """Score every record with a trained model; writes predictions.parquet with provenance (one row per
    record and label)."""
    from medmm.devices import resolve_device
    from medmm.errors import MedmmError
    from medmm.predict.predict import predict_run

    try:
        dev = resolve_device(device, source="--device")
        counts = predict_run(
            model,
            run_dir,
            out,
            batch_size,
            slice_aggregation,
            slice_scores,
            dev,
            anomaly_rate,
            anomaly_calibration,
        )
    except MedmmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    notes = counts.pop("notes", [])
    calibration = counts.pop("anomaly_calibration", None)
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
    if calibration is not None and calibration != "checkpoint":
        typer.echo(
            f"anomaly threshold calibrated on {calibration} (run.json: stages.predict.embedding_anomaly)"
        )
    for note in notes:
        typer.echo(f"warning: {note}", err=True)
    typer.echo(f"wrote {out or run_dir / 'predictions.parquet'}")


def register(app: typer.Typer) -> None:
    """Add ``predict`` to the medmm CLI."""
    app.command("predict")(predict)
