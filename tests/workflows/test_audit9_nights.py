"""Nightly screening on a growing ECG export: a record deleted, one re-exported in place (same names, new
content), one renamed, one new. The next night's run lists every current input once, recomputes what a
changed record feeds (beats, anomaly scores, records), and keeps nothing of a record that left the
export - neither in its tables nor as window arrays or saved results in the run directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.demo.samples import write_sample_ecg


def _workflow(base: Path, name: str, anomaly: str) -> Path:
    path = base / name
    path.write_text(
        "name: ecg-nightly\nrun_dir: run\nkey_file: site.key\ncluster: {workers: 1}\nstrict: true\nstages:\n"
        "  - {stage: signals, input: ecg}\n"
        f"  - {{stage: anomaly, options: {anomaly}}}\n"
        "  - {stage: align}\n"
    )
    return path


def _records(run: Path, table: str) -> set[str]:
    return set(pd.read_parquet(run / table, columns=["record"])["record"])


def test_deleted_changed_renamed_and_new_records_next_night(tmp_path: Path) -> None:
    (tmp_path / "site.key").write_text("9f" * 32 + "\n")
    (tmp_path / "site.key").chmod(0o600)
    ecg, run = tmp_path / "ecg", tmp_path / "run"
    write_sample_ecg(ecg, n_records=3, duration_s=30.0)
    first = _workflow(tmp_path, "first.yaml", "{model: model, train: true, epochs: 2}")
    night1 = CliRunner().invoke(app, ["run", str(first)])
    assert night1.exit_code == 0, night1.output
    assert _records(run, "anomalies.parquet") == {"demo_ecg_1", "demo_ecg_2", "demo_ecg_3"}
    beats1 = pd.read_parquet(run / "beats.parquet").groupby("record").size()

    export = tmp_path / "export"  # the night's re-export: other content under record 2's names
    write_sample_ecg(export, n_records=4, duration_s=45.0, seed=7)
    for ext in ("hea", "dat", "atr"):
        shutil.copy(export / f"demo_ecg_2.{ext}", ecg / f"demo_ecg_2.{ext}")
        shutil.copy(export / f"demo_ecg_4.{ext}", ecg / f"demo_ecg_4.{ext}")
        (ecg / f"demo_ecg_3.{ext}").unlink()
    for ext in ("dat", "atr"):  # record 1 renamed: a WFDB header names its data file
        (ecg / f"demo_ecg_1.{ext}").rename(ecg / f"renamed_1.{ext}")
    header = (ecg / "demo_ecg_1.hea").read_text().replace("demo_ecg_1", "renamed_1")
    (ecg / "demo_ecg_1.hea").unlink()
    (ecg / "renamed_1.hea").write_text(header)

    nightly = _workflow(tmp_path, "nightly.yaml", "{model: model}")
    night2 = CliRunner().invoke(app, ["run", str(nightly)])
    assert night2.exit_code == 0, night2.output
    assert (
        "signals: 9 files, 0 quarantined (0 new), 3 records processed now" in night2.stdout.splitlines()[-1]
    )

    manifest = pd.read_parquet(run / "manifest_signals.parquet")
    assert sorted(manifest["path"]) == sorted(p.name for p in ecg.iterdir())  # every input once
    assert (manifest["status"] != "quarantined").all(), manifest[["path", "reason"]]
    now = {"renamed_1", "demo_ecg_2", "demo_ecg_4"}
    for table in ("signals.parquet", "beats.parquet", "windows.parquet", "anomalies.parquet"):
        assert _records(run, table) == now, table
    beats2 = pd.read_parquet(run / "beats.parquet").groupby("record").size()
    assert beats2["demo_ecg_2"] != beats1["demo_ecg_2"]  # recomputed from the new content
    assert beats2["renamed_1"] == beats1["demo_ecg_1"]
    windows = pd.read_parquet(run / "windows.parquet")
    assert len(pd.read_parquet(run / "window_anomalies.parquet")) == len(windows)
    # nothing of the records that left the export stays in the run directory
    arrays = sorted(p.relative_to(run).as_posix() for p in (run / "windows").rglob("*.npy"))
    assert arrays == sorted(windows["path"].unique())
    assert sorted(p.name for p in (run / "windows").iterdir()) == sorted(now)
    assert len(list((run / ".signals_parts").glob("*.pkl"))) == 3


def test_a_folder_unreadable_for_a_night_keeps_its_records_saved_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    """A sub-folder of the export cannot be listed one night (permissions, a share hiccup): it is a
    quarantined row, and its records' saved results and windows stay for the night it can be listed
    again (then resumed, not recomputed)."""
    import errno
    import os

    from medmm.signals.pipeline import run_signals

    ecg, run = tmp_path / "ecg", tmp_path / "run"
    write_sample_ecg(ecg / "ward_a", n_records=1, duration_s=20.0)
    write_sample_ecg(ecg / "ward_b", n_records=1, duration_s=20.0, seed=3)
    assert run_signals(ecg, run, workers=0)["records"] == 2
    real = os.scandir

    def denied(path: object = ".") -> object:
        if isinstance(path, (str, Path)) and Path(path) == ecg / "ward_b":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", denied)
    counts = run_signals(ecg, run, workers=0)
    monkeypatch.setattr(os, "scandir", real)
    assert counts["records"] == 1 and counts["quarantined"] == 1
    assert (run / "windows" / "ward_b").is_dir()
    assert run_signals(ecg, run, workers=0)["resumed"] == 2
