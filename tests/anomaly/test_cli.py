"""CLI train -> score on a small signals run directory made by the signals stage (2 MIT-BIH records)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.pseudonym import Pseudonymizer
from medmm.schemas import validate_frame


@pytest.fixture(scope="module")
def signals_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medmm.signals.pipeline import run_signals

    src = shared_data / "signals" / "mitdb_subset"
    inp = tmp_path_factory.mktemp("mitdb2")
    for rec in ("100", "116"):
        for ext in ("hea", "dat", "atr"):
            (inp / f"{rec}.{ext}").symlink_to(src / f"{rec}.{ext}")
    out = tmp_path_factory.mktemp("sigrun")
    run_signals(inp, out, workers=0, pseudonymizer=Pseudonymizer(bytes.fromhex("ab" * 32)))
    return out


@pytest.mark.shared_data
def test_cli_train_then_score(signals_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    model_dir, score_dir = tmp_path / "model", tmp_path / "scores"
    args = ["anomaly", "train", str(signals_run), "--out", str(model_dir), "--seed", "1", "--epochs", "2"]
    res = runner.invoke(app, [*args, "--ensemble", "2"])
    assert res.exit_code == 0, res.output
    card = json.loads((model_dir / "model.json").read_text())
    assert card["config"]["ensemble"] == 2 and card["version"] == 2
    assert card["seed"] == 1 and card["n_train_records"] == 2 and card["threshold"] > 0
    res = runner.invoke(
        app, ["anomaly", "score", "--model", str(model_dir), str(signals_run), "--out", str(score_dir)]
    )
    assert res.exit_code == 0, res.output
    anomalies = pd.read_parquet(score_dir / "anomalies.parquet")
    beats = pd.read_parquet(signals_run / "beats.parquet")
    assert validate_frame(anomalies, "anomalies") == len(beats)
    keys = ["record", "channel", "sample"]
    merged = anomalies.merge(beats[[*keys, "ref_symbol"]], on=keys, how="inner", validate="1:1")
    assert len(merged) == len(beats)
    # labels were never used, yet the record with 100+ PVCs is where the flags are
    flagged = merged[merged["flag"]]
    assert (flagged["record"] == "116").mean() > 0.8  # measured 0.89 (record 100 has APCs)
    assert (flagged["ref_symbol"] == "V").mean() > 0.8
    run = json.loads((score_dir / "run.json").read_text())
    assert run["stages"]["anomaly_score"]["counts"]["beats"] == len(beats)


@pytest.mark.shared_data
def test_cli_errors_name_the_fix(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["anomaly", "train", str(tmp_path), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert "beats.parquet" in res.output and "medmm signals ingest" in res.output
    res = runner.invoke(
        app, ["anomaly", "score", "--model", str(tmp_path), str(tmp_path), "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "model.json" in res.output


@pytest.mark.shared_data
def test_cli_skips_record_whose_waveform_is_gone(
    signals_run: Path, shared_data: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "input"
    partial.mkdir()
    for ext in ("hea", "dat"):
        (partial / f"100.{ext}").symlink_to(shared_data / "signals" / "mitdb_subset" / f"100.{ext}")
    model_dir = tmp_path / "model"
    res = CliRunner().invoke(
        app,
        [
            "anomaly",
            "train",
            str(signals_run),
            "--out",
            str(model_dir),
            "--epochs",
            "1",
            "--ensemble",
            "1",
            "--input",
            str(partial),
        ],
    )
    assert res.exit_code == 0, res.output
    section = json.loads((model_dir / "run.json").read_text())["stages"]["anomaly_train"]
    assert section["counts"]["records"] == 1 and section["counts"]["skipped"] == 1
    assert section["skipped"][0].startswith("116: ")
