"""The ``medmm ingest`` / ``medmm demo`` commands and the sample archive."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app
from medmm.ingest.sample import DEMO_PATIENT, run_demo
from medmm.records import Status
from medmm.tables import read_table


def test_ingest_command_exit_codes_and_strict(tmp_path: Path, key_file: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "notes.txt").write_text("not an image\n")
    (archive / "empty.dcm").write_bytes(b"")
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(archive), "--out", str(run), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "quarantined" in result.output and "non_image" in result.output
    strict = runner.invoke(app, ["ingest", str(archive), "--out", str(run), "--strict"])
    assert strict.exit_code == 1  # nothing to redo (no cluster started), still strict about the quarantine
    assert "skipped (already done): 2" in strict.output
    both = runner.invoke(
        app, ["ingest", str(archive), "--out", str(run), "-w", "2", "--scheduler", "tcp://x:1"]
    )
    assert both.exit_code != 0
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "notes.txt").write_text("only text\n")
    ok = runner.invoke(app, ["ingest", str(clean), "--out", str(tmp_path / "run2"), "--strict", "-w", "1"])
    assert ok.exit_code == 0, ok.output


def test_demo_builds_ingests_and_hides_the_demo_patient(tmp_path: Path, key_file: Path) -> None:
    summary = run_demo(tmp_path / "demo", workers=2, processes=False)
    counts = summary["counts"]
    assert set(counts) == {s.value for s in Status}  # every outcome is demonstrated
    assert counts["ingested"] >= 10 and summary["n_volumes"] >= 8
    manifest = read_table(Path(summary["manifest"])).set_index("path")
    assert manifest.loc["generated/analyze_pair.img", "status"] == "companion"
    assert manifest.loc["generated/scan_0001.bin", "status"] == "ingested"  # DICOM despite its name
    assert manifest.loc["generated/truncated_copy.dcm", "reason"].startswith("TruncatedPixelDataError")
    assert manifest.loc["pydicom/waveform_ecg.dcm", "status"] == "non_image"
    assert manifest.loc["generated/slide_like.dcm", "reason"].startswith("UnsupportedImageError")
    synthetic = manifest[manifest.index.str.startswith("generated/synthetic_ct/")]
    assert (synthetic["status"] == "ingested").all() and synthetic["volume_id"].nunique() == 1
    run = tmp_path / "demo"
    blobs = [read_table(run / "manifest.parquet").to_csv(), read_table(run / "volumes.parquet").to_csv()]
    blobs += [p.read_text() for p in (run / "volumes").glob("*.json")]
    for value in DEMO_PATIENT.values():
        assert not any(value in blob for blob in blobs), value
    stage = json.loads((run / "run.json").read_text())["stages"]["ingest"]
    assert stage["counts"] == counts and stage["n_files"] == summary["n_files"]


def test_demo_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--out" in result.output


def test_ingest_on_an_existing_scheduler(tmp_path: Path, key_file: Path) -> None:
    from distributed import LocalCluster

    from medmm.ingest.pipeline import ingest_archive

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "a.txt").write_text("text\n")
    (archive / "b.dcm").write_bytes(b"")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        result = ingest_archive(archive, tmp_path / "run", scheduler=cluster.scheduler_address)
    assert result.counts == {"non_image": 1, "quarantined": 1}
