"""A modality that had items last night and none tonight leaves no arrays of last night's items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medmm.align.inputs import write_inputs
from medmm.models.store import ArrayStore, write_store


def _records(report_ids: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {"image_id": [None] * len(report_ids), "report_id": report_ids, "signal_id": [None] * len(report_ids)}
    )


def _labels(run: Path, report_ids: list[str]) -> None:
    rows = [{"report_id": r, "finding": "effusion", "status": "present"} for r in report_ids]
    pd.DataFrame(rows).to_parquet(run / "report_labels.parquet")


def test_a_modality_without_items_tonight_has_its_inputs_removed(tmp_path: Path) -> None:
    # last night: images and reports
    write_store(tmp_path / "inputs" / "image", ["v1", "v2"], np.ones((2, 1, 4, 4)))
    _labels(tmp_path, ["r1", "r2"])
    assert write_inputs(tmp_path, _records(["r1", "r2"])) == {"report": 2}
    assert (tmp_path / "inputs" / "image").exists() is False  # no record has an image any more
    assert ArrayStore(tmp_path / "inputs" / "report").get("r2")[0].sum() == 1.0
    # tonight: the reports are gone too
    assert write_inputs(tmp_path, _records([None, None])) == {}
    assert not (tmp_path / "inputs" / "report").exists()
    assert not (tmp_path / "inputs" / "image").exists()


def test_other_files_of_the_run_are_kept(tmp_path: Path) -> None:
    _labels(tmp_path, ["r1"])
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "notes.txt").write_text("a user's file")
    write_inputs(tmp_path, _records([None]))
    assert (tmp_path / "inputs" / "notes.txt").read_text() == "a user's file"
    assert (tmp_path / "report_labels.parquet").exists()


def test_align_with_no_record_tonight_removes_last_nights_inputs(tmp_path: Path) -> None:
    # every volume of the export gone (an empty volumes table): no record, and no array of last night's
    from medmm.align.pipeline import align_run
    from medmm.imaging.records import VolumeRecord
    from medmm.tables import write_table

    write_table([], tmp_path / "volumes.parquet", VolumeRecord)
    write_store(tmp_path / "inputs" / "image", ["v1"], np.ones((1, 1, 4, 4)))
    assert align_run(tmp_path)["records"] == 0
    assert not (tmp_path / "inputs" / "image").exists()
