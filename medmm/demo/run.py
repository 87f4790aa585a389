"""Run every stage on the sample data into one run directory and render the figures.

>>> summary = run_full_demo(Path("runs/demo"))  # doctest: +SKIP
>>> sorted(summary["stages"])  # doctest: +SKIP
['anomaly', 'imaging', 'reports', 'signals']
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from medmm.models.quiet import quiet_monai_notices

__all__ = ["run_full_demo"]


def _volume_figure(run_dir: Path, figures: Path) -> Path | None:
    """PNG of the middle slice of the demo's largest volume (RAS, radiological grey scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from medmm.imaging.preview import plot_slice

    volumes = pd.read_parquet(run_dir / "volumes.parquet")
    if volumes.empty:
        return None
    vol = (
        volumes.assign(n=volumes["shape"].map(lambda s: int(s[0]) * int(s[1]) * int(s[2])))
        .sort_values("n")
        .iloc[-1]
    )
    shape = tuple(int(s) for s in vol["shape"])
    out = figures / f"volume_{vol['volume_id']}.png"
    title = f"{vol['modality'] or vol['source_format']} {shape} (RAS, middle axial slice)"
    plt.close(plot_slice(run_dir / vol["path"], out=out, title=title))
    return out


def _ecg_figure(signals_dir: Path, run_dir: Path, figures: Path, record: str) -> Path:
    """ECG strip of ``record``: detected beats, reference symbols, beats the anomaly model flagged."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import wfdb

    from medmm.signals.plot import plot_ecg_strip

    rec = wfdb.rdrecord(str(signals_dir / record))
    ann = wfdb.rdann(str(signals_dir / record), "atr")
    beats = pd.read_parquet(run_dir / "beats.parquet")
    anomalies = pd.read_parquet(run_dir / "anomalies.parquet")
    flagged = anomalies[(anomalies["record"] == record) & anomalies["flag"]]["sample"].to_numpy()
    out = figures / f"ecg_{record}.png"
    plot_ecg_strip(
        rec.p_signal[:, 0],
        float(rec.fs),
        peaks=beats[beats["record"] == record]["sample"].to_numpy(),
        ref_peaks=ann.sample,
        ref_symbols=ann.symbol,
        flagged_beats=flagged,
        start_s=0.0,
        duration_s=12.0,
        title=f"{record}: detected beats, reference symbols, flagged anomalies",
        out=out,
    )
    return out


def _fusion(run_dir: Path, seed: int) -> tuple[dict[str, int], list[str]]:
    """Align the demo's items into records, train a small fused model on them, and predict.

    The demo's records are few (a handful of patients), so the model shows the wiring from stage
    tables to ``predictions.parquet``; its metrics mean nothing (see ``docs/models.md`` for real ones).
    Returns the counts and the training notes (e.g. why the last epoch is kept), printed by the caller.
    """
    from medmm.align.pipeline import align_run
    from medmm.models.config import TrainConfig
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    aligned = align_run(run_dir, label_findings=("cardiomegaly",), pvc_label="pvc")
    config = TrainConfig.model_validate(
        {
            "run_dir": run_dir,
            "out_dir": run_dir / "models" / "fusion",
            "fusion": "attention",
            "modalities": {"image": {}, "report": {}, "signal": {}},
            "tasks": [{"name": "diagnosis", "labels": ["pvc"]}],
            "train": {"epochs": 5, "seed": seed, "progress": False, "n_boot": 200},
        }
    )
    summary = train_from_config(config)
    predicted = predict_run(config.output_dir() / "model.pt", run_dir)
    notes = [str(n) for n in summary.get("notes", [])]
    return {"records": int(aligned["records"]), "predictions": int(predicted["rows"])}, notes


def run_full_demo(
    out: Path, *, workers: int = 2, key_file: Path | None = None, seed: int = 0
) -> dict[str, Any]:
    """Run every stage on sample data into ``out``: ingest, reports, signals, anomalies, align, predict.

    Parameters
    ----------
    out
        Run directory (created). Inputs are generated under ``out/sample_*``; figures go to ``out/figures``.
    workers
        Local Dask workers for the imaging ingest (reports and signals run in-process: the samples are tiny).
    key_file
        Site key for pseudonyms (default ``$MEDMM_KEY_FILE`` or the per-user key, created 0600).

    Returns
    -------
    dict
        ``run_dir``, ``stages`` (counts), ``pipeline``, ``notes`` (the fused model's training notes, also
        printed to stderr one per line as ``note: ...``) and ``figures``.
    """
    from medmm.anomaly.stage import score_run, train_on_run
    from medmm.demo.samples import write_sample_ecg, write_sample_reports
    from medmm.ingest.sample import run_demo
    from medmm.reports.pipeline import parse_reports
    from medmm.reports.render import render_report
    from medmm.signals.pipeline import run_signals
    from medmm.tables import atomic_write_text

    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    imaging = run_demo(out, workers=workers, key_file=key_file, seed=seed)
    reports_csv = write_sample_reports(out / "sample_reports" / "reports.csv")
    reports = parse_reports(
        reports_csv,
        out,
        id_column="report_id",
        text_columns=["indication", "findings", "impression"],
        patient_column="patient_id",
        workers=0,
        key_file=key_file,
    )
    report_html = atomic_write_text(figures / "report_demo-r1.html", render_report("demo-r1", out, page=True))
    signals_dir = write_sample_ecg(out / "sample_signals", seed=seed)
    signals = run_signals(signals_dir, out, workers=0, key_file=key_file)
    train_on_run(out, out / "models" / "beats", seed=seed)
    # beats -> anomalies.parquet, windows -> window_anomalies.parquet, the best window's ECG strip
    anomaly = score_run(out, out / "models" / "beats", out, plot=1)
    with quiet_monai_notices():
        fusion, notes = _fusion(out, seed)
    for note in notes:  # what `medmm train` prints as warnings: why an epoch was kept, undefined metrics
        print(f"note: fused model: {note}", file=sys.stderr, flush=True)
    figs = [
        p for p in (_volume_figure(out, figures), _ecg_figure(signals_dir, out, figures, "demo_ecg_1")) if p
    ]
    figs += sorted((out / "top_windows").glob("top_window_*.png"))  # medmm anomaly score --plot
    return {
        "run_dir": str(out),
        "stages": {
            "imaging": imaging["counts"],
            "reports": reports.counts,
            "signals": signals,
            "anomaly": anomaly,
            "align+predict": fusion,
        },
        "pipeline": reports.pipeline,
        "notes": [f"fused model: {n}" for n in notes],
        "figures": [str(p) for p in [*figs, report_html]],
    }
