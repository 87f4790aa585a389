"""Messy report inputs: binary files named .txt, other files in a reports folder, unreadable tables.

Each one is named with its problem and fix (no traceback), and a DICOM renamed .txt never becomes
"report text" (its header holds the patient's name).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.reports.io.inputs import NotTextError, UnreadableTableError, read_reports


def _dicom_bytes(name: bytes = b"Doe^Jane") -> bytes:
    return bytes(128) + b"DICM" + b"\x10\x00\x10\x00PN" + len(name).to_bytes(2, "little") + name


def test_folder_lists_binary_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("No effusion.")
    (tmp_path / "scan.txt").write_bytes(_dicom_bytes())
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4 report")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.TXT").write_text("Mild edema.")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: skipped, as in signals
    batch = read_reports(tmp_path)
    assert sorted(r.report_id for r in batch.reports) == ["a", "c"]
    rejected = {r.path: r for r in batch.rejected}
    assert set(rejected) == {"scan.txt", "b.pdf"}
    assert rejected["scan.txt"].reason.startswith(NotTextError.__name__)
    assert "DICOM" in rejected["scan.txt"].reason and "Fix:" in rejected["b.pdf"].reason
    assert all("Doe" not in r.text for r in batch.reports)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "file is empty"),
        (b'uid,text\n1,"unterminated\n2,ok\n', "not a well-formed CSV"),
        (_dicom_bytes(), r"not a text table \(DICOM\)"),
    ],
)
def test_unreadable_table_is_an_input_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableTableError, match=problem):
        read_reports(path)


def test_cli_names_the_bad_table_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(b"")
    res = CliRunner().invoke(
        app, ["reports", "parse", str(path), "--out", str(tmp_path / "run"), "--workers", "0"]
    )
    assert res.exit_code != 0
    assert isinstance(res.exception, SystemExit)
    assert "reports.csv: file is empty" in res.output


def test_folder_odd_names_and_links(tmp_path: Path) -> None:
    import os

    (tmp_path / "a.txt").write_text("No effusion.")
    with open(os.fsencode(tmp_path) + b"/b\xe9.txt", "w") as fh:  # crashed the manifest write
        fh.write("Edema.")
    (tmp_path / "c.txt").symlink_to(tmp_path / "elsewhere" / "c.txt")
    batch = read_reports(tmp_path)
    assert [r.report_id for r in batch.reports] == ["a"]
    rejected = {r.path: r.reason for r in batch.rejected}
    assert set(rejected) == {"b\\xe9.txt", "c.txt"}
    assert rejected["b\\xe9.txt"].startswith("FileNameError") and "rename" in rejected["b\\xe9.txt"]
    assert "target does not exist" in rejected["c.txt"]


def test_missing_column_names_the_real_option(tmp_path: Path) -> None:
    from medmm.reports.io.inputs import MissingColumnError

    path = tmp_path / "r.csv"
    path.write_text("uid,body\n1,No effusion.\n")
    with pytest.raises(MissingColumnError, match=r"name it with --text-columns$"):  # was --text-column(s)
        read_reports(path)
    with pytest.raises(MissingColumnError, match="pass --id-column with one of"):  # --id-column(s)
        read_reports(path, id_column="accession_no", text_columns=["body"])


def test_text_columns_as_one_comma_separated_string(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("uid,findings,impression\n1,No effusion.,Normal.\n")
    batch = read_reports(path, text_columns="findings, impression")  # type: ignore[arg-type]  # as YAML gives it
    assert batch.text_columns == ["findings", "impression"]
    assert batch.reports[0].text == "FINDINGS: No effusion.\n\nIMPRESSION: Normal."


def test_semicolon_separated_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"  # as a spreadsheet in a European locale saves "CSV"
    path.write_text(
        "uid;findings;impression\n1;No effusion, no pneumothorax.;Normal.\n2;Edema.;Mild edema, improving.\n"
    )
    batch = read_reports(path)  # was a ParserError, or "no text column ... ['uid;findings;...']"
    assert [r.report_id for r in batch.reports] == ["1", "2"]
    assert batch.reports[0].text == "FINDINGS: No effusion, no pneumothorax.\n\nIMPRESSION: Normal."
    assert "semicolon-separated" in batch.reports[0].notes
