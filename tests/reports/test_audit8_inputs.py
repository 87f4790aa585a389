"""Session 8 audit of input forms: JSONL nulls are no text (not the report "nan"), numeric ids with a
missing value keep their written form (not "16.0"), and Latin-1 / Windows-1252 exports decode as such."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medmm.reports.io.inputs import decode_bytes, read_reports


def test_jsonl_null_texts_are_empty_reports(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        {"uid": 1, "findings": "Small effusion.", "impression": None},
        {"uid": 2, "findings": None, "impression": None},  # was parsed as "FINDINGS: nan\n\nIMPRESSION: nan"
        {"uid": 3, "impression": "Clear."},  # a missing key
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    batch = read_reports(path)
    texts = {r.report_id: r.text for r in batch.reports}
    assert set(texts) == {"1", "3"}
    assert "nan" not in texts["1"].lower() and "none" not in texts["1"].lower()
    assert texts["3"] == "IMPRESSION: Clear."
    assert [r.reason.split(":")[0] for r in batch.rejected] == ["EmptyReportError"]


def test_numeric_ids_with_a_missing_one_keep_their_form(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": [16.0, None, 1234567890123.0], "text": ["No effusion.", "Clear.", "Clear."]})
    frame.to_parquet(tmp_path / "r.parquet")
    batch = read_reports(tmp_path / "r.parquet")
    assert [r.report_id for r in batch.reports] == ["16", "1234567890123"]  # were "16.0", "1234567890123.0"
    assert [r.reason.split(":")[0] for r in batch.rejected] == ["MissingIdError"]
    path = tmp_path / "r.jsonl"
    path.write_text('{"uid": 16, "text": "a"}\n{"uid": null, "text": "b"}\n')
    assert [r.report_id for r in read_reports(path).reports] == ["16"]


def test_latin1_export_decodes_as_western_european() -> None:
    text = ("Opacité à la base gauche, épanchement pleural; naïve, 37° ± 2 mm, Müller-Größe. " * 4).strip()
    decoded, notes = decode_bytes(text.encode("latin-1"))
    assert decoded == text  # was cp1250: "à" -> "ŕ", "ï" -> "ď"
    assert notes == ["decoded-as-cp1252"]


def test_central_european_export_still_decodes_as_such() -> None:
    text = ("Pacjent: zmiana łagodna w płacie, żółta ściana, ściągnięcie opłucnej. " * 4).strip()
    decoded, _ = decode_bytes(text.encode("cp1250"))
    assert decoded == text


def test_latin1_semicolon_csv_through_parse(tmp_path: Path) -> None:
    from medmm.reports.pipeline import parse_reports

    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "findings": ["Opacité à la base gauche. " * 10, "No effusion.", ""],
            "impression": ["Épanchement pleural à droite.", "Normal chest.", ""],
        }
    )
    path = tmp_path / "r.csv"
    path.write_bytes(frame.to_csv(index=False, sep=";", lineterminator="\r\n").encode("latin-1"))
    parse_reports(path, tmp_path / "run", workers=0, keep_report_ids=True, keep_text=True)
    man = pd.read_parquet(tmp_path / "run" / "manifest_reports.parquet")
    assert man["path"].tolist() == ["r.csv#1", "r.csv#2", "r.csv#3"]
    assert man["status"].tolist() == ["ingested", "ingested", "quarantined"]
    assert "decoded-as-cp1252" in man["notes"].iloc[0]
    texts = pd.read_parquet(tmp_path / "run" / "report_texts.parquet").set_index("report_id")["text"]
    assert "à la base" in texts["a"] and "ŕ" not in texts["a"]


def test_single_report_txt_file_is_explained_without_its_text(tmp_path: Path) -> None:
    """A .txt report given as the input was read as a CSV: the error listed its first line as the
    'columns found' (the report's text, with any name in it) and asked for --id-column."""
    from typer.testing import CliRunner

    from medmm.cli import app

    path = tmp_path / "one.txt"
    path.write_text(
        "Patient Harold Pinkerton, FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion.\n"
    )
    res = CliRunner().invoke(
        app, ["reports", "parse", str(path), "--out", str(tmp_path / "run"), "--workers", "0"]
    )
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "Pinkerton" not in out and "pleural" not in out
    assert "put them in a folder and pass the folder" in out
    folder = tmp_path / "reports"
    folder.mkdir()
    path.rename(folder / "one.txt")
    res = CliRunner().invoke(
        app, ["reports", "parse", str(folder), "--out", str(tmp_path / "run"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output


def test_txt_table_with_an_id_column_is_still_a_table(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("id,text\na,No effusion.\nb,Small effusion.\n")
    assert [r.report_id for r in read_reports(path).reports] == ["a", "b"]


def test_excel_sep_line(tmp_path: Path) -> None:
    """Excel's 'sep=;' first line (a CSV saved for another locale) was read as the header: 'no id column
    (columns found: ['sep=', 'Unnamed: 1'])'."""
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbfsep=;\r\nid;findings\r\na;Small effusion.\r\nb;No effusion.\r\n")
    batch = read_reports(path)
    assert [(r.report_id, r.path, r.text) for r in batch.reports] == [
        ("a", "r.csv#1", "FINDINGS: Small effusion."),
        ("b", "r.csv#2", "FINDINGS: No effusion."),
    ]
    assert batch.reports[0].notes == ["excel-sep-line"]


def test_a_row_with_extra_fields_is_quarantined_not_the_file(tmp_path: Path) -> None:
    """One report with an unquoted comma stopped the whole command ('Expected 3 fields in line 3, saw
    4'); now that row is quarantined (its contents not shown) and the others are parsed."""
    path = tmp_path / "r.csv"
    path.write_text(
        "id,findings,impression\n"
        "a,Small effusion.,Effusion.\n"
        "b,Patient Pinkerton: heart normal, lungs clear.,Normal.\n"
        "c,No pneumothorax.,Clear.\n"
    )
    batch = read_reports(path)
    assert [(r.report_id, r.path) for r in batch.reports] == [("a", "r.csv#1"), ("c", "r.csv#3")]
    (bad,) = batch.rejected
    assert bad.path == "r.csv#2" and bad.status == "quarantined"
    assert "row has 4 fields, the header 3" in bad.reason and "Pinkerton" not in bad.reason


def test_an_unclosed_quote_still_stops_the_command(tmp_path: Path) -> None:
    import pytest

    from medmm.reports.io.files import UnreadableTableError

    path = tmp_path / "r.csv"
    path.write_text('id,text\n1,"unterminated\n2,ok,extra\n')
    with pytest.raises(UnreadableTableError):
        read_reports(path)
