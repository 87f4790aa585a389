"""`medmm reports evaluate-findings / train-ner / evaluate-ner` with a wrong input: an error line and
exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["reports", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, " ".join(res.output.split())


@pytest.mark.parametrize(
    ("content", "problem"),
    [("uid,text\n1,No effusion.\n", "no column ['Problems']"), ("", "cannot be read as CSV")],
)
def test_evaluate_findings_bad_gold_csv(tmp_path: Path, content: str, problem: str) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text(content)
    code, out = _run("evaluate-findings", str(gold), "--run", str(tmp_path))
    assert code == 2 and problem in out and "gold.csv" in out


def test_evaluate_findings_gold_without_header_shows_no_row(tmp_path: Path) -> None:
    # a gold table whose first line is a report (accession, MRN, text): its values are not printed
    gold = tmp_path / "gold.csv"
    gold.write_text("ACC7730291,MRN4471923,John Smith has cardiomegaly\n")
    code, out = _run("evaluate-findings", str(gold), "--run", str(tmp_path))
    assert code == 2 and "looks like data, not a header" in out
    assert "MRN4471923" not in out and "John Smith" not in out


def test_evaluate_findings_run_without_tables(tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("uid,Problems\n1,normal\n")
    code, out = _run("evaluate-findings", str(gold), "--run", str(tmp_path / "run"))
    assert code == 2 and "has no manifest_reports.parquet" in out


def test_ner_commands_with_missing_corpus(tmp_path: Path) -> None:
    code, out = _run("train-ner", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "m"))
    assert code == 2 and "corpus folder not found" in out
    code, out = _run("evaluate-ner", "--model", str(tmp_path / "m"), "--corpus", str(tmp_path / "x.tsv"))
    assert code == 2 and "cannot load NER model" in out
