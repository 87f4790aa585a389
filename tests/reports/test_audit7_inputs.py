"""Session 7 audit of report inputs: one row numbering in manifest paths (``file#n``, the JSONL line
an editor shows), and one place that splits a comma-separated ``--text-columns``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.reports.io.inputs import read_reports, split_columns

LINES = [
    json.dumps({"id": "a", "text": "No effusion."}),
    "",  # a blank line: counted, as an editor counts it
    "{not json",
    json.dumps({"id": "b", "text": "Small effusion."}),
    json.dumps(["not", "an", "object"]),
    json.dumps({"id": "c", "text": "Clear."}),
]


def _jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_jsonl_rows_and_bad_lines_share_the_file_line_numbers(tmp_path: Path) -> None:
    path = _jsonl(tmp_path)
    batch = read_reports(path)
    where = {r.report_id: r.path for r in batch.reports}
    assert where == {"a": "r.jsonl#1", "b": "r.jsonl#4", "c": "r.jsonl#6"}  # was #1, #2, #3
    assert sorted(r.path for r in batch.rejected) == ["r.jsonl#3", "r.jsonl#5"]  # was #line3, #line5
    lines = path.read_text().split("\n")
    for rid, ref in where.items():  # the manifest path leads a user to the line of the report
        assert json.loads(lines[int(ref.split("#")[1]) - 1])["id"] == rid
    reasons = " ".join(r.reason for r in batch.rejected)
    assert "line 3 is not a JSON object" in reasons and "line 5 is not a JSON object" in reasons


def test_parse_manifest_lists_jsonl_rows_in_file_order(tmp_path: Path) -> None:
    from medmm.reports.pipeline import parse_reports

    parse_reports(_jsonl(tmp_path), tmp_path / "run", workers=0)
    man = pd.read_parquet(tmp_path / "run" / "manifest_reports.parquet")
    assert man["path"].tolist() == [f"r.jsonl#{n}" for n in (1, 3, 4, 5, 6)]
    assert man["status"].tolist() == ["ingested", "quarantined", "ingested", "quarantined", "ingested"]


def test_csv_rows_keep_their_data_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"  # header + 3 rows; the middle one has no id
    path.write_text("uid,text\n1,No effusion.\n,Orphan.\n3,Clear.\n")
    batch = read_reports(path)
    assert [r.path for r in batch.reports] == ["r.csv#1", "r.csv#3"]
    assert [r.path for r in batch.rejected] == ["r.csv#2"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("indication,findings", ["indication", "findings"]),
        (" findings , impression ,", ["findings", "impression"]),
        ('"Findings, final",impression', ["Findings, final", "impression"]),
        ('"unclosed,impression', ['"unclosed', "impression"]),
    ],
)
def test_split_columns(text: str, names: list[str]) -> None:
    assert split_columns(text) == names


def test_cli_reads_a_quoted_column_name_with_a_comma(tmp_path: Path) -> None:
    from medmm.cli import app

    path = tmp_path / "r.csv"
    path.write_text('uid,"Findings, final",impression\n1,Small effusion.,Effusion.\n')
    res = CliRunner().invoke(
        app,
        [
            "reports",
            "parse",
            str(path),
            "--out",
            str(tmp_path / "run"),
            "--workers",
            "0",
            "--text-columns",
            '"Findings, final",impression',
        ],
    )
    assert res.exit_code == 0, res.output
    man = pd.read_parquet(tmp_path / "run" / "manifest_reports.parquet")
    assert man["n_sections"].tolist() == [2]


def test_api_string_naming_one_column_with_a_comma(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('uid,"Findings, final",impression\n1,Small effusion.,Normal.\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an exact column name is not deprecated
        batch = read_reports(path, text_columns="Findings, final")  # type: ignore[arg-type]
    assert batch.text_columns == ["Findings, final"]
    assert batch.reports[0].text == "Small effusion."  # one column of another name: free text


def test_api_comma_string_still_works_with_a_deprecation_warning(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("uid,findings,impression\n1,No effusion.,Normal.\n")
    with pytest.warns(FutureWarning, match=r"pass a list \(\['findings', 'impression'\]"):
        batch = read_reports(path, text_columns="findings,impression")  # type: ignore[arg-type]
    assert batch.text_columns == ["findings", "impression"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_reports(path, text_columns=["findings", "impression"]).text_columns == batch.text_columns
