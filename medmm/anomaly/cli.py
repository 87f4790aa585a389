"""``medmm anomaly train|score``: label-free ECG beat anomaly model on a signals run directory.

Only typer/stdlib at module level; torch and pandas are imported inside the commands.

>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> register(app)
>>> CliRunner().invoke(app, ["anomaly", "--help"]).exit_code
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]

#: the --device help of every anomaly command (the names medmm.devices.resolve_device accepts)
DEVICE_HELP = "auto, cpu, cuda or cuda:N (default auto: cuda when available)."
#: the --ensemble help; the default size lives in medmm.anomaly.train.DEFAULT_ENSEMBLE only (torch is
#: imported there, so it is read inside the commands, not at CLI start-up)
ENSEMBLE_HELP = "(default: medmm.anomaly.train.DEFAULT_ENSEMBLE)"

anomaly_app = typer.Typer(
    help="Label-free ECG beat anomaly detection (train on a signals run, score beats).",
    no_args_is_help=True,
)


@anomaly_app.command("train")
def train_cmd(
    signals_run: Path = typer.Argument(..., exists=True, file_okay=False, help="Signals run directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
    seed: int = typer.Option(0, "--seed", help="Seed of weight init and batch order."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs."),
    ensemble: int | None = typer.Option(
        None, "--ensemble", min=1, help=f"Networks (seeds seed, seed+1, ...) {ENSEMBLE_HELP}."
    ),
    device: str = typer.Option("", "--device", help=DEVICE_HELP),
    input_root: Path | None = typer.Option(
        None, "--input", help="Input root of the signals run (default: read from its run.json)."
    ),
) -> None:
    """Train the beat autoencoder on every beat of SIGNALS_RUN (reference labels are ignored)."""
    from medmm.anomaly.score import pick_device
    from medmm.anomaly.stage import train_on_run
    from medmm.anomaly.train import DEFAULT_ENSEMBLE
    from medmm.errors import MedmmError

    try:
        pick_device(device or None)  # a wrong --device fails before the beats are read
        res = train_on_run(
            signals_run,
            out,
            seed=seed,
            epochs=epochs,
            ensemble=DEFAULT_ENSEMBLE if ensemble is None else ensemble,
            device=device or None,
            input_root=input_root,
        )
    except MedmmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"trained on {res['beats']} beats of {res['records']} records ({res['device']}); "
        f"threshold {res['threshold']:.2f} -> {out / 'model.json'}"
    )
    _warn_skipped(res)


def _warn_skipped(res: dict[str, Any]) -> None:
    if res.get("skipped"):
        typer.echo(
            f"warning: {res['skipped']} records skipped: their waveform could not be re-read from the "
            "signals run's input (moved or deleted? see --input); reasons in run.json",
            err=True,
        )


@anomaly_app.command("score")
def score_cmd(
    signals_run: Path = typer.Argument(..., exists=True, file_okay=False, help="Signals run directory."),
    model_dir: Path = typer.Option(..., "--model", "-m", exists=True, file_okay=False, help="Trained model."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for anomalies.parquet."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Beats per forward pass."),
    device: str = typer.Option("", "--device", help=DEVICE_HELP),
    input_root: Path | None = typer.Option(
        None, "--input", help="Input root of the signals run (default: read from its run.json)."
    ),
    plot: int = typer.Option(
        0, "--plot", min=0, help="Draw the N highest-scoring windows as ECG strips (OUT/top_windows/)."
    ),
) -> None:
    """Score every beat and window of SIGNALS_RUN: OUT/anomalies.parquet, OUT/window_anomalies.parquet."""
    from medmm.anomaly.score import pick_device
    from medmm.anomaly.stage import score_run
    from medmm.errors import MedmmError

    try:
        pick_device(device or None)  # a wrong --device fails before the run and the model are read
        res = score_run(
            signals_run,
            model_dir,
            out,
            batch_size=batch_size,
            device=device or None,
            input_root=input_root,
            plot=plot,
        )
    except MedmmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{res['beats']} beats, {res['flagged']} flagged -> {out / 'anomalies.parquet'}")
    _echo_records(out)
    if (signals_run / "windows.parquet").is_file():
        typer.echo(
            f"{res['windows']} windows, {res['windows_flagged']} flagged, "
            f"{res['windows_unreadable']} unreadable"
            f" -> {out / 'window_anomalies.parquet'}"
        )
    else:
        typer.echo(f"no windows.parquet in {signals_run}: no window scores written", err=True)
    if res.get("figures"):
        typer.echo(f"{res['figures']} top windows drawn -> {out / 'top_windows'}")
    _warn_skipped(res)


def _echo_records(out: Path) -> None:
    """Print the per-record table's line count and one line per record with two beat populations."""
    import pandas as pd

    from medmm.anomaly.summary import two_population_lines

    path = out / "anomaly_records.parquet"
    if not path.is_file():
        return
    records = pd.read_parquet(path)
    n_two = int(records["two_populations"].sum())
    typer.echo(f"{len(records)} records/leads, {n_two} with two beat populations -> {path}")
    for line in two_population_lines(records):
        typer.echo(line)


@anomaly_app.command("evaluate")
def evaluate_cmd(
    signals_run: Path = typer.Argument(..., exists=True, file_okay=False, help="Signals run directory."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for per_record.csv, pooled.csv, beats.parquet."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every fold's training."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs per fold."),
    ensemble: int | None = typer.Option(
        None, "--ensemble", min=1, help=f"Networks per fold (seeds seed, seed+1, ...) {ENSEMBLE_HELP}."
    ),
    nested: bool = typer.Option(
        True,
        "--nested/--no-nested",
        help="Also nested LORO: per held-out record, choose the scoring constants on the other records.",
    ),
    design_grid: bool = typer.Option(
        False,
        "--design-grid",
        help="Nested selection may also switch off the v0.5 design (QRS floor, P-wave criterion).",
    ),
    annotation: str = typer.Option("atr", "--annotation", help="Reference annotation extension."),
    device: str = typer.Option("", "--device", help=DEVICE_HELP),
    input_root: Path | None = typer.Option(
        None, "--input", help="Input root of the signals run (default: read from its run.json)."
    ),
) -> None:
    """Leave-one-record-out evaluation against reference ``V`` beats, model vs RR-ratio baseline."""
    from medmm.anomaly.evaluate import leave_one_record_out, read_reference, selection_grid
    from medmm.anomaly.runs import _input_root, load_signals_run
    from medmm.anomaly.score import pick_device
    from medmm.anomaly.train import DEFAULT_ENSEMBLE
    from medmm.errors import MedmmError
    from medmm.runinfo import Timer, update_run_json
    from medmm.tables import atomic_write_text, write_table

    ensemble = DEFAULT_ENSEMBLE if ensemble is None else ensemble
    timer = Timer()
    try:
        pick_device(device or None)  # a wrong --device fails before the (long) evaluation
        records = load_signals_run(signals_run, input_root)
        root = _input_root(signals_run, input_root)
    except MedmmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    refs = {}
    for rb in records:
        try:
            refs[rb.record] = read_reference(root, rb.record, annotation)
        except (OSError, ValueError) as exc:
            typer.echo(f"{rb.record}: no .{annotation} reference ({type(exc).__name__})", err=True)
    records = [rb for rb in records if rb.record in refs]
    if len(records) < 2:
        typer.echo(
            f"{signals_run}: need >= 2 records with references. Fix: ingest annotated records", err=True
        )
        raise typer.Exit(2)
    with timer("loro"):
        res = leave_one_record_out(
            records,
            refs,
            seed=seed,
            epochs=epochs,
            ensemble=ensemble,
            device=device or None,
            grid=selection_grid(design=design_grid) if nested else None,
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "per_record.csv", res.per_record.to_csv(index=False))
    atomic_write_text(out / "pooled.csv", res.pooled.to_csv(index=False))
    write_table(res.beats, out / "beats.parquet")
    if res.nested is not None:
        atomic_write_text(out / "nested.csv", res.nested.to_csv(index=False))
    update_run_json(
        out,
        "anomaly_evaluate",
        options={
            "seed": seed,
            "epochs": epochs,
            "ensemble": ensemble,
            "nested": nested,
            "design_grid": design_grid,
            "signals_run": str(signals_run),
            "annotation": annotation,
        },
        counts={"records": len(records), "beats": len(res.beats)},
        timings=timer.total(),
    )
    cols = ["record", "beats", "pos_ref", "pos_missed", "ref_missed"]
    cols += [f"{m}_{k}" for m in ("model", "base") for k in ("auroc", "auprc", "se", "ppv")]
    typer.echo(res.per_record[cols].round(4).to_string(index=False))
    if res.nested is not None:
        typer.echo(res.nested.to_string(index=False))
    typer.echo(res.pooled.round(4).to_string(index=False))


def register(app: typer.Typer) -> None:
    """Add the ``anomaly`` sub-app to the medmm CLI."""
    app.add_typer(anomaly_app, name="anomaly")
