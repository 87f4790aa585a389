"""Report text is an output only with ``parse --keep-text``; ``show`` re-reads it from the input otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import InputError
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.reports.render import render_report, report_text

PHI = ("John Smith", "01/02/1960", "MRN4815162342")
CSV = (
    "uid,findings,impression\n"
    '1,"Patient John Smith DOB 01/02/1960 MRN4815162342. Mild cardiomegaly. No effusion.",Stable.\n'
    '2,"A 12 mm nodule in the right upper lobe.",COPD.\n'
    "3,Lungs are clear.,Normal.\n"
)


def _parse(src: Path, run: Path, *extra: str) -> dict:
    res = CliRunner().invoke(app, ["reports", "parse", str(src), "--out", str(run), "--workers", "0", *extra])
    assert res.exit_code == 0, res.output
    return json.loads((run / "run.json").read_text())["stages"]["reports"]


@pytest.fixture()
def src(tmp_path: Path, key_file: Path) -> Path:
    """The input CSV; the site key is the ``key_file`` fixture's (``$MEDMM_KEY_FILE``)."""
    path = tmp_path / "in" / "r.csv"
    path.parent.mkdir()
    path.write_text(CSV)
    return path


def test_default_writes_no_text_and_show_rereads_input(
    src: Path, tmp_path: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    run = tmp_path / "run"
    stage = _parse(src, run)
    assert stage["options"]["keep_text"] is False
    assert not (run / "report_texts.parquet").exists()
    assert (run / "entities.parquet").exists() and (run / ".reports_parts").is_dir()
    assert strings_in_run(run, PHI) == []
    # the planted identity is in the input, so the scan can find it
    assert all(s in src.read_text() for s in PHI)
    text = report_text("1", run)
    assert text.startswith("FINDINGS: Patient John Smith") and "IMPRESSION: Stable." in text
    html = render_report("1", run)
    assert "John Smith" in html and "cardiomegaly" in html
    out = tmp_path / "r1.html"
    res = CliRunner().invoke(app, ["reports", "show", "1", "--run", str(run), "--html", str(out)])
    assert res.exit_code == 0, res.output
    assert "MEASUREMENT 12 mm" in render_report("2", run)
    # viewing wrote nothing into the run directory
    assert strings_in_run(run, PHI) == []


def test_keep_text_writes_table_and_show_uses_it(src: Path, tmp_path: Path, key_file: Path) -> None:
    run = tmp_path / "run"
    stage = _parse(src, run, "--keep-text")
    assert stage["options"]["keep_text"] is True
    texts = pd.read_parquet(run / "report_texts.parquet")
    assert texts["report_id"].tolist() == [Pseudonymizer(load_key(key_file)).id(i, "report") for i in "123"]
    assert texts["text"].str.contains("John Smith").tolist() == [True, False, False]
    src.unlink()  # the kept table is enough to show a report
    assert "John Smith" in render_report("1", run)


def test_rerun_without_flag_removes_stale_table_and_resumes(
    src: Path, tmp_path: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    run = tmp_path / "run"
    _parse(src, run, "--keep-text")
    ents = pd.read_parquet(run / "entities.parquet")
    stage = _parse(src, run)
    assert stage["counts"]["resumed"] == 3 and stage["counts"]["parsed_now"] == 0
    assert not (run / "report_texts.parquet").exists()
    assert strings_in_run(run, PHI) == []
    pd.testing.assert_frame_equal(pd.read_parquet(run / "entities.parquet"), ents)
    stage = _parse(src, run, "--keep-text")  # and back: resumed, the table is written again
    assert stage["counts"]["resumed"] == 3 and stage["options"]["keep_text"] is True
    assert len(pd.read_parquet(run / "report_texts.parquet")) == 3


def test_changed_or_missing_input_names_file_and_fix(src: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _parse(src, run)
    # same length, no entity touched: only the resume key tells the text changed
    src.write_text(CSV.replace("John Smith", "Jane Smith"))
    with pytest.raises(InputError) as exc:
        render_report("1", run)
    assert str(src) in str(exc.value) and "--keep-text" in str(exc.value)
    assert "John" not in str(exc.value) and "Jane" not in str(exc.value)
    src.unlink()
    res = CliRunner().invoke(app, ["reports", "show", "2", "--run", str(run)])
    assert res.exit_code == 2 and "does not exist" in res.output and "--keep-text" in res.output


def test_changed_entity_span_is_detected(tmp_path: Path) -> None:
    """With a site key (patient column) the resume key cannot be checked: length and spans are."""
    src, run, key = tmp_path / "r.csv", tmp_path / "run", tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    src.write_text("uid,patient,text\n1,P1,Mild cardiomegaly. No effusion.\n")
    _parse(src, run, "--patient-column", "patient", "--key-file", str(key))
    assert "cardiomegaly" in render_report("1", run, key_file=key)
    src.write_text("uid,patient,text\n1,P1,Mild cardiomegaly. No effusiox.\n")
    with pytest.raises(InputError, match="has changed since it was parsed"):
        render_report("1", run, key_file=key)


def test_workflow_passes_keep_text() -> None:
    from medmm.reports.pipeline import parse_reports
    from medmm.workflows.run import _checked_options

    opts = _checked_options(parse_reports, {"keep_text": True}, "reports", positional=2)
    assert opts == {"keep_text": True}
