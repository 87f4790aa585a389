"""``medmm reports parse`` on a table without a header line: its first row (accession, MRN, report
text) was printed as the "columns found" (privacy audit R8, docs/privacy.md "Errors and logs")."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app

_ROW = "ACC7730291,MRN4471923,John Smith has cardiomegaly\n"


@pytest.mark.parametrize(
    "options",
    [
        ["--id-column", "accession", "--text-columns", "findings"],  # the audit's command
        [],  # the default id columns
        ["--id-column", "ACC7730291", "--text-columns", "findings"],  # text column missing
        ["--id-column", "ACC7730291", "--patient-column", "mrn"],  # a link column missing
    ],
)
def test_headerless_report_table_is_refused_without_its_row(tmp_path: Path, options: list[str]) -> None:
    table = tmp_path / "rep.csv"
    table.write_text(_ROW + "ACC7730292,MRN4471924,No effusion\n")
    args = ["reports", "parse", str(table), "--out", str(tmp_path / "r"), "--workers", "0", *options]
    res = CliRunner().invoke(app, args)
    out = " ".join(res.output.split())
    assert res.exit_code == 2, out
    assert "3 columns; the first line looks like data, not a header (values not shown)" in out
    for value in ("ACC7730291", "MRN4471923", "John Smith", "cardiomegaly"):
        if value not in options:
            assert value not in out


def test_a_header_is_still_listed(tmp_path: Path) -> None:
    table = tmp_path / "rep.csv"
    table.write_text("key,body\n1,No effusion.\n")
    res = CliRunner().invoke(app, ["reports", "parse", str(table), "--out", str(tmp_path / "r")])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "columns found: 'key', 'body'" in out
