"""Scoring a run whose inputs are not laid out as in training is an error, not a torch traceback or
silently misread report vectors (audit)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_run, tiny_config

from medmm.errors import InputError
from medmm.models.config import TrainConfig
from medmm.models.runner import evaluate_checkpoint, train_from_config
from medmm.predict.predict import predict_run

VOCAB = ["effusion", "edema", "nodule"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mismatch")
    run = make_tiny_run(root / "run", n=16)
    (run / "inputs" / "report" / "vocabulary.json").write_text(json.dumps(VOCAB))
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return run, root / "m" / "model.pt"


def _copy(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("models", "predictions*"))
    return dst


def test_same_layout_scores(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    assert predict_run(model, _copy(run, tmp_path / "same"))["records"] == 16


def test_wider_report_vectors_are_an_input_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    other = _copy(run, tmp_path / "wide")
    x = np.load(other / "inputs" / "report" / "x.npy")
    np.save(other / "inputs" / "report" / "x.npy", np.concatenate([x, np.zeros((len(x), 3), np.float32)], 1))
    with pytest.raises(
        InputError, match=r"inputs/report: report items have shape \[12\].*trained on shape \[9\]"
    ):
        predict_run(model, other)
    with pytest.raises(InputError, match="report items have shape"):
        evaluate_checkpoint(model, other, tmp_path / "ev", split="all")


def test_reordered_vocabulary_is_an_input_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, model = trained
    other = _copy(run, tmp_path / "order")
    (other / "inputs" / "report" / "vocabulary.json").write_text(json.dumps(VOCAB[::-1]))
    with pytest.raises(InputError, match="report finding vocabulary differs"):
        predict_run(model, other)
