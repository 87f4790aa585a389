"""Reports linked to real DICOM studies the way hospital exports allow: by accession number and by
report date (``reports parse --accession-column/--date-column``, ``align --report-window``), end to end
on pydicom's shipped CT/MR files, with the privacy of accession numbers and dates checked."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app

pydicom = pytest.importorskip("pydicom")

#: (file, patient, study uid, accession, StudyDate, StudyTime or "" for a date alone)
STUDIES = [
    ("CT_small.dcm", "P-1", "1.2.826.0.1.3680043.2.1125.1", "ACC-CT-771", "20200304", "101500"),
    ("MR_small.dcm", "P-1", "1.2.826.0.1.3680043.2.1125.2", "ACC-MR-772", "20200310", ""),
    ("CT_small.dcm", "P-2", "1.2.826.0.1.3680043.2.1125.3", "ACC-P2-773", "20200304", "101500"),
]
RAW_DATES = ["2020-03-04", "2020-03-05", "2020-03-07", "2020-03-11", "20200304", "20200310", "04.03.2020"]
RAW_ACCESSIONS = ["ACC-CT-771", "ACC-MR-772", "ACC-P2-773", "ACC-XX-999"]


def _archive(root: Path) -> Path:
    from pydicom.data import get_testdata_file

    archive = root / "archive"
    for k, (name, patient, uid, acc, day, hhmmss) in enumerate(STUDIES):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.PatientID, ds.StudyInstanceUID, ds.AccessionNumber, ds.StudyDate = patient, uid, acc, day
        ds.SeriesInstanceUID = f"{uid}.1"
        ds.SOPInstanceUID = f"{uid}.1.1"
        for kw in (
            "SeriesDate",
            "AcquisitionDate",
            "ContentDate",
            "SeriesTime",
            "AcquisitionTime",
            "ContentTime",
        ):
            if kw in ds:
                delattr(ds, kw)
        if hhmmss:
            ds.StudyTime = hhmmss
        elif "StudyTime" in ds:
            del ds.StudyTime
        (archive / f"s{k}").mkdir(parents=True)
        ds.save_as(archive / f"s{k}" / "img.dcm")
    return archive


REPORTS = """report_id,accession,patient,exam_date,findings
r1,ACC-CT-771,P-1,,No effusion.
r2,,P-1,2020-03-11,Mild cardiomegaly.
r3,,P-1,2020-03-07,No pneumothorax.
r4,,P-2,04.03.2020 16:00,Normal heart size.
r5,ACC-P2-773,P-1,2020-03-04,Small effusion.
r6,ACC-XX-999,P-1,2020-03-04,Clear lungs.
"""


@pytest.fixture(scope="module")
def linked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, pd.DataFrame]:
    from medmm.ingest.pipeline import ingest_archive
    from medmm.reports.pipeline import parse_reports

    root = tmp_path_factory.mktemp("linkage")
    key = root / "site.key"
    key.write_text("cd" * 32 + "\n")
    key.chmod(0o600)
    run = root / "run"
    ingest_archive(_archive(root), run, workers=1, processes=False, key_file=key)
    (root / "reports.csv").write_text(REPORTS)
    parse_reports(
        root / "reports.csv",
        run,
        patient_column="patient",
        accession_column="accession",
        date_column="exam_date",
        workers=0,
        key_file=key,
    )
    res = CliRunner().invoke(app, ["align", str(run), "--key-file", str(key)])
    assert res.exit_code == 0, res.output
    counts = dict(kv.split("=", 1) for kv in res.output.splitlines()[0].split())
    return run, counts, pd.read_parquet(run / "records.parquet")


def _report_of(run: Path, raw_id: str) -> str:
    from medmm.pseudonym import Pseudonymizer

    key = bytes.fromhex((run.parent / "site.key").read_text().strip())
    return Pseudonymizer(key).id(raw_id, "report")


def test_volumes_carry_the_accession_pseudonym_and_the_time_precision(linked_run: tuple) -> None:
    from medmm.pseudonym import Pseudonymizer

    run = linked_run[0]
    pz = Pseudonymizer(bytes.fromhex((run.parent / "site.key").read_text().strip()))
    vols = pd.read_parquet(run / "volumes.parquet")
    assert sorted(vols["accession_id"]) == sorted(pz.id(a, "report") for _, _, _, a, _, _ in STUDIES)
    by_acc = dict(zip(vols["accession_id"], vols["study_time_precision"], strict=True))
    assert by_acc[pz.id("ACC-MR-772", "report")] == "date"  # StudyDate without StudyTime
    assert by_acc[pz.id("ACC-CT-771", "report")] == "datetime"
    man = pd.read_parquet(run / "manifest_reports.parquet").set_index("report_id")
    # the reports stage gives the same accession number the same pseudonym as the imaging stage
    assert man.loc[_report_of(run, "r1"), "accession_id"] == pz.id("ACC-CT-771", "report")


def test_each_report_is_linked_by_the_strongest_rule_or_not_at_all(linked_run: tuple) -> None:
    run, counts, rec = linked_run
    by_report = {r["report_id"]: r for r in rec.to_dict(orient="records") if r["has_report"]}
    r1, r2, r4 = (by_report[_report_of(run, r)] for r in ("r1", "r2", "r4"))
    assert r1["has_image"] and r1["report_link"] == "accession"
    assert r2["has_image"] and r2["report_link"] == "date"  # the MR (a date alone, 1 day before)
    assert r2["study_time_precision"] == "date"
    assert r4["has_image"] and r4["report_link"] == "date" and r4["patient_id"] != r1["patient_id"]
    for raw in ("r3", "r5", "r6"):  # a tie, another patient's accession, another exam's accession
        r = by_report[_report_of(run, raw)]
        assert not r["has_image"] and pd.isna(r["report_link"])
    assert counts["report_links_accession"] == "1" and counts["report_links_date"] == "2"
    assert counts["report_date_ties"] == "1"
    assert counts["report_accession_other_patient"] == "1"
    assert counts["report_accession_unmatched"] == "1"
    assert counts["reports_unlinked"] == "3"
    assert json.loads((run / "run.json").read_text())["stages"]["align"]["counts"]["report_links_date"] == 2
    assert int(counts["with_image"]) == 3 and rec.groupby("record_id").size().max() == 1


def test_no_raw_accession_number_or_date_in_any_output(
    linked_run: tuple, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    run = linked_run[0]
    assert strings_in_run(run, RAW_ACCESSIONS + RAW_DATES) == []


def test_a_run_without_the_new_columns_aligns_as_before(linked_run: tuple, tmp_path: Path) -> None:
    """Tables of an earlier version (no accession_id, precision or report_time): reports link by uid
    or as the patient's only study, as align did before; nothing is linked by accession or date."""
    import shutil

    run = tmp_path / "old"
    shutil.copytree(linked_run[0], run)
    vols = pd.read_parquet(run / "volumes.parquet").drop(columns=["accession_id", "study_time_precision"])
    vols.to_parquet(run / "volumes.parquet", index=False)
    man = pd.read_parquet(run / "manifest_reports.parquet")
    man.drop(columns=["accession_id", "report_time", "report_time_precision"]).to_parquet(
        run / "manifest_reports.parquet", index=False
    )
    res = CliRunner().invoke(app, ["align", str(run)])
    assert res.exit_code == 0, res.output
    rec = pd.read_parquet(run / "records.parquet")
    links = rec.loc[rec["has_report"], "report_link"].tolist()
    # P-2 has one study: its report joins it (only_study, as before); P-1 has two: never guessed
    assert links.count("only_study") == 1 and sum(pd.isna(v) for v in links) == 5
    assert rec["study_time_precision"].dropna().eq("datetime").all()
    assert len(rec) == 3 + 5  # 3 image studies (one with P-2 report) + the 5 reports of P-1 alone


def test_a_workflow_takes_the_linkage_options(linked_run: tuple, tmp_path: Path) -> None:
    """`medmm run`: the reports stage takes accession_column / date_column (checked against
    parse_reports, a typo refused) and align takes report_window_s as a duration."""
    import shutil

    from medmm.errors import ConfigError
    from medmm.reports.pipeline import parse_reports
    from medmm.workflows.config import load_workflow
    from medmm.workflows.run import _checked_options, run_workflow

    opts = {"patient_column": "patient", "accession_column": "accession", "date_column": "exam_date"}
    assert _checked_options(parse_reports, opts, "reports", positional=2) == opts
    with pytest.raises(ConfigError, match=r"date_colum.*did you mean 'date_column'"):
        _checked_options(parse_reports, {"date_colum": "d"}, "reports", positional=2)
    shutil.copytree(linked_run[0], tmp_path / "run")
    shutil.copy(linked_run[0].parent / "site.key", tmp_path / "site.key")
    (tmp_path / "w.yaml").write_text(
        "name: link\nrun_dir: run\nkey_file: site.key\nstages:\n"
        "  - {stage: align, options: {report_window_s: 12h}}\n"
    )
    cfg, base = load_workflow(tmp_path / "w.yaml")
    run_workflow(cfg, base)
    counts = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["align"]["counts"]
    # r2 (a day after the date-only MR) needs a day; r4 (5.75 h after P-2's CT) is within 12 h
    assert counts["report_links_accession"] == 1 and counts["report_links_date"] == 1
