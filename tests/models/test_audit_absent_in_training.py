"""Training with a configured modality that no record has is a clear error (audit)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_config

from medmm.errors import ConfigError
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config


def test_modality_missing_from_every_record(tiny_run: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records["has_image"] = False
    records["image_id"] = None
    records = records[records["has_report"] | records["has_signal"]]
    records.to_parquet(tiny_run / "records.parquet")
    shutil.rmtree(tiny_run / "inputs" / "image")  # as align leaves a run without images
    cfg = TrainConfig.model_validate(tiny_config(tiny_run, tmp_path / "m", epochs=1, n_boot=0))
    with pytest.raises(ConfigError, match=r"modalities \['image'\] of the training config are in none of"):
        train_from_config(cfg)
