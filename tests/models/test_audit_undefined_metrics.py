"""Metrics that are undefined on a one-class or label-free set are reported, and `evaluate` refuses an
unknown or empty split with an error instead of a traceback (audit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError, InputError
from medmm.models.config import TrainConfig
from medmm.models.metrics import evaluate_predictions, undefined_metric_notes
from medmm.models.runner import evaluate_checkpoint, train_from_config


def test_one_class_and_label_free_notes_name_the_nan_metrics() -> None:
    y = np.array([[0.0, np.nan, 1.0], [0.0, np.nan, 0.0], [0.0, np.nan, 1.0]])
    p = np.array([[0.2, 0.5, 0.9], [0.7, 0.5, 0.1], [0.1, 0.5, 0.8]])
    metrics = evaluate_predictions(y, p, ["a", "b", "c"], n_boot=0)
    notes = undefined_metric_notes(y, ["a", "b", "c"], "the val set", metrics)
    assert len(notes) == 2
    assert notes[0].startswith("label 'a': the val set has 3 records with a known value, all negative:")
    assert "auroc" in notes[0] and "sensitivity" in notes[0] and "specificity" not in notes[0]
    assert notes[1] == "label 'b': the val set has no record with a known value: every metric undefined (NaN)"


@pytest.fixture()
def trained(tiny_run: Path, tmp_path: Path) -> Path:
    cfg = TrainConfig.model_validate(tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0))
    train_from_config(cfg)
    return tmp_path / "m" / "model.pt"


def test_evaluate_one_class_set_warns_and_records_notes(
    trained: Path, tiny_run: Path, tmp_path: Path
) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records["labels"] = json.dumps({"abnormal": 0, "image_abnormal": 0})
    records.to_parquet(tiny_run / "records.parquet")
    out = tmp_path / "ev"
    res = CliRunner().invoke(
        app, ["evaluate", "--model", str(trained), str(tiny_run), "--split", "all", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "warning: label 'abnormal': the all set has" in res.output and "all negative" in res.output
    saved = json.loads((out / "metrics.json").read_text())
    assert len(saved["notes"]) == 2


def test_evaluate_unknown_split_is_a_config_error(trained: Path, tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split 'tset'"):
        evaluate_checkpoint(trained, tiny_run, tmp_path / "ev", split="tset")
    res = CliRunner().invoke(app, ["evaluate", "--model", str(trained), str(tiny_run), "--split", "tset"])
    assert res.exit_code == 2 and "error: split 'tset'" in res.output


def test_evaluate_empty_split_is_an_input_error(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    from conftest import make_tiny_run

    make_tiny_run(other, seed=1)
    records = pd.read_parquet(other / "records.parquet")
    records["record_id"] = "x-" + records["record_id"]  # none of them is in the model's splits
    records.to_parquet(other / "records.parquet")
    with pytest.raises(InputError, match="no record to evaluate"):
        evaluate_checkpoint(trained, other, tmp_path / "ev", split="test")


def test_train_warns_about_a_one_class_test_set(tiny_run: Path, tmp_path: Path) -> None:
    import yaml

    records = pd.read_parquet(tiny_run / "records.parquet")
    records["labels"] = json.dumps({"abnormal": 1, "image_abnormal": 0})
    records.to_parquet(tiny_run / "records.parquet")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0)))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 0, res.output
    assert "warning: label 'abnormal': the test set has" in res.output and "all positive" in res.output
    notes = json.loads((tmp_path / "m" / "metrics.json").read_text())["notes"]
    assert len([n for n in notes if n.startswith("label ")]) == 2  # (and the anomaly calibration's)


def test_metrics_json_is_strict_json_with_null_for_undefined(
    trained: Path, tiny_run: Path, tmp_path: Path
) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records["labels"] = json.dumps({"abnormal": 0, "image_abnormal": 0})
    records.to_parquet(tiny_run / "records.parquet")
    result = evaluate_checkpoint(trained, tiny_run, tmp_path / "ev", split="all")
    assert np.isnan(result["metrics"]["abnormal"]["auroc"]["value"])  # in memory: NaN, as before

    def no_constants(name: str) -> float:
        raise AssertionError(f"{name} is not JSON")

    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text(), parse_constant=no_constants)
    assert saved["metrics"]["abnormal"]["auroc"]["value"] is None
    assert saved["metrics"]["abnormal"]["accuracy"]["value"] is not None
