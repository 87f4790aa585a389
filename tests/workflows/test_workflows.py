"""Workflow files validate against their schema and `medmm run` drives the real stages."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.schemas import schema_dir
from medmm.workflows.config import WorkflowConfig, load_workflow
from medmm.workflows.run import run_workflow

WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflows"
WORKFLOWS = sorted(p for p in WORKFLOW_DIR.glob("*.yaml") if not p.name.startswith("train_"))
TRAIN_CONFIGS = sorted(WORKFLOW_DIR.glob("train_*.yaml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_shipped_workflows_validate(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    jsonschema.validate(data, json.loads((schema_dir() / "workflow.schema.json").read_text()))
    assert load_workflow(path)[0].name == data["name"]


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_train_configs_validate(path: Path) -> None:
    from medmm.models.config import load_config

    assert load_config(path).tasks


def test_invalid_workflow_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("name: x\nrun_dir: r\nstages:\n  - stage: ingest\n")
    with pytest.raises(ConfigError, match="needs an `input`"):
        load_workflow(bad)
    bad.write_text("name: x\nrun_dir: r\nstages:\n  - stage: nonsense\n    input: a\n")
    with pytest.raises(ConfigError, match=r"stages\.0\.stage"):
        load_workflow(bad)


def test_unknown_stage_option_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    cfg = WorkflowConfig.model_validate(
        {"name": "x", "run_dir": "r", "stages": [{"stage": "ingest", "input": "a", "options": {"wrkers": 2}}]}
    )
    with pytest.raises(ConfigError, match="unknown option"):
        run_workflow(cfg, tmp_path)


def test_run_ingests_sample_archive_and_resumes(tmp_path: Path, key_file: Path) -> None:
    from medmm.ingest.sample import build_sample_archive
    from medmm.tables import read_table

    build_sample_archive(tmp_path / "archive")
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "name: t\nrun_dir: run\ncluster: {workers: 1}\nstages:\n  - stage: ingest\n    input: archive\n"
    )
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(wf)])
    assert first.exit_code == 0, first.output
    manifest = read_table(tmp_path / "run" / "manifest.parquet")
    n_files = sum(1 for p in (tmp_path / "archive").rglob("*") if p.is_file())
    assert len(manifest) == n_files and manifest["path"].is_unique
    assert (manifest["status"] == "ingested").any() and (manifest["status"] == "quarantined").any()
    strict = runner.invoke(app, ["run", str(wf), "--strict"])
    assert strict.exit_code == 1  # the sample archive holds quarantined junk on purpose
    assert len(read_table(tmp_path / "run" / "manifest.parquet")) == n_files


def test_signals_then_anomaly_workflow(tmp_path: Path, key_file: Path) -> None:
    from medmm.demo.samples import write_sample_ecg
    from medmm.tables import read_table

    write_sample_ecg(tmp_path / "ecg", n_records=2, duration_s=60.0)
    cfg = WorkflowConfig.model_validate(
        {
            "name": "t",
            "run_dir": "run",
            "stages": [
                {"stage": "signals", "input": "ecg"},
                {"stage": "anomaly", "options": {"model": "model", "train": True, "epochs": 3}},
                {"stage": "align", "options": {"pvc_label": "pvc"}},
            ],
        }
    )
    result = run_workflow(cfg, tmp_path, workers=1)
    beats = read_table(tmp_path / "run" / "beats.parquet")
    anomalies = read_table(tmp_path / "run" / "anomalies.parquet")
    assert result.counts["anomaly"]["beats"] == len(beats) == len(anomalies) > 100
    assert (tmp_path / "model" / "model.json").exists()
    records = read_table(tmp_path / "run" / "records.parquet")
    assert result.counts["align"]["records"] == len(records) > 0 and records["has_signal"].all()
