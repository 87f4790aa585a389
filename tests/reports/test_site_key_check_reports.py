"""`reports parse` with patient/study columns claims the run directory for its site key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.pseudonym import key_check_value, load_key
from medmm.reports import pipeline
from medmm.runinfo import claim_site_key, read_run_json

CSV = "uid,patient,text\n1,P1,No effusion.\n"


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    k1, k2 = tmp_path / "k1", tmp_path / "k2"
    k1.write_text("ab" * 32 + "\n")
    k2.write_text("cd" * 32 + "\n")
    return k1, k2


def test_reports_with_another_key_are_refused(tmp_path: Path) -> None:
    src, run = tmp_path / "r.csv", tmp_path / "run"
    src.write_text(CSV)
    k1, k2 = _keys(tmp_path)
    claim_site_key(run, key_check_value(load_key(k1)))  # e.g. the imaging ingest made it with k1
    with pytest.raises(ConfigError, match="different site key") as err:
        pipeline.parse_reports(src, run, patient_column="patient", key_file=k2, workers=0)
    assert str(run) in str(err.value)
    assert not (run / "report_labels.parquet").exists()
    args = ["reports", "parse", str(src), "--out", str(run), "--workers", "0", "--patient-column", "patient"]
    res = CliRunner().invoke(app, [*args, "--key-file", str(k2)])
    text = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "error" in text and "different site key" in text, res.output
    # the same key is accepted; the field stays
    pipeline.parse_reports(src, run, patient_column="patient", key_file=k1, workers=0)
    assert (run / "report_labels.parquet").exists()
    assert read_run_json(run)["key_check"] == key_check_value(load_key(k1))


def test_reports_record_the_key_and_keyless_reports_do_not(tmp_path: Path) -> None:
    src = tmp_path / "r.csv"
    src.write_text(CSV)
    k1, k2 = _keys(tmp_path)
    keyed, keyless = tmp_path / "keyed", tmp_path / "keyless"
    pipeline.parse_reports(src, keyed, patient_column="patient", key_file=k1, workers=0)
    assert read_run_json(keyed)["key_check"] == key_check_value(load_key(k1))
    # report ids are identifiers too: pseudonymized with the key, recorded
    pipeline.parse_reports(src, tmp_path / "ids", workers=0, key_file=k2)
    assert read_run_json(tmp_path / "ids")["key_check"] == key_check_value(load_key(k2))
    # ids kept as given (already de-identified data) and no id column: no key used
    pipeline.parse_reports(src, keyless, workers=0, key_file=k2, keep_report_ids=True)
    assert "key_check" not in read_run_json(keyless)
