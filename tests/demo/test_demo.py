"""`medmm demo` runs every stage on the sample data; the generated ECG has real, detectable PVCs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from medmm.cli import app
from medmm.demo.samples import synthetic_ecg
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.signals.beats import detect_rpeaks, match_reference


def test_synthetic_ecg_beats_are_detectable() -> None:
    ecg, samples, symbols = synthetic_ecg(360.0, 60.0, seed=3)
    result = match_reference(detect_rpeaks(ecg, 360.0), samples, 360.0)
    assert result.sensitivity > 0.99 and result.positive_predictivity > 0.99
    assert 0.08 < symbols.count("V") / len(symbols) < 0.2


def test_demo_command_runs_every_stage(tmp_path: Path, key_file: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    tables = ("manifest", "volumes", "entities", "report_labels", "signals", "beats", "anomalies", "records")
    for table in (*tables, "predictions"):
        assert (out / f"{table}.parquet").exists(), table
    labels = pd.read_parquet(out / "report_labels.parquet")
    r1_id = Pseudonymizer(load_key(key_file)).id("demo-r1", "report")  # report ids are pseudonyms
    r1 = labels[labels["report_id"] == r1_id].set_index("finding")["status"]
    assert not labels["report_id"].str.contains("demo-r").any()
    assert r1["cardiomegaly"] == "present" and r1["pleural effusion"] == "absent"
    # the label-free model flags the generated PVCs (reference .atr symbols are never used to train)
    anomalies = pd.read_parquet(out / "anomalies.parquet")
    beats = pd.read_parquet(out / "beats.parquet")
    merged = anomalies.merge(beats[["record", "sample", "ref_symbol"]], on=["record", "sample"])
    is_v = merged["ref_symbol"] == "V"
    se = (merged["flag"] & is_v).sum() / is_v.sum()
    ppv = (merged["flag"] & is_v).sum() / max(1, merged["flag"].sum())
    assert se > 0.9 and ppv > 0.9, (se, ppv)
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 10_000 for p in pngs)
    assert r1_id in (out / "figures" / "report_demo-r1.html").read_text()
    assert "DEMO^SYNTHETIC" not in result.output and "DEMO-0001" not in (
        out / "report_labels.parquet"
    ).read_bytes().decode("latin-1")
    assert np.isfinite(anomalies["score"]).all()
    records = pd.read_parquet(out / "records.parquet")
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["record_id"]) <= set(records["record_id"]) and len(predictions) > 0
    assert predictions["score"].between(0, 1).all()
