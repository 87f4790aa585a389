"""Report ids (accession / RIS numbers: identifiers) are pseudonymized with the site key in every output
unless ``keep_report_ids``; duplicates are still found on the raw ids and no raw id is echoed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import InputError
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.reports.io.inputs import read_reports, report_pseudonymizer
from medmm.runinfo import read_run_json

ACC = ("ACC7734001", "ACC7734002", "ACC7734003")
CSV = (
    "accession,findings,impression\n"
    f"{ACC[0]},Mild cardiomegaly. No effusion.,Stable.\n"
    f"{ACC[1]},A 12 mm nodule in the right upper lobe.,Nodule.\n"
    f"{ACC[1]},Again.,Dup.\n"
    f"{ACC[2]}, , \n"
)


@pytest.mark.parametrize(
    "key", [b"k" * 32, b"\x00\xff" * 8, bytes(range(100))], ids=["32-bytes", "16-bytes", "100-bytes"]
)
def test_fast_pseudonyms_equal_pseudonymizer_id(key: bytes) -> None:
    p = Pseudonymizer(key)
    hide = report_pseudonymizer(p)
    ids = ["1", " ACC-1 ", "Ä/ß 7", "x" * 300, "0001", "rep-abc"]
    assert [hide(i) for i in ids] == [p.id(i, "report") for i in ids]
    assert len({hide(i) for i in ids}) == len(ids)


def test_read_reports_hides_ids_of_every_row_and_finds_duplicates_on_raw_ids(tmp_path: Path) -> None:
    src = tmp_path / "r.csv"
    src.write_text(CSV)
    p = Pseudonymizer(b"k" * 32)
    batch = read_reports(src, pseudonymizer=p)
    assert [r.report_id for r in batch.reports] == [p.id(a, "report") for a in ACC[:2]]
    rows = {r.path: r for r in batch.rejected}
    assert rows["r.csv#3"].status.value == "duplicate" and rows["r.csv#3"].report_id == p.id(ACC[1], "report")
    assert rows["r.csv#3"].reason == "same report_id as r.csv#2 (kept the first)"  # a location, no id
    assert rows["r.csv#4"].report_id == p.id(ACC[2], "report") and ACC[2] not in rows["r.csv#4"].reason
    kept = read_reports(src, pseudonymizer=p, keep_report_ids=True)
    assert [r.report_id for r in kept.reports] == list(ACC[:2])


def test_txt_folder_ids_are_pseudonymized(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / f"{ACC[0]}.txt").write_text("No effusion.")
    (folder / f"{ACC[1]}.txt").write_text("  ")
    (folder / f"{ACC[2]}.pdf").write_bytes(b"%PDF-1.4")
    p = Pseudonymizer(b"k" * 32)
    batch = read_reports(folder, pseudonymizer=p)
    assert [(r.report_id, r.path) for r in batch.reports] == [(p.id(ACC[0], "report"), f"{ACC[0]}.txt")]
    assert sorted(r.report_id for r in batch.rejected) == sorted(p.id(a, "report") for a in ACC[1:])


def test_parse_writes_no_raw_id_and_show_accepts_both(
    tmp_path: Path, key_file: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    src, run = tmp_path / "in" / "r.csv", tmp_path / "run"
    src.parent.mkdir()
    src.write_text(CSV)
    res = CliRunner().invoke(app, ["reports", "parse", str(src), "--out", str(run), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert strings_in_run(run, ACC) == [] and not any(a in res.output for a in ACC)
    manifest = pd.read_parquet(run / "manifest_reports.parquet")
    assert manifest["path"].tolist() == [f"r.csv#{i}" for i in range(1, 5)]  # how a user finds a row
    p = Pseudonymizer(load_key(key_file))
    assert manifest["report_id"].tolist() == [p.id(a, "report") for a in (ACC[0], ACC[1], ACC[1], ACC[2])]
    assert read_run_json(run)["stages"]["reports"]["options"]["keep_report_ids"] is False
    for given in (ACC[1], p.id(ACC[1], "report")):  # the accession number, or its pseudonym
        res = CliRunner().invoke(app, ["reports", "show", given, "--run", str(run)])
        assert res.exit_code == 0 and "nodule" in res.output, res.output
    assert strings_in_run(run, ACC) == []


def test_keep_report_ids_writes_them_as_given(tmp_path: Path, key_file: Path) -> None:
    src, run = tmp_path / "in" / "r.csv", tmp_path / "run"
    src.parent.mkdir()
    src.write_text(CSV)
    args = ["reports", "parse", str(src), "--out", str(run), "--workers", "0", "--keep-report-ids"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert pd.read_parquet(run / "manifest_reports.parquet")["report_id"].tolist() == [
        ACC[0],
        ACC[1],
        ACC[1],
        ACC[2],
    ]
    assert read_run_json(run)["stages"]["reports"]["options"]["keep_report_ids"] is True
    res = CliRunner().invoke(app, ["reports", "show", ACC[0], "--run", str(run)])
    assert res.exit_code == 0 and "cardiomegaly" in res.output, res.output


def test_show_finds_the_key_file_the_parse_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook parses with ``key_file=`` and renders without it: run.json records the key's path."""
    from medmm.reports.pipeline import parse_reports
    from medmm.reports.render import render_report

    src, run, key = tmp_path / "in" / "r.csv", tmp_path / "run", tmp_path / "keys" / "site.key"
    src.parent.mkdir()
    key.parent.mkdir()
    src.write_text(CSV)
    key.write_text("cd" * 32 + "\n")
    parse_reports(src, run, workers=0, key_file=key)
    assert read_run_json(run)["stages"]["reports"]["options"]["key_file"] == str(key.resolve())
    monkeypatch.delenv("MEDMM_KEY_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nowhere"))
    assert "cardiomegaly" in render_report(ACC[0], run)
    key.rename(tmp_path / "moved.key")
    with pytest.raises(InputError, match="site key not found") as exc:
        render_report(ACC[0], run)
    assert ACC[0] not in str(exc.value)


def test_workflow_passes_keep_report_ids() -> None:
    from medmm.reports.pipeline import parse_reports
    from medmm.workflows.run import _checked_options

    opts = _checked_options(parse_reports, {"keep_report_ids": True}, "reports", positional=2)
    assert opts == {"keep_report_ids": True}
