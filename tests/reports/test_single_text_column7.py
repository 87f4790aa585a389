"""One text column whose name is no known section is free text (it was an unscored section: all `normal`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medmm.reports.io.inputs import read_reports
from medmm.reports.pipeline import parse_reports


def test_one_column_of_another_name_is_free_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,clinical notes\n1,"FINDINGS: The heart is enlarged. IMPRESSION: Cardiomegaly."\n')
    batch = read_reports(path, text_columns=["clinical notes"])
    assert batch.reports[0].text.startswith("FINDINGS: The heart")  # no "CLINICAL NOTES: " block


def test_one_known_section_column_stays_that_section(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("id,findings\n1,The heart is enlarged.\n")
    assert read_reports(path, text_columns=["findings"]).reports[0].text == "FINDINGS: The heart is enlarged."


def test_its_findings_are_scored(tmp_path: Path, key_file: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('id,clinical notes\n1,"The heart is enlarged. Cardiomegaly."\n2,"No acute disease."\n')
    parse_reports(path, tmp_path / "run", text_columns=["clinical notes"], workers=0, key_file=key_file)
    labels = pd.read_parquet(tmp_path / "run" / "report_labels.parquet")
    present = labels[labels["status"] == "present"].groupby("report_id")["finding"].apply(set)
    assert sorted(map(sorted, present)) == [["cardiomegaly"], ["normal"]]
