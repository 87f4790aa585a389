"""Scoring a run that lacks one of the model's modalities entirely (audit regression tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_config

from medmm.errors import InputError
from medmm.models.config import TrainConfig
from medmm.models.runner import evaluate_checkpoint, train_from_config
from medmm.predict.predict import predict_run


@pytest.fixture()
def trained(tiny_run: Path, tmp_path: Path) -> Path:
    cfg = TrainConfig.model_validate(tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0))
    train_from_config(cfg)
    return tmp_path / "m" / "model.pt"


def _run_without(src: Path, dst: Path, modality: str) -> Path:
    """A copy of ``src`` where no record has ``modality`` and its inputs are gone."""
    records = pd.read_parquet(src / "records.parquet")
    records[f"has_{modality}"] = False
    records[f"{modality}_id"] = None
    others = [c for c in records.columns if c.startswith("has_") and c != f"has_{modality}"]
    records = records[records[others].any(axis=1)]
    dst.mkdir()
    records.to_parquet(dst / "records.parquet")
    shutil.copytree(src / "inputs", dst / "inputs")
    shutil.rmtree(dst / "inputs" / modality)
    return dst


def test_predict_and_evaluate_without_image_inputs(trained: Path, tiny_run: Path, tmp_path: Path) -> None:
    run = _run_without(tiny_run, tmp_path / "noimg", "image")
    counts = predict_run(trained, run)
    n = len(pd.read_parquet(run / "records.parquet"))
    assert counts["records"] == n and counts["rows"] == 2 * n
    pred = pd.read_parquet(run / "predictions.parquet")
    assert not pred["modalities"].str.contains("image").any()
    assert pred["weight_image"].isna().all()
    result = evaluate_checkpoint(trained, run, tmp_path / "ev", split="all")
    assert result["n"] == n


def test_predict_with_no_usable_record_is_an_input_error(
    trained: Path, tiny_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "none"
    run.mkdir()
    records = pd.read_parquet(tiny_run / "records.parquet")
    for m in ("image", "report", "signal"):
        records[f"has_{m}"] = False
    records.to_parquet(run / "records.parquet")
    with pytest.raises(InputError, match=r"none of its .* record"):
        predict_run(trained, run)
