"""``reports parse --date-column / --accession-column``: report dates shifted by the patient's keyed
shift, unreadable dates as per-report reasons, day/month order decided from the column (as the signals
stage does), accession numbers pseudonymized as the imaging stage does; nothing raw in the outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.pseudonym import Pseudonymizer
from medmm.reports.io.dates import AmbiguousDateError, read_dates
from medmm.reports.io.inputs import read_reports

CSV = """report_id,patient,accession,exam_date,findings
1,MRN-1,A-1001,2021-06-15,No effusion.
2,MRN-1,A-1002,15.06.2021 14:20,Mild cardiomegaly.
3,MRN-2,A-1003,June 15th,No pneumothorax.
4,,A-1004,2021-06-16,Normal.
5,MRN-2,,,Clear lungs.
"""


def _parse(tmp_path: Path, key_file: Path, *extra: str) -> tuple[int, str, pd.DataFrame | None]:
    (tmp_path / "r.csv").write_text(CSV)
    args = ["reports", "parse", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), "--workers", "0"]
    res = CliRunner().invoke(app, [*args, "--key-file", str(key_file), *extra])
    path = tmp_path / "run" / "manifest_reports.parquet"
    return res.exit_code, res.output, pd.read_parquet(path) if path.exists() else None


def test_dates_are_shifted_by_the_patients_keyed_shift(tmp_path: Path, key_file: Path) -> None:
    code, out, man = _parse(tmp_path, key_file, "--patient-column", "patient", "--date-column", "exam_date")
    assert code == 0, out
    assert man is not None
    pz = Pseudonymizer(bytes.fromhex(key_file.read_text().strip()))
    row = {r["path"]: r for r in man.to_dict(orient="records")}
    # the same shift the imaging and signals stages apply to this patient's dates
    assert row["r.csv#1"]["report_time"] == pz.shift_date("MRN-1", datetime(2021, 6, 15).date()).isoformat()
    assert row["r.csv#1"]["report_time_precision"] == "date"
    assert (
        row["r.csv#2"]["report_time"] == pz.shift_datetime("MRN-1", datetime(2021, 6, 15, 14, 20)).isoformat()
    )
    assert row["r.csv#2"]["report_time_precision"] == "datetime"
    assert "counts:" in out and "with_date=2" in out and "dates_unusable=2" in out


def test_an_unreadable_date_is_a_per_report_reason_never_a_silent_gap(tmp_path: Path, key_file: Path) -> None:
    code, _, man = _parse(tmp_path, key_file, "--patient-column", "patient", "--date-column", "exam_date")
    assert code == 0 and man is not None
    row = {r["path"]: r for r in man.to_dict(orient="records")}
    bad = row["r.csv#3"]
    assert bad["status"] == "ingested" and pd.isna(bad["report_time"])
    assert bad["reason"].startswith("UnreadableDateError: r.csv#3: column 'exam_date'")
    assert "June" not in bad["reason"] and "date-unreadable" in bad["notes"]
    no_patient = row["r.csv#4"]  # a date, but no patient id to shift it by
    assert no_patient["reason"].startswith("DateWithoutPatientError: r.csv#4") and pd.isna(
        no_patient["report_time"]
    )
    assert row["r.csv#5"]["reason"] == "" and pd.isna(row["r.csv#5"]["report_time"])  # no date: no problem


def test_a_date_column_needs_the_patient_column(tmp_path: Path, key_file: Path) -> None:
    code, out, man = _parse(tmp_path, key_file, "--date-column", "exam_date")
    assert code == 2 and man is None
    assert "error:" in out and "--date-column 'exam_date' needs --patient-column" in out and "Fix:" in out
    code, out, _ = _parse(tmp_path, key_file, "--patient-column", "patient", "--date-column", "exam_day")
    assert code == 2 and "no column 'exam_day'" in out


def test_slashed_dates_take_their_order_from_the_column_or_are_refused(tmp_path: Path) -> None:
    dayfirst = read_dates(["03/04/2021", "13/04/2021"], "r.csv", "d")
    assert [(d.when.day, d.when.month) for d in dayfirst if d.when] == [(3, 4), (13, 4)]
    monthfirst = read_dates(["03/04/2021", "04/13/2021"], "r.csv", "d")
    assert [(d.when.month, d.when.day) for d in monthfirst if d.when] == [(3, 4), (4, 13)]
    with pytest.raises(AmbiguousDateError, match=r"r\.csv: the dates in column 'd' \(nn/nn/yyyy\) can be"):
        read_dates(["03/04/2021", "05/06/2021"], "r.csv", "d")
    p = tmp_path / "r.csv"
    p.write_text("id,patient,d,text\n1,P,03/04/2021,No effusion.\n2,P,05/06/2021,Normal.\n")
    with pytest.raises(AmbiguousDateError):
        read_reports(p, patient_column="patient", date_column="d", pseudonymizer=Pseudonymizer(b"k" * 32))


def test_accession_numbers_get_the_imaging_stages_pseudonym(tmp_path: Path, key_file: Path) -> None:
    from medmm.imaging.records import ACCESSION_KIND, accession_pseudonym
    from medmm.reports.io.inputs import ACCESSION_KIND as REPORTS_ACCESSION_KIND

    assert ACCESSION_KIND == REPORTS_ACCESSION_KIND == "report"
    code, out, man = _parse(
        tmp_path, key_file, "--patient-column", "patient", "--accession-column", "accession"
    )
    assert code == 0 and man is not None, out
    pz = Pseudonymizer(bytes.fromhex(key_file.read_text().strip()))
    row = {r["path"]: r for r in man.to_dict(orient="records")}
    assert row["r.csv#1"]["accession_id"] == accession_pseudonym(pz, "A-1001") == pz.id("A-1001", "report")
    assert pd.isna(row["r.csv#5"]["accession_id"])


def test_an_id_column_named_accession_is_the_accession(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("accession,findings\nA-77,No effusion.\n")
    pz = Pseudonymizer(b"k" * 32)
    batch = read_reports(p, pseudonymizer=pz)
    assert batch.reports[0].accession_id == batch.reports[0].report_id == pz.id("A-77", "report")
    assert batch.accession_column == "accession"


def test_no_raw_date_or_accession_number_in_the_outputs(
    tmp_path: Path, key_file: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    code, out, _ = _parse(
        tmp_path,
        key_file,
        "--patient-column",
        "patient",
        "--accession-column",
        "accession",
        "--date-column",
        "exam_date",
    )
    assert code == 0, out
    raw = ["2021-06-15", "15.06.2021", "2021-06-16", "June 15th", "A-1001", "A-1002", "A-1003", "MRN-1"]
    assert strings_in_run(tmp_path / "run", raw) == []
    assert not any(s in out for s in raw)


def test_one_name_for_the_report_id_pseudonym() -> None:
    import medmm.reports.io.inputs as inputs

    assert not hasattr(inputs, "report_pseudonym") and "report_pseudonym" not in inputs.__all__
    assert inputs.report_pseudonymizer(Pseudonymizer(b"k" * 32))("1") == Pseudonymizer(b"k" * 32).id(
        "1", "report"
    )


def test_date_options_on_a_txt_folder_or_undecidable_dates_stop_with_exit_2(
    tmp_path: Path, key_file: Path
) -> None:
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "1.txt").write_text("No effusion.")
    args = ["reports", "parse", str(folder), "--out", str(tmp_path / "run1"), "--workers", "0"]
    res = CliRunner().invoke(app, [*args, "--patient-column", "p", "--date-column", "d"])
    assert res.exit_code == 2 and "a folder of .txt reports has none" in res.output
    table = tmp_path / "r.csv"
    table.write_text("id,p,d,text\n1,P,03/04/2021,No effusion.\n2,P,05/06/2021,Normal.\n")
    args = ["reports", "parse", str(table), "--out", str(tmp_path / "run2"), "--workers", "0"]
    res = CliRunner().invoke(app, [*args, "--patient-column", "p", "--date-column", "d"])
    assert res.exit_code == 2 and "AmbiguousDateError" not in res.output  # a message, not a traceback
    assert "can be day/month or month/day" in res.output and "Fix: write ISO dates" in res.output
    assert "03/04/2021" not in res.output
