"""`medmm ingest --ids TABLE --accession-column NAME`: a picture's accession number from a column of any
name becomes its `accession_id`, the pseudonym a report with that accession number gets, so `medmm align`
links the report to the picture by accession; the raw number is written nowhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmm.cli import app
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.reports.io.inputs import report_pseudonymizer

#: picture -> (raw patient id, raw accession number, exam date, raw study id); two studies of one patient
#: on one day, so only the accession number can tell which report belongs to which picture
RAW = {
    "a.png": ("MRN-ALPHA-7731", "RIS-88812001", "2021-03-04", "STUDY-ALPHA-1"),
    "b.png": ("MRN-ALPHA-7731", "RIS-88812002", "2021-03-04", "STUDY-ALPHA-2"),
    "c.png": ("MRN-BETA-9902", "RIS-88812003", "2021-05-06", "STUDY-BETA-1"),
}


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """3 PNG pictures, an ids table whose accession column is `acc_no`, and a RIS report export."""
    rng = np.random.default_rng(0)
    (tmp_path / "pics").mkdir()
    for name in RAW:
        Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(tmp_path / "pics" / name)
    rows = [f"{name},{mrn},{study},{acc},{day}" for name, (mrn, acc, day, study) in RAW.items()]
    (tmp_path / "ids.csv").write_text("filename,mrn,exam,acc_no,exam_day\n" + "\n".join(rows) + "\n")
    pd.DataFrame(
        {
            "rid": ["r1", "r2", "r3"],
            "mrn": [v[0] for v in RAW.values()],
            "accession_no": [v[1] for v in RAW.values()],
            "findings": ["No pleural effusion.", "Small left pleural effusion.", "The lungs are clear."],
        }
    ).to_csv(tmp_path / "ris.csv", index=False)
    (tmp_path / "site.key").write_text("cd" * 32 + "\n")
    (tmp_path / "site.key").chmod(0o600)
    return tmp_path


def _ingest(site: Path, *extra: str) -> tuple[int, str]:
    args = ["ingest", str(site / "pics"), "--out", str(site / "run"), "--workers", "1"]
    args += ["--key-file", str(site / "site.key"), "--ids", str(site / "ids.csv")]
    args += ["--path-column", "filename", "--patient-column", "mrn", "--time-column", "exam_day"]
    res = CliRunner().invoke(app, [*args, "--modality", "DX", *extra])
    return res.exit_code, res.output


def test_accession_column_links_pictures_to_their_reports(
    site: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    code, out = _ingest(site, "--study-column", "exam", "--accession-column", "acc_no")
    assert code == 0, out
    run = site / "run"
    volumes = pd.read_parquet(run / "volumes.parquet")
    accession_of = report_pseudonymizer(Pseudonymizer(load_key(site / "site.key")))
    by_file = {
        Path(src[0]).name: acc for src, acc in zip(volumes["sources"], volumes["accession_id"], strict=True)
    }
    assert by_file == {name: accession_of(v[1]) for name, v in RAW.items()}
    assert (volumes["study_time_precision"] == "date").all()

    reports = [
        "reports", "parse", str(site / "ris.csv"), "--out", str(run), "--id-column", "rid",
        "--text-columns", "findings", "--patient-column", "mrn", "--accession-column", "accession_no",
        "--key-file", str(site / "site.key"), "--workers", "0",
    ]  # fmt: skip
    res = CliRunner().invoke(app, reports)
    assert res.exit_code == 0, res.output
    manifest = pd.read_parquet(run / "manifest_reports.parquet")
    assert set(manifest["accession_id"]) == set(volumes["accession_id"])  # the same pseudonym both sides

    res = CliRunner().invoke(app, ["align", str(run), "--key-file", str(site / "site.key")])
    assert res.exit_code == 0, res.output
    records = pd.read_parquet(run / "records.parquet")
    linked = records.dropna(subset=["report_id"])
    assert len(linked) == 3 and (linked["report_link"] == "accession").all()
    # each picture's record holds the report of its own accession number (same patient, same day)
    report_of = dict(zip(manifest["report_id"], manifest["accession_id"], strict=True))
    study_acc = dict(zip(volumes["study_id"], volumes["accession_id"], strict=True))
    assert all(
        report_of[r] == study_acc[s] for r, s in zip(linked["report_id"], linked["study_id"], strict=True)
    )

    raw = [v for (mrn, acc, _, study) in RAW.values() for v in (mrn, acc, study)]
    assert strings_in_run(run, raw) == []


def test_without_the_option_another_column_name_is_not_read(site: Path) -> None:
    code, out = _ingest(site)
    assert code == 0, out
    assert pd.read_parquet(site / "run" / "volumes.parquet")["accession_id"].isna().all()


def test_a_missing_accession_column_is_named_with_its_option(site: Path) -> None:
    code, out = _ingest(site, "--accession-column", "accession_number")
    assert code == 2
    assert "no column 'accession_number'" in out and "--accession-column" in out
    assert "RIS-888" not in out and "MRN-" not in out
    assert not (site / "run" / "volumes.parquet").exists()


def test_id_column_options_without_an_ids_table_are_refused(site: Path) -> None:
    args = ["ingest", str(site / "pics"), "--out", str(site / "run"), "--key-file", str(site / "site.key")]
    res = CliRunner().invoke(app, [*args, "--accession-column", "acc_no", "--patient-column", "mrn"])
    assert res.exit_code == 2
    assert "--patient-column, --accession-column" in res.output and "--ids" in res.output
    assert not (site / "run").exists()


def test_pictures_without_a_study_column_link_by_accession(site: Path) -> None:
    code, out = _ingest(site, "--accession-column", "acc_no")
    assert code == 0, out
    run = site / "run"
    reports = [
        "reports", "parse", str(site / "ris.csv"), "--out", str(run), "--id-column", "rid",
        "--text-columns", "findings", "--patient-column", "mrn", "--accession-column", "accession_no",
        "--key-file", str(site / "site.key"), "--workers", "0",
    ]  # fmt: skip
    assert CliRunner().invoke(app, reports).exit_code == 0
    assert CliRunner().invoke(app, ["align", str(run), "--key-file", str(site / "site.key")]).exit_code == 0
    records = pd.read_parquet(run / "records.parquet")
    # patient BETA has one picture and one report with the same accession number: one record, both in it
    pz = Pseudonymizer(load_key(site / "site.key"))
    beta = records[records["patient_id"] == pz.id("MRN-BETA-9902", "patient")]
    assert len(beta) == 1 and beta["has_image"].all() and (beta["report_link"] == "accession").all()
