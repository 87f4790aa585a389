"""Privacy audit: every stage on an archive with identity everywhere a hospital export puts it.

The archive (:mod:`privacy_archive`) carries a patient's name, MRN, other ids, birth date, accession
number, institution, physicians, phone number in DICOM attributes (nested sequence and private tag
included), NIfTI text fields, PNG text chunks and JPEG EXIF, EDF+ header fields and an annotation, WFDB
header comments and a report CSV; folders and files are named after patients (``Müller``, ``Ñúñez``,
MRNs). Ingest, reports parse, signals ingest, align with a labels table and share run on it with every
log record, warning and printed line captured.

* No value from *inside* a file may appear in any output file, log or printed line, in any common
  spelling (``SMITH^JOHN``, ``John Smith``, URL/base64) or as an unkeyed MD5/SHA-1/SHA-256 prefix.
* Names from *file and folder names* are kept in the run (its ledger of paths and record names,
  docs/ingest.md) but must not reach a ``medmm share`` copy or its console summary.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pandas as pd
import pytest
from privacy_archive import HEADER_IDENTITY, NAME_IDENTITY, build_archive, found_in


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from typer.testing import CliRunner

    from medmm.align.pipeline import align_run
    from medmm.cli import app
    from medmm.ingest.pipeline import ingest_archive
    from medmm.reports.pipeline import parse_reports
    from medmm.signals.pipeline import run_signals
    from medmm.signals.process import Settings

    root = tmp_path_factory.mktemp("privacy")
    # SeriesDescription / ProtocolName hold the patient's name and MRN (R1), and the series lies in a
    # folder named CT (R4: the share with volumes was refused)
    archive = build_archive(root)
    key = root / "site.key"
    key.write_text("ab" * 32 + "\n")
    run = root / "run"
    labels = root / "labels.csv"
    labels.write_text("patient,study,abnormal\nMRN4471923,,1\nÑúñez_MRN5550002,,0\n")
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler, root_log = Collect(level=logging.DEBUG), logging.getLogger()
    old_level = root_log.level
    root_log.addHandler(handler)
    root_log.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ingest_archive(archive, run, workers=1, processes=False, key_file=key)
            parse_reports(
                archive / "reports.csv",
                run,
                id_column="accession",
                text_columns=["indication", "findings", "impression"],
                patient_column="mrn",
                accession_column="accession",
                date_column="date",
                workers=0,
                key_file=key,
            )
            settings = Settings(anchor_events=".", patient_from="folder")
            run_signals(archive / "ecg", run, settings=settings, workers=0, key_file=key)
            align_run(run, labels=labels, key_file=key)
    finally:
        root_log.removeHandler(handler)
        root_log.setLevel(old_level)
    share_args = ["share", str(run), "--out", str(root / "share"), "--with-windows", "--with-volumes"]
    share = CliRunner().invoke(app, [*share_args, "--key-file", str(key)])
    logs = "\n".join(records + [str(w.message) for w in caught])
    return {"run": run, "share": root / "share", "logs": logs, "share_output": share, "archive": archive}


def test_every_stage_ran(audited: dict[str, object]) -> None:
    run = audited["run"]
    assert isinstance(run, Path)
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert (manifest["status"] == "ingested").sum() >= 3  # DICOM series, NIfTI, pictures
    assert len(pd.read_parquet(run / "manifest_reports.parquet")) == 2
    signals = pd.read_parquet(run / "manifest_signals.parquet")
    assert (signals["status"] == "ingested").sum() == 3 and set(signals["status"]) <= {
        "ingested",
        "companion",
    }
    assert len(pd.read_parquet(run / "records.parquet")) > 0
    share = audited["share_output"]
    assert share.exit_code == 0, share.output  # type: ignore[attr-defined]
    shared = audited["share"]
    assert isinstance(shared, Path) and len(list((shared / "volumes").glob("*.json"))) >= 3


def test_no_header_identity_in_run_logs_or_share(
    audited: dict[str, object], capfd: pytest.CaptureFixture[str]
) -> None:
    run, share = audited["run"], audited["share"]
    assert isinstance(run, Path) and isinstance(share, Path)
    texts = {"logs": str(audited["logs"]), "share console": audited["share_output"].output}  # type: ignore[attr-defined]
    hits = found_in(run, HEADER_IDENTITY, texts=texts) + found_in(share, HEADER_IDENTITY)
    assert hits == []


def test_no_name_identity_in_share(audited: dict[str, object]) -> None:
    share = audited["share"]
    assert isinstance(share, Path)
    console = {"share console": audited["share_output"].output}  # type: ignore[attr-defined]
    assert found_in(share, NAME_IDENTITY, texts=console) == []


def test_pseudonyms_are_keyed(audited: dict[str, object]) -> None:
    """The patient ids are the site key's HMAC pseudonyms: the MRN's pseudonym under another key (or an
    unkeyed digest, checked by ``found_in``) is nowhere."""
    from medmm.pseudonym import Pseudonymizer

    run = audited["run"]
    assert isinstance(run, Path)
    ids = set(pd.read_parquet(run / "manifest.parquet")["patient_id"].dropna())
    assert Pseudonymizer(bytes.fromhex("ab" * 32)).id("MRN4471923", "patient") in ids
    assert Pseudonymizer(bytes(32)).id("MRN4471923", "patient") not in ids
    assert "key" not in json.loads((run / "run.json").read_text())  # only the check value
    assert found_in(run, ("ab" * 32,), digests=False) == []  # the key itself is written nowhere
