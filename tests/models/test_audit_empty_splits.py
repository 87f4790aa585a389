"""Too few patients for the configured split: an empty test/val split is reported, an empty train split
is an error (audit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_tiny_run, tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config


def test_two_patients_leave_no_test_split_and_train_says_so(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=4)  # 2 patients: 20 % test rounds to none
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0)))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 0, res.output
    assert "warning: the test split is empty (the records have 2 patient(s)): no test metrics" in res.output
    assert "warning: the val split is empty" in res.output
    notes = json.loads((tmp_path / "m" / "metrics.json").read_text())["notes"]
    assert len(notes) == 2


def test_no_note_when_no_test_split_was_asked_for(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=4)
    cfg = tiny_config(run, tmp_path / "m", epochs=1, n_boot=0, val_fraction=0.0, test_fraction=0.0)
    assert train_from_config(TrainConfig.model_validate(cfg))["notes"] == []


def test_empty_train_split_is_a_config_error(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=6)  # 3 patients: 2 val + 1 test leave none for training
    cfg = tiny_config(run, tmp_path / "m", epochs=1, n_boot=0, val_fraction=0.5, test_fraction=0.4)
    with pytest.raises(ConfigError, match="the train split is empty"):
        train_from_config(TrainConfig.model_validate(cfg))


def test_fractions_that_leave_nothing_to_train_on_are_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match=r"val_fraction \+ train.test_fraction"):
        TrainConfig.model_validate(
            {
                "run_dir": "r",
                "modalities": {"report": {}},
                "tasks": [{"name": "dx", "labels": ["a"]}],
                "train": {"val_fraction": 0.6, "test_fraction": 0.6},
            }
        )
