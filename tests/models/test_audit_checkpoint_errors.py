"""Wrong files passed as `--model` are user errors naming the file and the fix (audit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import InputError
from medmm.models.config import TrainConfig
from medmm.models.runner import load_model, train_from_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import make_tiny_run

    root = tmp_path_factory.mktemp("ckpt")
    run = make_tiny_run(root / "run", n=16)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return root / "m" / "model.pt"


def test_checkpoint_whose_weights_do_not_match_its_config(trained: Path, tmp_path: Path) -> None:
    data = torch.load(trained, weights_only=True)
    data["meta"]["config"]["embed_dim"] = 4
    bad = tmp_path / "edited.pt"
    torch.save(data, bad)
    with pytest.raises(InputError, match=r"edited.pt: weights do not match .*size mismatch"):
        load_model(bad)
    run = trained.parent.parent / "run"
    res = CliRunner().invoke(
        app, ["predict", "--model", str(bad), str(run), "--out", str(tmp_path / "p.parquet")]
    )
    assert res.exit_code == 2 and "error: " in res.output and "Traceback" not in res.output


def test_checkpoint_without_metadata_keys(trained: Path, tmp_path: Path) -> None:
    data = torch.load(trained, weights_only=True)
    del data["meta"]["input_shapes"]
    bad = tmp_path / "old.pt"
    torch.save(data, bad)
    with pytest.raises(InputError, match=r"metadata lacks \['input_shapes'\]"):
        load_model(bad)


def test_directory_and_anomaly_model_point_to_the_right_file(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"is a directory.*Fix: pass the checkpoint file, e.g. .*model.pt"):
        load_model(trained.parent)
    beats = tmp_path / "beats"
    beats.mkdir()
    (beats / "model.json").write_text("{}")
    torch.save({"w": torch.ones(1)}, beats / "weights.pt")
    for path in (beats, beats / "weights.pt"):
        with pytest.raises(InputError, match="medmm anomaly score --model"):
            load_model(path)
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")
    with pytest.raises(InputError, match=r"truncated, or not written by torch\.save"):
        load_model(text)


def test_kfold_output_folder_points_to_a_fold_model(tmp_path: Path) -> None:
    (tmp_path / "cv" / "fold0").mkdir(parents=True)
    torch.save({"w": torch.ones(1)}, tmp_path / "cv" / "fold0" / "model.pt")
    for path in (tmp_path / "cv", tmp_path / "cv" / "model.pt"):
        with pytest.raises(
            InputError, match=r"one model per fold: pass one of them, e\.g\. .*fold0/model\.pt"
        ):
            load_model(path)
