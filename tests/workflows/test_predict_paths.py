"""The predict stage of a workflow file resolves its paths against the workflow's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medmm.workflows import run as run_mod
from medmm.workflows.config import StageStep
from medmm.workflows.run import StageContext


def test_model_and_anomaly_calibration_are_relative_to_the_workflow_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_predict_run(checkpoint: Path, run_dir: Path, anomaly_calibration: Path | None = None) -> dict:
        seen.update(checkpoint=checkpoint, anomaly_calibration=anomaly_calibration)
        return {"predictions": 1}

    import medmm.predict.predict as predict_mod

    monkeypatch.setattr(predict_mod, "predict_run", fake_predict_run)
    base = tmp_path / "site" / "workflows"
    ctx = StageContext(run_dir=tmp_path / "run", base_dir=base, workers=0, scheduler=None, key_file=None)
    step = StageStep(
        stage="predict", options={"model": "models/m.pt", "anomaly_calibration": "../normal_run"}
    )
    assert run_mod._predict(step, ctx) == {"predictions": 1}
    assert seen["checkpoint"] == (base / "models" / "m.pt").resolve()
    assert seen["anomaly_calibration"] == (tmp_path / "site" / "normal_run").resolve()
