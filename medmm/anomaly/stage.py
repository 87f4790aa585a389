"""The anomaly stage as plain functions over a signals run directory (CLI, demo and workflows call these).

>>> from medmm.anomaly.stage import train_on_run, score_run
>>> train_on_run.__name__, score_run.__name__
('train_on_run', 'score_run')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medmm.errors import InputError

__all__ = ["score_run", "train_on_run"]


def train_on_run(
    signals_run: Path,
    out: Path,
    *,
    seed: int = 0,
    epochs: int = 10,
    ensemble: int | None = None,
    device: str | None = None,
    input_root: Path | None = None,
) -> dict[str, Any]:
    """Train the label-free beat model on every beat of ``signals_run`` and save it to ``out``.

    ``ensemble`` networks (default :data:`~medmm.anomaly.train.DEFAULT_ENSEMBLE`) are trained with
    seeds ``seed``, ``seed + 1``, ... Reference annotations in the run are never read. Raises
    :class:`~medmm.errors.InputError` when the run has no beats. Returns counts, the device used and
    the model's threshold.
    """
    from medmm.anomaly.model import save_model
    from medmm.anomaly.runs import load_signals_run, run_inputs
    from medmm.anomaly.score import pick_device
    from medmm.anomaly.train import DEFAULT_ENSEMBLE, train_beat_model
    from medmm.runinfo import Timer, update_run_json

    timer = Timer()
    skipped: list[str] = []
    with timer("load"):
        records = load_signals_run(signals_run, input_root, skipped)
        inputs, _keys = run_inputs(records)
    if len(inputs) < 2:
        raise InputError(
            str(signals_run), "no beats to train on", "run the signals stage on ECG records first"
        )
    dev = str(pick_device(device or None))
    k = DEFAULT_ENSEMBLE if ensemble is None else int(ensemble)
    with timer("train"):
        model = train_beat_model(
            inputs, seed=seed, epochs=epochs, ensemble=k, device=dev, trained_on=Path(signals_run).name
        )
    save_model(model, out, device=dev)
    counts = {"records": len(records), "beats": len(inputs), "skipped": len(skipped)}
    update_run_json(
        out,
        "anomaly_train",
        options={
            "seed": seed,
            "epochs": epochs,
            "ensemble": k,
            "device": dev,
            "signals_run": str(signals_run),
        },
        counts=counts,
        timings=timer.total(),
        extra={"threshold": model.score.threshold, "train_loss": model.train_loss, "skipped": skipped},
    )
    return {**counts, "device": dev, "threshold": float(model.score.threshold)}


def score_run(
    signals_run: Path,
    model_dir: Path,
    out: Path,
    *,
    batch_size: int = 256,
    device: str | None = None,
    input_root: Path | None = None,
    plot: int = 0,
) -> dict[str, Any]:
    """Score every beat of ``signals_run`` with ``model_dir``'s model into ``out/anomalies.parquet``, and
    every window of its ``windows.parquet`` into ``out/window_anomalies.parquet``.

    ``plot`` > 0 also draws the ``plot`` highest-scoring windows as ECG strips
    (``out/top_windows/top_window_<rank>.png``, :func:`medmm.anomaly.window_plot.plot_top_windows`).
    One row per scored record and lead goes to ``out/anomaly_records.parquet``
    (:func:`medmm.anomaly.summary.record_summary`: beats, readable / flagged beats, and whether the
    scorer found two beat populations - a premature ectopic one - and took its references from the
    normal beats).
    Returns counts: records, beats, flagged beats, skipped records, records (and leads) with two beat
    populations, windows (0 when the run has no ``windows.parquet``), windows flagged / unreadable,
    beats in no window, figures drawn.
    """
    from medmm.anomaly.model import load_model
    from medmm.anomaly.records import AnomalyRecordRow, AnomalyRow, WindowAnomalyRow
    from medmm.anomaly.runs import load_signals_run, load_window_tables, run_inputs
    from medmm.anomaly.score import anomaly_frame, score_inputs
    from medmm.anomaly.summary import record_summary
    from medmm.anomaly.windows import assign_beats, score_windows
    from medmm.runinfo import Timer, update_run_json
    from medmm.tables import write_table

    timer = Timer()
    skipped: list[str] = []
    model = load_model(model_dir)
    with timer("load"):
        records = load_signals_run(signals_run, input_root, skipped)
        inputs, keys = run_inputs(records, model.spec)
    with timer("score"):
        scored = score_inputs(model, inputs, batch_size=batch_size, device=device or None)
        frame = anomaly_frame(scored, keys)
        per_record = record_summary(keys, scored)
    write_table(frame, Path(out) / "anomalies.parquet", AnomalyRow)
    write_table(per_record, Path(out) / "anomaly_records.parquet", AnomalyRecordRow)
    counts = {
        "records": len(records),
        "beats": len(frame),
        "flagged": int(frame["flag"].sum()),
        "skipped": len(skipped),
        "records_two_populations": int(per_record["two_populations"].sum()),
    }
    with timer("windows"):
        tables = load_window_tables(Path(signals_run))
        if tables is not None:
            win = score_windows(
                tables.windows,
                frame,
                tables.beats,
                beat_channels=tables.beat_channels,
                good_sqi=tables.good_sqi,
            )
            write_table(win, Path(out) / "window_anomalies.parquet", WindowAnomalyRow)
            in_any = assign_beats(tables.beats, tables.windows)["beat"].nunique()
            counts.update(
                windows=len(win),
                windows_flagged=int(win["flag"].sum()),
                windows_unreadable=int((win["status"] == "unreadable").sum()),
                beats_outside_windows=len(tables.beats) - int(in_any),
            )
        else:  # no windows: a table left by an earlier score into ``out`` would be stale
            (Path(out) / "window_anomalies.parquet").unlink(missing_ok=True)
            counts.update(windows=0, windows_flagged=0, windows_unreadable=0, beats_outside_windows=0)
    if plot > 0 and counts["windows"]:
        from medmm.anomaly.window_plot import plot_top_windows

        with timer("plot"):
            counts["figures"] = len(plot_top_windows(out, signals_run, plot, input_root=input_root))
    update_run_json(
        out,
        "anomaly_score",
        options={
            "model": str(model_dir),
            "signals_run": str(signals_run),
            "batch_size": batch_size,
            "plot": plot,
        },
        counts=counts,
        timings=timer.total(),
        extra={"threshold": model.score.threshold, "skipped": skipped},
    )
    return counts
