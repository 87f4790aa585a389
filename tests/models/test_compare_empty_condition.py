"""`models compare` with a test split where no record has one of the modalities (a test condition with no
records): that row has no metrics and a note; before, `torch.cat` of an empty batch list crashed the whole
comparison after every model had trained."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medmm.models.compare import compare_models
from medmm.tables import write_table


def test_a_test_condition_without_records_is_a_row_without_metrics(tiny_run: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(tiny_run / "records.parquet")
    # every record without an image is test; the rest train/val: no test record has an image
    split = [
        "test" if not has else ("val" if i % 5 == 0 else "train")
        for i, has in enumerate(records["has_image"])
    ]
    assert "test" in split and not records["has_image"][[s == "test" for s in split]].any()
    write_table(
        pd.DataFrame({"record_id": records["record_id"], "split": split}), tiny_run / "splits.parquet"
    )
    out = tmp_path / "cmp"
    compare_models(tiny_run, out, "abnormal", ["sum"], {"epochs": 1, "n_boot": 0, "batch_size": 16})
    table = pd.read_csv(out / "compare.csv")
    image_only = table[table["test_modalities"] == "image"]
    assert len(image_only) == 2  # unimodal image and fusion sum tested on the image alone
    assert (image_only["n_test"] == 0).all() and image_only["auroc_value"].isna().all()
    others = table[~table["test_modalities"].str.fullmatch("image")]
    assert (others["n_test"] > 0).all()
    notes = json.loads((out / "compare.json").read_text())["notes"]
    assert "no test record has image: no metrics for those rows" in notes
