"""`models compare` says why its metrics are NaN when the test split has one class (audit)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from medmm.models.compare import compare_models


def test_one_class_test_split_is_reported(
    tiny_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    records["labels"] = json.dumps({"abnormal": 1})
    records.to_parquet(tiny_run / "records.parquet")
    out = tmp_path / "cmp"
    with caplog.at_level(logging.WARNING, logger="medmm.models.compare"):
        compare_models(tiny_run, out, "abnormal", ["sum"], {"epochs": 1, "n_boot": 0, "batch_size": 16})
    assert any(
        "label 'abnormal': the test split has" in r.message and "all positive" in r.message
        for r in caplog.records
    )
    saved = json.loads((out / "compare.json").read_text())
    assert saved["notes"] and "auroc" in saved["notes"][0]
