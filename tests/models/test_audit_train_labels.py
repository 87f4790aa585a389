"""`medmm train` refuses labels the records do not carry and runs with no usable record (audit)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError, InputError
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config


def test_unknown_label_is_a_config_error_before_training(tiny_run: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0)
    cfg["tasks"] = [{"name": "dx", "labels": ["abnormal", "pneumonia"]}]
    with pytest.raises(ConfigError, match=r"\['pneumonia'\].*labels there: \['abnormal', 'image_abnormal'\]"):
        train_from_config(TrainConfig.model_validate(cfg))
    assert not (tmp_path / "m" / "model.pt").exists()


def test_label_unknown_in_every_record_of_the_modalities(tiny_run: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records["labels"] = [
        json.dumps({"abnormal": None if has else 1}) for has in records["has_report"].to_numpy(bool)
    ]
    records.to_parquet(tiny_run / "records.parquet")
    cfg = tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0)
    cfg["modalities"] = {"report": {"out_dim": 8}}
    cfg["tasks"] = [{"name": "dx", "labels": ["abnormal"]}]
    with pytest.raises(ConfigError, match="no known 0/1 value"):
        train_from_config(TrainConfig.model_validate(cfg))


def test_no_record_with_the_modalities_is_an_input_error(tiny_run: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records["has_image"] = False
    records.to_parquet(tiny_run / "records.parquet")
    cfg = tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0)
    cfg["modalities"] = {"image": {"out_dim": 8}}
    with pytest.raises(InputError, match=r"records.parquet: no record has any of the model's modalities"):
        train_from_config(TrainConfig.model_validate(cfg))


def test_cli_prints_the_label_error_and_exits_2(tiny_run: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0)
    cfg["tasks"] = [{"name": "dx", "labels": ["pneumonia"]}]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2, res.output
    assert "error: label(s) ['pneumonia']" in res.output
    assert "Traceback" not in res.output


def test_label_value_that_is_not_0_1_or_null(tiny_run: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records.loc[0, "labels"] = json.dumps({"abnormal": "yes", "image_abnormal": 0})
    records.to_parquet(tiny_run / "records.parquet")
    cfg = TrainConfig.model_validate(tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0))
    with pytest.raises(
        ConfigError, match=r"has label values \{'abnormal': 'yes'\}; labels must be 0, 1 or null"
    ):
        train_from_config(cfg)
