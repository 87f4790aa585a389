"""Session 8 audit: decimal commas. A European-locale report's "1,5 cm nodule" was read as "5 cm"
(50 mm instead of 15 mm): a size error that changes a nodule's follow-up."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medmm.reports.measurements import find_measurements


@pytest.mark.parametrize(
    ("text", "span", "values"),
    [
        ("1,5 cm nodule", "1,5 cm", (15.0,)),  # was "5 cm", 50 mm
        ("a 1,2 x 3,4 cm mass", "1,2 x 3,4 cm", (12.0, 34.0)),
        ("1,5-2 cm", "1,5-2 cm", (15.0, 20.0)),
        ("1,5 to 2,5 cm", "1,5 to 2,5 cm", (15.0, 25.0)),
        ("12,5mm", "12,5mm", (12.5,)),
        ("1.5 cm nodule", "1.5 cm", (15.0,)),
    ],
)
def test_decimal_comma(text: str, span: str, values: tuple[float, ...]) -> None:
    (m,) = find_measurements(text)
    assert (m.text, m.values_mm, text[m.start : m.end]) == (span, values, span)


def test_commas_that_are_no_decimals() -> None:
    assert find_measurements("ribs 4,5 and 6 are intact") == []
    assert [m.values_mm for m in find_measurements("nodules of 4, 5 and 6 mm")] == [(6.0,)]


def test_decimal_comma_through_parse(tmp_path: Path) -> None:
    from medmm.reports.pipeline import parse_reports

    csv = tmp_path / "r.csv"
    csv.write_text('id;report\na;"FINDINGS: 1,5 cm nodule in the right upper lobe."\n', encoding="utf-8")
    parse_reports(csv, tmp_path / "run", workers=0, keep_report_ids=True)
    ents = pd.read_parquet(tmp_path / "run" / "entities.parquet")
    nodule = ents[ents["finding"].eq("nodule") & ents["label"].eq("FINDING")].iloc[0]
    assert nodule["measurement_mm"] == 15.0 and nodule["measurement_text"] == "1,5 cm"
