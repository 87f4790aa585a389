"""Crafted bad inputs: each is quarantined with a reason naming file, problem and fix; the batch goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals

_X = (np.sin(np.arange(5000) / 8.0) * 400).astype("<i2")


def _wfdb(d: Path, name: str, first: str, data: np.ndarray | None = _X, fmt: str = "16") -> None:
    (d / f"{name}.hea").write_text(f"{first}\n{name}.dat {fmt} 200/mV 16 0 0 0 0 II\n")
    if data is not None:
        data.tofile(d / f"{name}.dat")


def _truncated_edf(path: Path) -> None:
    import pyedflib

    fs = 256
    head = pyedflib.highlevel.make_signal_header(
        "EEG", dimension="uV", sample_frequency=fs, physical_min=-200, physical_max=200
    )
    pyedflib.highlevel.write_edf(str(path), [100 * np.sin(np.arange(fs * 10) / 5.0)], [head])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, Path]:
    d = tmp_path_factory.mktemp("bad_in")
    _wfdb(d, "good", "good 1 250 5000")
    _wfdb(d, "nodat", "nodat 1 250 5000", data=None)
    _X.tofile(d / "nohea.dat")
    _wfdb(d, "trunc", "trunc 1 250 5000", _X[:3000])
    _wfdb(d, "count", "count 1 250 2000")  # header says 2000 samples, file holds 5000
    _wfdb(d, "fmt", "fmt 1 250 5000", fmt="999")
    _wfdb(d, "zero", "zero 1 250 0", _X[:0])
    _wfdb(d, "fs0", "fs0 1 0 5000")
    _wfdb(d, "allnan", "allnan 1 250 5000", np.full(5000, -32768, dtype="<i2"))  # WFDB's invalid-sample code
    gappy = _X.copy()
    gappy[1000:2000] = -32768  # a NaN run: kept as a gap, not an error
    _wfdb(d, "gappy", "gappy 1 250 5000", gappy)
    (d / "broken.hea").write_text("this is not a header\n")
    (d / "backwards.csv").write_text("time,HR\n2020-01-01 10:00:10,80\n2020-01-01 10:00:05,81\n")
    (d / "notime.csv").write_text("a,b\n1,2\n")
    (d / "vitals.csv").write_text("time,HR\n2020-01-01 10:00:00,80\n2020-01-01 10:00:05,81\n")
    (d / "empty.edf").write_bytes(b"")
    _truncated_edf(d / "trunc.edf")
    (d / "notes.txt").write_text("not a signal")
    out = tmp_path_factory.mktemp("bad_out")
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"t" * 32))
    return d, pd.read_parquet(out / "manifest_signals.parquet").set_index("path"), out


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("nodat.hea", "MissingSignalFileError", "nodat.dat is missing"),
        ("nohea.dat", "MissingHeaderError", "no WFDB header"),
        ("trunc.hea", "TruncatedSignalError", "3000 samples"),
        ("count.hea", "SampleCountMismatchError", "holds 5000 samples but the header declares 2000"),
        ("fmt.hea", "UnknownFormatError", "'999'"),
        ("zero.hea", "EmptyRecordError", "0 samples"),
        ("fs0.hea", "InvalidSamplingRateError", "sampling frequency is 0"),
        ("allnan.hea", "EmptyRecordError", "missing (NaN)"),
        ("broken.hea", "HeaderError", "unreadable WFDB header"),
        ("backwards.csv", "NonMonotonicTimeError", "backwards at line 3"),
        ("notime.csv", "NotASignalError", "no timestamp column"),
        ("empty.edf", "HeaderError", "not a readable EDF"),
        ("trunc.edf", "TruncatedSignalError", "shorter than its header declares"),
        ("notes.txt", "NotASignalError", "not a signal format"),
    ],
)
def test_bad_input_is_quarantined_with_reason(
    bad_run: tuple[Path, pd.DataFrame, Path], path: str, error: str, words: str
) -> None:
    _, manifest, _ = bad_run
    row = manifest.loc[path]
    assert row["status"] == "quarantined"
    reason = row["reason"]
    assert reason.startswith(f"{error}: {path}"), reason
    assert words in reason and "Fix: " in reason


def test_batch_goes_on_and_every_file_once(bad_run: tuple[Path, pd.DataFrame, Path]) -> None:
    d, manifest, _ = bad_run
    files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert sorted(manifest.index) == files  # every input exactly once
    for good in ("good.hea", "gappy.hea", "vitals.csv"):
        assert manifest.loc[good, "status"] == "ingested"
    assert (
        manifest.loc["good.dat", "status"] == "companion" and "good.hea" in manifest.loc["good.dat", "reason"]
    )
    # the companion of a quarantined record is quarantined with it, naming the record
    assert (
        manifest.loc["trunc.dat", "status"] == "quarantined"
        and "trunc.hea" in manifest.loc["trunc.dat", "reason"]
    )


def test_nan_run_is_kept_as_a_gap(bad_run: tuple[Path, pd.DataFrame, Path]) -> None:
    _, _, out = bad_run
    sig = pd.read_parquet(out / "signals.parquet").set_index("record")
    assert sig.loc["gappy", "missing_fraction"] == pytest.approx(0.2)
    win = pd.read_parquet(out / "windows.parquet")
    gappy = win[win["record"] == "gappy"].sort_values("window")
    arr = np.load(out / gappy["path"].iloc[0])
    assert np.isnan(arr[0, 1000:2000]).all() and np.isfinite(arr[0, 50:950]).all()  # 250 Hz: same indices
    assert gappy["missing"].iloc[0] == pytest.approx(0.4) and gappy["quality"].iloc[0] < 0.61


def test_unexpected_error_still_gives_one_row_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medmm.signals.pipeline as pipeline

    real = pipeline.process_record

    def flaky(job, *args):  # type: ignore[no-untyped-def]
        if job.record == "boom":
            raise RuntimeError("detector exploded")
        return real(job, *args)

    monkeypatch.setattr(pipeline, "process_record", flaky)
    _wfdb(tmp_path, "boom", "boom 1 250 5000")
    _wfdb(tmp_path, "fine", "fine 1 250 5000")
    out = tmp_path.with_name(tmp_path.name + "-out")  # a run directory outside the input folder
    run_signals(tmp_path, out, workers=0, pseudonymizer=Pseudonymizer(b"t" * 32))
    man = pd.read_parquet(out / "manifest_signals.parquet").set_index("path")
    assert man.loc["boom.hea", "reason"].startswith("RuntimeError: boom.hea: unexpected error")
    assert man.loc["boom.dat", "status"] == "quarantined" and man.loc["fine.hea", "status"] == "ingested"


def test_duplicate_channel_labels_get_distinct_arrays(tmp_path: Path) -> None:
    (tmp_path / "dup.hea").write_text(
        "dup 2 250 5000\ndup.dat 16 200/mV 16 0 0 0 0 ECG\ndup.dat 16 200/mV 16 0 0 0 0 ECG\n"
    )
    np.stack([_X, -_X], axis=1).astype("<i2").tofile(tmp_path / "dup.dat")
    out = tmp_path.with_name(tmp_path.name + "-out")  # a run directory outside the input folder
    run_signals(tmp_path, out, workers=0, pseudonymizer=Pseudonymizer(b"t" * 32))
    sig = pd.read_parquet(out / "signals.parquet")
    assert sig["channel"].tolist() == ["ECG", "ECG_2"]
    win = pd.read_parquet(out / "windows.parquet")
    a, b = (np.load(out / p) for p in sorted(win["path"].unique()))
    assert np.allclose(a, -b)
