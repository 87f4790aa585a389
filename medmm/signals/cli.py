"""``medmm signals ingest`` (typer); heavy imports happen inside the command.

>>> import typer
>>> app = typer.Typer()
>>> register(app)
>>> [g.name for g in app.registered_groups]
['signals']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]

signals_app = typer.Typer(
    help="Physiological signals: WFDB / EDF / CSV vitals / DICOM waveforms.", no_args_is_help=True
)


@signals_app.command("ingest")
def ingest(
    input_root: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder of signal records."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory for the tables, windows/ and run.json."),
    rate: float = typer.Option(250.0, "--rate", min=1.0, help="Target rate (Hz) of waveform channels."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=0, help="Local Dask workers (0: serial here)."
    ),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler."),
    key_file: Path | None = typer.Option(
        None,
        "--key-file",
        help="Site key for pseudonyms (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key).",
    ),
    window: float = typer.Option(10.0, "--window", min=0.1, help="Tiled window length and step, seconds."),
    before: float = typer.Option(
        30.0, "--before", min=0.0, help="Anchored windows: seconds before the anchor."
    ),
    after: float = typer.Option(30.0, "--after", min=0.0, help="Anchored windows: seconds after the anchor."),
    anchors: Path | None = typer.Option(
        None, "--anchors", exists=True, dir_okay=False, help="CSV/Parquet of anchors (see docs/signals.md)."
    ),
    anchor_events: str = typer.Option(
        "^alarm", "--anchor-events", help="Regex: events (alarms, EDF+/WFDB annotations) that become anchors."
    ),
    patient_from: str = typer.Option(
        "record", "--patient-from", help="Patient key when a file has none: 'record' name or parent 'folder'."
    ),
    recover_small_beats: bool = typer.Option(
        False,
        "--recover-small-beats",
        help="Also detect small normal beats hidden by tall PVCs (bigeminy): beat Se 88% -> 99% on PVC-rich"
        " records, but a few more false beats elsewhere (off by default; docs/signals.md, Session 9).",
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any input is quarantined."),
) -> None:
    """Read, resample, quality-check, window and beat-annotate every record under INPUT_ROOT."""
    if workers and scheduler:
        raise typer.BadParameter("give either --workers (local cluster) or --scheduler, not both")
    if patient_from not in ("record", "folder"):
        raise typer.BadParameter("--patient-from must be 'record' or 'folder'")
    from medmm.errors import MedmmError
    from medmm.workflows.terminate import Terminated, terminate_as_exception

    try:
        with terminate_as_exception():  # SIGTERM (a time limit): clean-up runs, exit 143
            counts = _run(
                input_root,
                out,
                rate,
                workers,
                scheduler,
                key_file,
                window,
                before,
                after,
                anchors,
                anchor_events,
                patient_from,
                recover_small_beats,
            )
    except MedmmError as exc:  # a bad anchors table, key file, run directory ...
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except Terminated as stop:
        typer.echo(
            f"error: stopped by {stop.name}; finished records are kept and the next run resumes", err=True
        )
        raise typer.Exit(code=stop.exit_code) from None
    for k, v in counts.items():
        typer.echo(f"{k:12s} {v}")
    if counts.get("quarantined"):
        typer.echo(f"{'':12s} {_quarantine_summary(out)} (reasons: manifest_signals.parquet)")
    typer.echo(f"tables: {out}/{{signals,beats,features,windows,vitals,events,manifest_signals}}.parquet")
    if strict and counts.get("quarantined"):
        typer.echo(
            f"--strict: {counts['quarantined']} inputs quarantined (see manifest_signals.parquet)", err=True
        )
        raise typer.Exit(code=1)


def _run(
    input_root: Path,
    out: Path,
    rate: float,
    workers: int | None,
    scheduler: str | None,
    key_file: Path | None,
    window: float,
    before: float,
    after: float,
    anchors: Path | None,
    anchor_events: str,
    patient_from: str,
    recover_small_beats: bool,
) -> dict[str, int]:
    from medmm.signals.pipeline import run_signals
    from medmm.signals.process import Settings

    anchor_rows: tuple[Any, ...] = ()
    if anchors is not None:
        from medmm.signals.anchors import read_anchors

        anchor_rows = read_anchors(anchors)
    settings = Settings(
        rate=rate,
        window_s=window,
        before_s=before,
        after_s=after,
        anchor_events=anchor_events,
        anchors=anchor_rows,
        patient_from=patient_from,
        recover_small_beats=recover_small_beats,
    )
    return run_signals(
        input_root, out, settings=settings, workers=workers, scheduler=scheduler, key_file=key_file
    )


def _quarantine_summary(out: Path) -> str:
    """``"MissingHeaderError 2, HeaderError 1, part of a quarantined record 3"``: quarantined inputs
    by the class of their reason."""
    import pandas as pd

    m = pd.read_parquet(out / "manifest_signals.parquet", columns=["status", "reason"])
    reasons = m.loc[m["status"] == "quarantined", "reason"].fillna("")
    kind = reasons.str.extract(r"^(\w+):")[0].where(
        ~reasons.str.startswith("part of "), "part of a quarantined record"
    )
    counts = sorted(kind.fillna("other").value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {n}" for k, n in counts)


def register(app: typer.Typer) -> None:
    """Add the ``signals`` sub-app (``medmm signals ingest``) to the ``medmm`` app."""
    app.add_typer(signals_app, name="signals")
