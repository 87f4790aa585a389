"""`medmm predict --anomaly-rate`: a threshold calibrated on too few scores for the rate is said (a
warning naming the bound of the flag rate and the fix) and its promise recorded in run.json, instead of
a silent "5%"."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medmm.cli import app
from medmm.models.checkpoint import load_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config
from medmm.predict.predict import predict_run

_spec = importlib.util.spec_from_file_location(
    "models_tiny_run_rate", Path(__file__).resolve().parents[1] / "models" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rate_warning")
    run = _tiny.make_tiny_run(root / "run", n=48)
    train_from_config(TrainConfig.model_validate(_tiny.tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return run, root / "m" / "model.pt"


def _with_calibration(ckpt: Path, scores: torch.Tensor, target: Path) -> Path:
    """The checkpoint with other calibration scores (as if its validation split had been larger)."""
    data = load_checkpoint(ckpt)
    data["embedding_anomaly"]["calibration"] = scores.to(torch.float64).sort().values
    buf = io.BytesIO()
    torch.save(data, buf)
    target.write_bytes(buf.getvalue())
    return target


def test_few_calibration_scores_warn_with_the_bound(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    n = len(load_checkpoint(ckpt)["embedding_anomaly"]["calibration"])
    assert n < 61  # the tiny run: its 95% bound at 5% is above 10%
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(app, ["predict", "--model", str(ckpt), str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if "anomaly threshold was calibrated" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and f"on {n} " in warning[0]
    assert "Fix:" in warning[0] and "Traceback" not in result.output
    section = json.loads((run / "run.json").read_text())["stages"]["predict"]
    fit = section["embedding_anomaly"]
    assert fit["n_calibration"] == n and fit["false_alarm_rate"] == 0.05
    assert 0.1 < fit["false_alarm_upper_95"] < 1 and fit["false_alarm_expected"] <= 0.2
    assert any("calibrated on" in note for note in section["notes"])


def test_a_strict_rate_on_the_same_scores_is_too_few_and_says_so(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    counts = predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_rate=0.01)
    assert any("too few for the false-alarm rate 0.01" in note for note in counts["notes"])


def test_enough_calibration_scores_promise_the_rate_without_a_warning(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    many = _with_calibration(ckpt, torch.linspace(0.5, 9.0, 2000), tmp_path / "many.pt")
    result = CliRunner().invoke(
        app, ["predict", "--model", str(many), str(run), "--out", str(tmp_path / "p.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    fit = json.loads((run / "run.json").read_text())["stages"]["predict"]["embedding_anomaly"]
    assert fit["n_calibration"] == 2000 and fit["false_alarm_upper_95"] < 0.06
