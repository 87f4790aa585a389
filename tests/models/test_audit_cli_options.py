"""Command-line overrides are checked like the config file: no untrained model for --epochs 0, no silently
ignored --drop typo, no DataLoader traceback for --batch-size 0 (audit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import make_tiny_run, tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("opts")
    run = make_tiny_run(root / "run", n=16)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return run, root / "m" / "model.pt"


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_train_epochs_override_is_validated(trained: tuple[Path, Path], tmp_path: Path, epochs: str) -> None:
    run, _ = trained
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0)))
    res = CliRunner().invoke(app, ["train", str(path), "--epochs", epochs])
    assert res.exit_code == 2, res.output
    assert (
        f"error: invalid option: --epochs {epochs}: train.epochs: Input should be greater than or equal to 1"
        in (res.output)
    )
    assert "Fix: give a value the training config accepts there" in res.output  # the error names the fix
    assert not (tmp_path / "m" / "model.pt").exists()


def test_evaluate_drop_must_name_a_model_modality(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    base = ["evaluate", "--model", str(model), str(run), "--split", "all", "--out", str(tmp_path / "ev")]
    res = CliRunner().invoke(app, [*base, "--drop", "imgae"])
    assert res.exit_code == 2 and "--drop ['imgae']: not a modality of this model" in res.output
    assert "Fix: drop one of" in res.output
    res = CliRunner().invoke(app, [*base[:-4], "--split", "tset", "--out", str(tmp_path / "ev")])
    assert (
        res.exit_code == 2
        and "split 'tset' is not a split of this checkpoint. Fix: pass --split" in res.output
    )
    res = CliRunner().invoke(app, [*base, "--drop", "image", "--drop", "report", "--drop", "signal"])
    assert res.exit_code == 2 and "hides every modality" in res.output
    assert "Fix: keep at least one" in res.output


def test_predict_batch_size_zero_is_a_usage_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    res = CliRunner().invoke(app, ["predict", "--model", str(model), str(run), "--batch-size", "0"])
    assert res.exit_code == 2
    assert not isinstance(res.exception, ValueError)
