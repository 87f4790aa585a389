"""``medmm align --labels``: labels from a hospital table keyed by raw patient / study ids, with ids
missing from the run, records missing from the table, bad values, duplicates and the wrong key."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.align.labels import LabelTableError
from medmm.align.pipeline import align_run
from medmm.errors import ConfigError
from medmm.pseudonym import Pseudonymizer, key_check_value
from medmm.runinfo import claim_site_key

KEY = b"\x01" * 32


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A reports-only run: MRN-1 with studies UID-1 and UID-2, MRN-2 with UID-3."""
    pz = Pseudonymizer(KEY)
    (tmp_path / "site.key").write_text(KEY.hex() + "\n")
    run = tmp_path / "run"
    run.mkdir()
    pairs = [("MRN-1", "UID-1"), ("MRN-1", "UID-2"), ("MRN-2", "UID-3")]
    pd.DataFrame(
        {
            "path": [f"r.csv#{n}" for n in (1, 2, 3)],
            "status": "ingested",
            "report_id": ["1", "2", "3"],
            "patient_id": [pz.id(p, "patient") for p, _ in pairs],
            "study_id": [pz.id(s, "study") for _, s in pairs],
        }
    ).to_parquet(run / "manifest_reports.parquet")
    pd.DataFrame({"report_id": ["1", "2", "3"], "finding": "normal", "status": "present"}).to_parquet(
        run / "report_labels.parquet"
    )
    return run


def _labels(run: Path) -> dict[str, dict]:
    rec = pd.read_parquet(run / "records.parquet")
    return {r: json.loads(lab) for r, lab in zip(rec["report_id"], rec["labels"], strict=True)}


def test_patient_and_study_rows_with_missing_and_extra_ids(run: Path) -> None:
    table = run.parent / "labels.csv"
    table.write_text(
        "patient,study,sepsis,death\n"
        "MRN-1,,0,0\n"  # patient level: both studies of MRN-1
        "MRN-1,UID-2,1,\n"  # study level wins for sepsis; death unknown there
        "MRN-9,,1,1\n"  # not in the run
    )
    counts = align_run(run, labels=table, key_file=run.parent / "site.key")
    assert _labels(run) == {
        "1": {"sepsis": 0, "death": 0},
        "2": {"sepsis": 1, "death": None},
        "3": {},  # MRN-2 has no row: unknown, not 0
    }
    assert counts["label_rows"] == 3 and counts["label_rows_unmatched"] == 1
    assert counts["records_without_table_labels"] == 1
    outputs = (run / "records.parquet").read_bytes() + (run / "run.json").read_bytes()
    assert b"MRN-" not in outputs and b"UID-" not in outputs


def test_bad_value_names_the_row_and_column(run: Path) -> None:
    from medmm.cli import app

    table = run.parent / "labels.csv"
    table.write_text("patient,sepsis\nMRN-1,1\nMRN-2,maybe\n")
    with pytest.raises(
        LabelTableError, match=r"labels\.csv#2: column 'sepsis' holds a value that is not 1, 0 or empty"
    ):
        align_run(run, labels=table, key_file=run.parent / "site.key")
    res = CliRunner().invoke(
        app, ["align", str(run), "--labels", str(table), "--key-file", str(run.parent / "site.key")]
    )
    assert res.exit_code == 2 and "labels.csv#2" in res.output and "MRN" not in res.output
    assert not (run / "records.parquet").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,sepsis\nMRN-1,1\n", "no 'patient' column"),
        ("patient,study\nMRN-1,UID-1\n", "no label column"),
        ("patient,sepsis\nMRN-1,1\nMRN-1,0\n", r"#2: same patient and study as row #1"),
        ("patient,sepsis\n,1\n", r"#1: empty patient id"),
    ],
)
def test_unusable_tables_are_refused(run: Path, text: str, message: str) -> None:
    table = run.parent / "labels.csv"
    table.write_text(text)
    with pytest.raises(LabelTableError, match=message):
        align_run(run, labels=table, key_file=run.parent / "site.key")


def test_label_names_must_not_repeat_other_labels(run: Path) -> None:
    table = run.parent / "labels.csv"
    table.write_text("patient,normal\nMRN-1,1\n")
    with pytest.raises(ConfigError, match=r"\['normal'\] are also --label-finding"):
        align_run(run, label_findings=["normal"], labels=table, key_file=run.parent / "site.key")


def test_another_sites_key_is_refused(run: Path) -> None:
    claim_site_key(run, key_check_value(KEY))
    other = run.parent / "other.key"
    other.write_text(("02" * 32) + "\n")
    table = run.parent / "labels.csv"
    table.write_text("patient,sepsis\nMRN-1,1\n")
    with pytest.raises(ConfigError, match="different site key"):
        align_run(run, labels=table, key_file=other)
    align_run(run, labels=table, key_file=run.parent / "site.key")
    assert _labels(run)["1"] == {"sepsis": 1}
