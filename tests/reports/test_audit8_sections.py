"""Session 8 audit: compound and common headers of hospital reports. "FINDINGS/IMPRESSION:", "Result:",
"IMPRESSION AND RECOMMENDATION:" were no headers, so their text stayed in the section before (an
unscored INDICATION): the report's findings were silently lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medmm.reports.sections import find_sections


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("CLINICAL INFORMATION: cough\nFINDINGS/IMPRESSION: Small effusion.", ["INDICATION", "FINDINGS"]),
        ("HISTORY OF PRESENT ILLNESS: fever.\nFINDINGS AND IMPRESSION: Effusion.", ["HISTORY", "FINDINGS"]),
        (
            "Indication: fever\nResult: Effusion.\nIMPRESSION AND RECOMMENDATION: Effusion.",
            ["INDICATION", "FINDINGS", "IMPRESSION"],
        ),
        ("Indication/History: fever\nFindings & Impression: effusion", ["INDICATION", "FINDINGS"]),
        ("History and findings: effusion", ["FINDINGS"]),  # a compound with a scored part is scored
        ("FINDINGS: Heart and lungs are normal.", ["FINDINGS"]),
    ],
)
def test_compound_and_common_headers(text: str, names: list[str]) -> None:
    assert [s.name for s in find_sections(text)] == names


def test_findings_under_a_compound_header_are_labelled(tmp_path: Path) -> None:
    from medmm.reports.pipeline import parse_reports

    rows = [
        ("a", "CLINICAL INFORMATION: cough\nFINDINGS/IMPRESSION: Small left pleural effusion."),
        ("b", "Indication: fever\nResult: Right lower lobe consolidation."),
        ("c", "Indication: cough, rule out pneumothorax.\nIMPRESSION AND RECOMMENDATION: Cardiomegaly."),
    ]
    csv = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["id", "report"]).to_csv(csv, index=False)
    parse_reports(csv, tmp_path / "run", workers=0, keep_report_ids=True)
    labels = pd.read_parquet(tmp_path / "run" / "report_labels.parquet")
    present = {(r.report_id, r.finding) for r in labels.itertuples() if r.status == "present"}
    assert {("a", "pleural effusion"), ("b", "consolidation"), ("c", "cardiomegaly")} <= present
    assert ("c", "pneumothorax") not in {(r.report_id, r.finding) for r in labels.itertuples()}
