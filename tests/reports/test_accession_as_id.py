"""docs/reports.md "Linking reports to images" as written: a RIS export whose only identifier is its
accession number (`accession_no`, none of the default id columns) is parsed with `--accession-column
accession_no` alone; the accession number is then the report id too (`report_id == accession_id`), and
`medmm align` links the reports to pictures ingested with the same accession numbers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmm.cli import app
from medmm.pseudonym import Pseudonymizer, load_key

#: raw patient id, accession number, exam date (dd.mm.yyyy as RIS exports often write it), report text
RIS = [
    ("MRN-GAMMA-4411", "RIS-55501001", "04.03.2021", "FINDINGS: Small left pleural effusion."),
    ("MRN-GAMMA-4411", "RIS-55501002", "15.03.2021", "FINDINGS: No pleural effusion."),
    ("MRN-DELTA-5522", "RIS-55501003", "06.05.2021", "FINDINGS: The lungs are clear."),
]


@pytest.fixture()
def ris_export(tmp_path: Path) -> Path:
    frame = pd.DataFrame(RIS, columns=["mrn", "accession_no", "exam_date", "report"])
    frame.to_csv(tmp_path / "ris_export.csv", index=False)
    return tmp_path / "ris_export.csv"


def _parse(ris_export: Path, run: Path, *extra: str) -> tuple[int, str]:
    args = ["reports", "parse", str(ris_export), "--out", str(run), "--patient-column", "mrn"]
    args += ["--accession-column", "accession_no", "--date-column", "exam_date", "--workers", "0"]
    res = CliRunner().invoke(app, [*args, *extra])
    return res.exit_code, res.output


def test_the_documented_command_uses_the_accession_number_as_report_id(
    ris_export: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    run = ris_export.parent / "runs" / "r1"
    code, out = _parse(ris_export, run)
    assert code == 0, out
    manifest = pd.read_parquet(run / "manifest_reports.parquet")
    assert len(manifest) == 3 and (manifest["status"] == "ingested").all()
    assert (manifest["report_id"] == manifest["accession_id"]).all()
    pz = Pseudonymizer(load_key(Path(os.environ["MEDMM_KEY_FILE"])))
    assert set(manifest["report_id"]) == {pz.id(acc, "report") for _, acc, _, _ in RIS}
    assert manifest["report_time"].notna().all()
    assert strings_in_run(run, [v for row in RIS for v in row[:2]]) == []
    # `reports show` finds a report by its accession number as written in the export (run.json id column)
    shown = CliRunner().invoke(app, ["reports", "show", "RIS-55501001", "--run", str(run)])
    assert shown.exit_code == 0, shown.output
    assert "effusion" in shown.output and "RIS-55501001" not in shown.output


def test_an_id_column_of_the_table_stays_the_report_id(ris_export: Path) -> None:
    frame = pd.read_csv(ris_export).assign(id=["a1", "a2", "a3"])
    frame.to_csv(ris_export, index=False)
    code, out = _parse(ris_export, ris_export.parent / "run")
    assert code == 0, out
    manifest = pd.read_parquet(ris_export.parent / "run" / "manifest_reports.parquet")
    assert (manifest["report_id"] != manifest["accession_id"]).all()


def test_raw_report_ids_are_never_accession_numbers(ris_export: Path) -> None:
    """--keep-report-ids keeps ids as given: the accession column is no id then (raw numbers written)."""
    code, out = _parse(ris_export, ris_export.parent / "run", "--keep-report-ids")
    assert code == 2
    assert "no id column" in out and "--id-column" in out and "RIS-555" not in out


def test_the_export_links_to_pictures_of_the_same_accession_numbers(tmp_path: Path, ris_export: Path) -> None:
    """ingest (pictures + ids table with accession numbers, no study column), parse as documented, align."""
    rng = np.random.default_rng(0)
    (tmp_path / "pics").mkdir()
    rows = []
    for k, (mrn, acc, day, _) in enumerate(RIS):
        name = f"p{k}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(tmp_path / "pics" / name)
        rows.append(f"{name},{mrn},{acc},{day[6:]}-{day[3:5]}-{day[:2]}")
    (tmp_path / "ids.csv").write_text("filename,mrn,acc_no,exam_day\n" + "\n".join(rows) + "\n")
    run = tmp_path / "runs" / "r1"
    ingest = ["ingest", str(tmp_path / "pics"), "--out", str(run), "--workers", "1", "--modality", "DX"]
    ingest += ["--ids", str(tmp_path / "ids.csv"), "--path-column", "filename", "--patient-column", "mrn"]
    ingest += ["--time-column", "exam_day", "--accession-column", "acc_no"]
    res = CliRunner().invoke(app, ingest)
    assert res.exit_code == 0, res.output
    code, out = _parse(ris_export, run)
    assert code == 0, out
    res = CliRunner().invoke(app, ["align", str(run), "--report-window", "3d"])
    assert res.exit_code == 0, res.output
    records = pd.read_parquet(run / "records.parquet")
    assert len(records) == 3 and records["has_image"].all() and records["has_report"].all()
    assert (records["report_link"] == "accession").all()
