"""Session 7 audit: an unreadable file is an input problem with a fix; a full run directory stops the run."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.pseudonym import Pseudonymizer
from medmm.signals import pipeline


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.hea").write_text(f"{name} 1 250 5000\n{name}.dat 16 200/mV 16 0 0 0 0 II\n")
        (np.sin(np.arange(5000) / 8.0) * 400).astype("<i2").tofile(root / f"{name}.dat")
    return root


def _failing(exc: OSError) -> Any:
    def process_record(job: Any, *args: Any) -> Any:
        raise exc

    return process_record


def test_unreadable_file_reason(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exc = PermissionError(errno.EACCES, "Permission denied", str(inputs / "a.dat"))
    monkeypatch.setattr(pipeline, "process_record", _failing(exc))
    out = tmp_path / "out"
    pipeline.run_signals(inputs, out, workers=0, pseudonymizer=Pseudonymizer(b"x" * 32))
    reason = pd.read_parquet(out / "manifest_signals.parquet").set_index("path").loc["a.hea", "reason"]
    # was: "PermissionError: a.hea: unexpected error ... Fix: report it ... to the medmm maintainers"
    assert reason.startswith(
        "PermissionError: a.hea: a.dat could not be read (Permission denied). Fix: check"
    )
    assert str(inputs) not in reason  # no absolute paths of the archive in the manifest


def test_full_run_directory_stops_the_run(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        pipeline, "process_record", _failing(OSError(errno.ENOSPC, "No space left on device"))
    )
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    args = ["signals", "ingest", str(inputs), "--workers", "0", "--key-file", str(tmp_path / "k")]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    # was: every record quarantined "unexpected error ... No space left on device", exit 0
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert "No space left on device while writing the results of a.hea" in " ".join(res.output.split())
    assert not (tmp_path / "out" / "manifest_signals.parquet").exists()
