"""Resumable `parse`: a second run over the same RUN_DIR does no parsing work and yields identical
tables; a changed report (or a part lost with a killed run) is parsed again, and only that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer, load_key
from medmm.reports import pipeline
from medmm.reports.resume import PARTS_DIR

CSV = (
    "uid,findings,impression\n"
    "1,Heart is mildly enlarged. No pneumothorax.,Possible left lower lobe atelectasis.\n"
    "2,The lungs are clear. No pleural effusion.,No acute cardiopulmonary abnormality.\n"
    "3,A 12 mm nodule in the right upper lobe.,Nodule.\n"
    "4, , \n"
)
TABLES = ("entities", "report_labels", "report_texts", "manifest_reports")


def _tables(run: Path) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(run / f"{t}.parquet") for t in TABLES}


def _parse(src: Path, run: Path, **options: Any) -> dict[str, int]:
    return pipeline.parse_reports(src, run, workers=0, batch_size=1, keep_text=True, **options).counts


def _rids(key_file: Path, raw: str) -> list[str]:
    """The report ids written for the input ids ``raw`` (one character each) with ``key_file``."""
    return [Pseudonymizer(load_key(key_file)).id(i, "report") for i in raw]


def _count_parsing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the report ids that go through the pipeline."""
    seen: list[str] = []
    real = pipeline.parse_batch

    def spy(batch: list[Any], spec: Any) -> Any:
        seen.extend(r.report_id for r in batch)
        return real(batch, spec)

    monkeypatch.setattr(pipeline, "parse_batch", spy)
    return seen


def test_second_run_does_no_work_and_same_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    src, run = tmp_path / "r.csv", tmp_path / "run"
    src.write_text(CSV)
    first = _parse(src, run)
    assert (first["parsed_now"], first["resumed"]) == (3, 0)
    before = _tables(run)
    seen = _count_parsing(monkeypatch)
    second = _parse(src, run)
    assert seen == [] and (second["parsed_now"], second["resumed"]) == (0, 3)
    after = _tables(run)
    for t in TABLES:
        pd.testing.assert_frame_equal(before[t], after[t])
    assert after["manifest_reports"]["status"].tolist() == ["ingested"] * 3 + ["quarantined"]


def test_changed_report_and_lost_part_are_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    r1, r2, r3 = _rids(key_file, "123")
    src, run = tmp_path / "r.csv", tmp_path / "run"
    src.write_text(CSV)
    _parse(src, run)
    parts = sorted((run / PARTS_DIR).glob("part-*-reports.arrow"))
    assert len(parts) == 3
    # a run killed before the part of report 2 was complete: its marker file is missing
    lost = next(p for p in parts if pd.read_feather(p)["report_id"].tolist() == [r2])
    lost.unlink()
    src.write_text(CSV.replace("A 12 mm nodule", "A 15 mm nodule"))  # report 3 changed
    seen = _count_parsing(monkeypatch)
    counts = _parse(src, run)
    assert sorted(seen) == sorted([r2, r3]) and counts["resumed"] == 1
    ents = _tables(run)["entities"]
    nodule = ents[(ents.report_id == r3) & (ents.label == "FINDING") & (ents.finding == "nodule")]
    assert nodule["measurement_mm"].tolist()[0] == 15.0
    labels = _tables(run)["report_labels"]
    assert set(labels.report_id) == {r1, r2, r3}
    assert labels[(labels.report_id == r2) & (labels.finding == "normal")]["status"].tolist() == ["present"]
    # the stale part of the old report 3 is gone; one part per current report remains
    assert len(list((run / PARTS_DIR).glob("part-*-reports.arrow"))) == 3


def test_other_site_key_reparses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, run = tmp_path / "r.csv", tmp_path / "run"
    src.write_text("uid,patient,text\n1,P1,No effusion.\n")
    for name, byte in (("a.key", "ab"), ("b.key", "cd")):
        (tmp_path / name).write_text(byte * 32 + "\n")
    pipeline.parse_reports(src, run, patient_column="patient", key_file=tmp_path / "a.key", workers=0)
    seen = _count_parsing(monkeypatch)
    pipeline.parse_reports(src, run, patient_column="patient", key_file=tmp_path / "a.key", workers=0)
    assert seen == []
    from medmm.errors import ConfigError

    with pytest.raises(ConfigError, match="different site key"):  # one site key per run directory
        pipeline.parse_reports(src, run, patient_column="patient", key_file=tmp_path / "b.key", workers=0)
    assert seen == []
    (run / "run.json").unlink()  # a run directory from before run.json recorded its key
    pipeline.parse_reports(src, run, patient_column="patient", key_file=tmp_path / "b.key", workers=0)
    assert seen == _rids(tmp_path / "b.key", "1")


def test_ids_kept_or_pseudonymized_never_mix_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    """A run directory parsed with report ids as given (``keep_report_ids``, or a run made before ids
    were pseudonymized: the same parts) is parsed again in full with pseudonyms, and back."""
    from medmm.runinfo import read_run_json

    src, run = tmp_path / "r.csv", tmp_path / "run"
    src.write_text(CSV)
    kept = _parse(src, run, keep_report_ids=True)
    assert kept["parsed_now"] == 3 and read_run_json(run)["stages"]["reports"]["options"]["keep_report_ids"]
    assert _tables(run)["manifest_reports"]["report_id"].tolist() == ["1", "2", "3", "4"]
    seen = _count_parsing(monkeypatch)
    counts = _parse(src, run)  # default: pseudonyms; no raw-id part is reused
    assert (counts["parsed_now"], counts["resumed"]) == (3, 0) and seen == _rids(key_file, "123")
    assert read_run_json(run)["stages"]["reports"]["options"]["keep_report_ids"] is False
    for name, frame in _tables(run).items():
        assert set(frame["report_id"]) <= set(_rids(key_file, "1234")), name
    assert {
        pd.read_feather(p)["report_id"][0] for p in (run / PARTS_DIR).glob("part-*-reports.arrow")
    } == set(_rids(key_file, "123"))  # the raw-id parts are gone
    seen.clear()
    again = _parse(src, run, keep_report_ids=True)
    assert again["parsed_now"] == 3 and seen == ["1", "2", "3"]
    assert set(_tables(run)["entities"]["report_id"]) == {"1", "2", "3"}


def test_task_schemas_match_the_records() -> None:
    from medmm.reports.records import EntityRow, ReportLabelRow

    assert pipeline.ENTITY_SCHEMA.names == list(EntityRow.model_fields)
    assert pipeline.LABEL_SCHEMA.names == list(ReportLabelRow.model_fields)
    assert pipeline.REPORT_SCHEMA.names == pipeline.REPORT_COLUMNS
