"""Records whose waveform cannot be re-read are not scored: the CLI warns, and a --strict workflow fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import medmm.anomaly.stage as stage
from medmm.cli import app
from medmm.workflows.config import WorkflowConfig
from medmm.workflows.run import run_workflow


def _fake_score(*args: Any, **kwargs: Any) -> dict[str, int]:
    return {"records": 0, "beats": 0, "flagged": 0, "skipped": 2}


def test_score_cli_warns_about_skipped_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "score_run", _fake_score)
    (tmp_path / "run").mkdir()
    (tmp_path / "model").mkdir()
    run, model = str(tmp_path / "run"), str(tmp_path / "model")
    res = CliRunner().invoke(app, ["anomaly", "score", run, "--model", model, "--out", str(tmp_path)])
    assert res.exit_code == 0
    assert "2 records skipped" in " ".join(res.output.split())


def test_workflow_counts_skipped_records_as_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage, "score_run", _fake_score)
    cfg = WorkflowConfig.model_validate(
        {"name": "x", "run_dir": "run", "stages": [{"stage": "anomaly", "options": {"model": "m"}}]}
    )
    result = run_workflow(cfg, tmp_path)
    assert result.n_quarantined == 2
