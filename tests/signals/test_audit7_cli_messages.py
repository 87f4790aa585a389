"""Session 7 audit: clear errors for a run directory that is a file and for EDF+D files; progress of a
serial run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals


def test_out_is_an_existing_file(tmp_path: Path) -> None:
    root = tmp_path / "ecg"
    root.mkdir()
    (root / "v.csv").write_text("time,HR [bpm]\n0,70\n1,71\n")
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    args = ["signals", "ingest", str(root), "--workers", "0", "--key-file", str(tmp_path / "k")]
    res = CliRunner().invoke(app, [*args, "--out", str(target)])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)  # was: FileExistsError traceback
    assert "results.txt: the run directory (--out) is an existing file" in " ".join(res.output.split())


def test_edf_plus_d_says_what_to_do(tmp_path: Path) -> None:
    import pyedflib

    root = tmp_path / "in"
    root.mkdir()
    head = pyedflib.highlevel.make_signal_header(
        "ECG", dimension="mV", sample_frequency=256, physical_min=-5, physical_max=5
    )
    path = root / "night.edf"
    pyedflib.highlevel.write_edf(str(path), [np.sin(np.arange(256 * 10) / 5.0)], [head])
    data = bytearray(path.read_bytes())
    assert data[192:197] == b"EDF+C"
    data[192:197] = b"EDF+D"  # the reserved field marks a discontinuous EDF+ file
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    run_signals(root, out, workers=0, pseudonymizer=Pseudonymizer(b"d" * 32))
    reason = pd.read_parquet(out / "manifest_signals.parquet").set_index("path").loc["night.edf", "reason"]
    # was: "HeaderError ... not a readable EDF/EDF+/BDF file ... Fix: re-export it as EDF+"
    assert reason.startswith("UnknownFormatError: night.edf: EDF+D (discontinuous")
    assert "Fix: export it as EDF+C (continuous)" in reason


def test_serial_run_shows_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        (root / f"v{i}.csv").write_text("time,HR [bpm]\n0,70\n1,71\n")
    monkeypatch.setenv("MEDMM_PROGRESS", "1")  # as on a terminal
    run_signals(root, tmp_path / "out", workers=0, pseudonymizer=Pseudonymizer(b"d" * 32))
    err = capfd.readouterr().err
    assert "signals" in err and "3/3" in err  # was: nothing at all with --workers 0


def test_empty_input_folder(tmp_path: Path) -> None:
    root = tmp_path / "mnt" / "ecg_export"  # a mount point whose share is not mounted
    (root / ".snapshot").mkdir(parents=True)
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    args = ["signals", "ingest", str(root), "--workers", "0", "--key-file", str(tmp_path / "k")]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    # was: exit 0 with 0 records (a nightly job "succeeded" on an unmounted share)
    assert res.exit_code == 2 and "holds no files" in " ".join(res.output.split())
    assert not (tmp_path / "run").exists()


def test_cli_summarises_quarantine_reasons(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "v.csv").write_text("time,HR [bpm]\n0,70\n1,71\n")
    (root / "orphan.dat").write_bytes(b"\0" * 8)
    (root / "bad.hea").write_text("not a header\n")
    (root / "bad.dat").write_bytes(b"\0" * 8)
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    args = ["signals", "ingest", str(root), "--workers", "0", "--key-file", str(tmp_path / "k")]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0
    # was: only "quarantined 3", the reasons had to be dug out of the parquet file
    assert "HeaderError 1, MissingHeaderError 1, part of a quarantined record 1" in res.output
