"""Unreadable or foreign tables (records.parquet, splits_file) are InputErrors naming the file (audit)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_config

from medmm.errors import InputError
from medmm.models.config import TrainConfig
from medmm.models.runner import train_from_config


def _cfg(run: Path, tmp_path: Path, **extra: object) -> TrainConfig:
    return TrainConfig.model_validate({**tiny_config(run, tmp_path / "m", epochs=1, n_boot=0), **extra})


def test_corrupt_records_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.parquet").write_text("junk")
    with pytest.raises(InputError, match=r"records.parquet: not a readable parquet table"):
        train_from_config(_cfg(run, tmp_path))


def test_records_table_without_the_model_columns(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"record_id": ["a"], "labels": ["{}"]}).to_parquet(run / "records.parquet")
    with pytest.raises(InputError, match=r"lacks the column\(s\) \['patient_id'"):
        train_from_config(_cfg(run, tmp_path))


def test_splits_file_of_another_run(tiny_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "splits.parquet"
    pd.DataFrame({"record_id": ["x-1"], "split": ["train"]}).to_parquet(other)
    with pytest.raises(InputError, match="none of its record_id values is a record of"):
        train_from_config(_cfg(tiny_run, tmp_path, splits_file=str(other)))
    pd.DataFrame({"record": ["x-1"]}).to_parquet(other)
    with pytest.raises(InputError, match=r"lacks the column\(s\) \['record_id', 'split'\]"):
        train_from_config(_cfg(tiny_run, tmp_path, splits_file=str(other)))


def test_train_out_dir_that_is_a_file(tiny_run: Path, tmp_path: Path) -> None:
    (tmp_path / "m").write_text("x")
    with pytest.raises(InputError, match=r"out_dir \(--out\) is a file"):
        train_from_config(_cfg(tiny_run, tmp_path))
