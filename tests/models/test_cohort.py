"""The constructed cohort on the real data: source-disjoint splits, labels = any modality abnormal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cohort import BRATS_TEST, MITDB_TEST, build_cohort, keyword_findings
from medmm.schemas import validate_frame


@pytest.mark.shared_data
def test_cohort_is_source_disjoint(shared_data: Path, tmp_path: Path) -> None:
    summary = build_cohort(shared_data, tmp_path / "c", n_studies=80, size=32, seed=1)
    records = pd.read_parquet(tmp_path / "c" / "records.parquet")
    splits = pd.read_parquet(tmp_path / "c" / "splits.parquet")
    validate_frame(records, "records")
    assert len(records) == 80 and summary["studies_per_split"] == {"test": 20, "val": 12, "train": 48}
    split = records["record_id"].map(splits.set_index("record_id")["split"])
    assert splits.groupby("patient_id")["split"].nunique().max() == 1
    test, train = records[split == "test"], records[split == "train"]
    for col in ("image_id", "report_id", "signal_id"):
        assert not set(test[col]) & set(train[col])
    assert all(i.split("/")[0] in BRATS_TEST for i in test["image_id"])
    assert not any(i.split("/")[0] in BRATS_TEST for i in train["image_id"])
    assert all(i.split("/")[0].removeprefix("mitdb") in MITDB_TEST for i in test["signal_id"])
    labels = [json.loads(x) for x in records["labels"]]
    assert all(
        lab["abnormal"] == max(lab[f"{m}_abnormal"] for m in ("image", "report", "signal")) for lab in labels
    )
    x = np.load(tmp_path / "c" / "inputs" / "image" / "x.npy", mmap_mode="r")
    assert x.shape[1:] == (1, 32, 32) and np.isfinite(x).all()
    assert summary["train_test_shared_items"] == {"image": 0, "report": 0, "signal": 0}


def test_keyword_findings_negation_and_uncertainty() -> None:
    found = dict(
        keyword_findings("Heart size is enlarged. There is no pneumothorax. Probable right effusion.")
    )
    assert found == {"cardiomegaly": "present", "pneumothorax": "absent", "effusion": "uncertain"}
    assert keyword_findings("") == []
