"""Odd entries of a signals folder (dangling links, non-UTF-8 names, a file removed mid-run) are
quarantined rows, not a crash of the whole run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import medmm.signals.pipeline as pipeline
from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals
from medmm.tables import read_table

KEY = Pseudonymizer(b"o" * 32)


def test_dangling_link_and_non_utf8_name(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "v.csv").write_text("time,HR\n0,70\n1,71\n")
    (root / "gone.hea").symlink_to(tmp_path / "nowhere.hea")
    with open(os.fsencode(root) + b"/w\xe9.csv", "w") as fh:
        fh.write("time,HR\n0,70\n")
    run_signals(root, tmp_path / "run", workers=0, pseudonymizer=KEY)
    m = read_table(tmp_path / "run" / "manifest_signals.parquet").set_index("path")
    assert sorted(m.index) == ["gone.hea", "v.csv", "w\\xe9.csv"]
    assert m.loc["v.csv", "status"] == "ingested"
    assert "target does not exist" in m.loc["gone.hea", "reason"]
    assert "not valid UTF-8" in m.loc["w\\xe9.csv", "reason"]


def test_file_removed_during_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.csv").write_text("time,HR\n0,70\n1,71\n")
    (root / "b.csv").write_text("time,HR\n0,70\n1,71\n")
    real = pipeline.process_resumable

    def export_job_moves_a(job: Any, *args: Any) -> Any:
        if job.main == "a.csv":
            (root / "a.csv").unlink()
        return real(job, *args)

    monkeypatch.setattr(pipeline, "process_resumable", export_job_moves_a)
    counts = run_signals(root, tmp_path / "run", workers=0, pseudonymizer=KEY)
    m = read_table(tmp_path / "run" / "manifest_signals.parquet").set_index("path")
    assert counts["quarantined"] == 1 and m.loc["b.csv", "status"] == "ingested"
    assert "a.csv disappeared during the run" in m.loc["a.csv", "reason"]


def test_empty_header_says_so(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "r.hea").write_bytes(b"")
    run_signals(root, tmp_path / "run", workers=0, pseudonymizer=KEY)
    m = read_table(tmp_path / "run" / "manifest_signals.parquet").set_index("path")
    assert "the header file is empty" in m.loc["r.hea", "reason"]  # was "IndexError: list index out of range"
