"""The per-record table of `medmm anomaly score` (`anomaly_records.parquet`): a record where the v0.10
scorer found a normal and a premature ectopic beat population (bigeminy, trigeminy) is reported - in
the table, on the console and in the run counts - and a record without one is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_dominant_ref import _ecg, _embed, _signal
from typer.testing import CliRunner

from medmm.anomaly.model import ScoreConfig
from medmm.anomaly.score import score_embeddings
from medmm.anomaly.summary import record_summary, two_population_lines
from medmm.schemas import validate_frame

FS = 360.0


def _keys(n: int, record: str) -> pd.DataFrame:
    return pd.DataFrame({"record": record, "channel": "MLII", "sample": np.arange(n) * 300})


@pytest.mark.parametrize(("pattern", "share"), [("NV", 1 / 2), ("NNV", 1 / 3), ("NNNV", 1 / 4)])
def test_bigeminy_and_trigeminy_are_reported_with_their_ectopic_share(pattern: str, share: float) -> None:
    bi, v = _ecg(pattern)
    out = score_embeddings(_embed(bi), bi, ScoreConfig())
    assert out["two_populations"].all()
    assert not out["normal_ref"][v].any() and out["normal_ref"][~v].all()
    row = record_summary(_keys(len(bi), "r"), out).iloc[0]
    assert bool(row["two_populations"]) and row["reference"] == "normal beats"
    assert row["ectopic_share"] == pytest.approx(share, abs=0.01)
    assert row["n_beats"] == len(bi) and row["n_flagged"] == int(out["flag"].sum())
    [line] = two_population_lines(record_summary(_keys(len(bi), "r"), out))
    assert f"about {share:.0%} premature with a pause" in line


@pytest.mark.parametrize("pattern", ["N", "N" * 24 + "V", "NM"])
def test_a_record_with_one_population_is_not_reported(pattern: str) -> None:
    """Sinus rhythm, rare PVCs, two normal QRS shapes at the same rhythm: no report, and the table
    says the references came from all beats."""
    bi, _ = _ecg(pattern, n=400)
    out = score_embeddings(_embed(bi), bi, ScoreConfig())
    table = record_summary(_keys(len(bi), "r"), out)
    assert not table["two_populations"].any() and table["ectopic_share"].isna().all()
    assert (table["reference"] == "all beats").all()
    assert two_population_lines(table) == []


def test_without_dominant_references_no_record_has_two_populations() -> None:
    bi, _ = _ecg("NV")
    out = score_embeddings(_embed(bi), bi, ScoreConfig(dominant_ref=False))
    assert not record_summary(_keys(len(bi), "r"), out)["two_populations"].any()


def test_one_row_per_record_and_lead_with_readable_and_flagged_counts() -> None:
    keys = pd.DataFrame(
        {"record": ["b", "a", "a", "b"], "channel": ["II", "II", "V", "II"], "sample": [1, 1, 1, 2]}
    )
    out = {"flag": np.array([True, False, True, False]), "weight": np.array([0.0, 1.0, 0.5, 1.0])}
    table = record_summary(keys, out)
    assert table[["record", "channel", "n_beats", "n_readable", "n_flagged"]].values.tolist() == [
        ["a", "II", 1, 1, 0],
        ["a", "V", 1, 1, 1],
        ["b", "II", 2, 1, 1],
    ]
    assert validate_frame(table, "anomaly_records") == 3
    empty = record_summary(keys.iloc[:0], {k: v[:0] for k, v in out.items()})
    assert empty.empty and list(empty.columns) == list(table.columns)


@pytest.fixture(scope="module")
def run_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A signals run of three synthetic WFDB records (bigeminy, sinus, sinus with rare PVCs) and a
    one-network model trained on it."""
    import wfdb

    from medmm.anomaly.stage import train_on_run
    from medmm.pseudonym import Pseudonymizer
    from medmm.signals.pipeline import run_signals

    base = tmp_path_factory.mktemp("twopop")
    inp = base / "in"
    inp.mkdir()
    for name, pattern, seed in (("big1", "NV", 0), ("sinus1", "N", 1), ("rare1", "N" * 30 + "V", 2)):
        wfdb.wrsamp(
            name,
            fs=FS,
            units=["mV"],
            sig_name=["MLII"],
            p_signal=_signal(pattern, 240, seed)[0][:, None],
            fmt=["16"],
            adc_gain=[200.0],
            baseline=[0],
            write_dir=str(inp),
        )
    run = base / "run"
    run_signals(inp, run, workers=0, pseudonymizer=Pseudonymizer(bytes.fromhex("ab" * 32)))
    train_on_run(run, base / "model", seed=0, epochs=2, ensemble=1, device="cpu")
    return run, base / "model"


def test_score_reports_the_bigeminy_record_in_table_console_and_counts(
    run_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    from medmm.cli import app

    run, model = run_and_model
    out = tmp_path / "scores"
    res = CliRunner().invoke(
        app, ["anomaly", "score", "--model", str(model), str(run), "--out", str(out), "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out / "anomaly_records.parquet")
    assert validate_frame(table, "anomaly_records") == 3
    two = table.set_index("record")["two_populations"].to_dict()
    assert two == {"big1": True, "rare1": False, "sinus1": False}
    big = table.set_index("record").loc["big1"]
    assert big["ectopic_share"] == pytest.approx(0.5, abs=0.02)
    assert big["n_beats"] == int((pd.read_parquet(out / "anomalies.parquet")["record"] == "big1").sum())
    assert "3 records/leads, 1 with two beat populations" in res.output
    assert "record big1 MLII: two beat populations (about 50% premature with a pause)" in res.output
    assert "references taken from the normal beats" in res.output
    assert "sinus1 MLII: two" not in res.output and "rare1 MLII: two" not in res.output
    counts = json.loads((out / "run.json").read_text())["stages"]["anomaly_score"]["counts"]
    assert counts["records_two_populations"] == 1


def test_workflow_anomaly_stage_counts_records_with_two_populations(
    run_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    from medmm.workflows.config import WorkflowConfig
    from medmm.workflows.run import run_workflow

    run, model = run_and_model
    shutil.copytree(run, tmp_path / "run")
    cfg = WorkflowConfig.model_validate(
        {
            "name": "w",
            "run_dir": "run",
            "stages": [{"stage": "anomaly", "options": {"model": str(model), "device": "cpu"}}],
        }
    )
    result = run_workflow(cfg, tmp_path)
    assert result.counts["anomaly"]["records_two_populations"] == 1
    assert (tmp_path / "run" / "anomaly_records.parquet").is_file()
