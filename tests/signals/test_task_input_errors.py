"""A bad input is returned by the signals task, not raised (Dask retried it, logging tracebacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.errors import ConfigError, InputError
from medmm.pseudonym import Pseudonymizer
from medmm.signals.discover import RecordJob
from medmm.signals.pipeline import process_resumable, run_signals
from medmm.signals.process import Settings
from medmm.tables import read_table


def test_bad_table_is_returned_not_raised(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text("foo,bar\n1,2\n")
    job = RecordJob(record="v", kind="table", main="v.csv")
    res = process_resumable(job, str(tmp_path), Settings(), Pseudonymizer(b"k" * 32), str(tmp_path / "run"))
    assert isinstance(res, InputError)
    assert "v.csv" in str(res) and "time" in str(res)


def test_bad_inputs_quarantined_once_each(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "v.csv").write_text("foo,bar\n1,2\n")
    (root / "b.csv").write_bytes(b"\xff\xfe\x00bad")
    counts = run_signals(root, tmp_path / "run", workers=0, pseudonymizer=Pseudonymizer(b"k" * 32))
    m = read_table(tmp_path / "run" / "manifest_signals.parquet")
    assert sorted(m["path"]) == ["b.csv", "v.csv"]
    assert set(m["status"]) == {"quarantined"} and counts["quarantined"] == 2
    assert all(r.startswith(("NotASignalError", "HeaderError")) for r in m["reason"])


def test_missing_input_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="existing folder"):
        run_signals(tmp_path / "gone", tmp_path / "run", workers=0, pseudonymizer=Pseudonymizer(b"k" * 32))
    assert not (tmp_path / "run" / "manifest_signals.parquet").exists()


def test_placeholders_in_a_vitals_column_are_missing_values(tmp_path: Path) -> None:
    from medmm.signals.readers.tabular import read_tabular

    (tmp_path / "v.csv").write_text("time,HR [bpm],SpO2 (%),note\n0,70,98,awake\n1,--,97,awake\n2,72,n/a,x\n")
    rec = read_tabular(tmp_path, "v.csv")  # HR and SpO2 were dropped whole (read as text columns)
    got = {s.source_name: (s.t_s.tolist(), s.values.tolist()) for s in rec.series}
    assert got == {"HR": ([0.0, 2.0], [70.0, 72.0]), "SpO2": ([0.0, 1.0], [98.0, 97.0])}


def test_european_locale_vitals_csv(tmp_path: Path) -> None:
    from medmm.signals.readers.tabular import read_tabular

    (tmp_path / "v.csv").write_text("time;Temp [C];HR [bpm]\n0;36,6;70\n60;36,8;--\n")  # was one text column
    rec = read_tabular(tmp_path, "v.csv")
    got = {s.source_name: s.values.tolist() for s in rec.series}
    assert got == {"Temp": [36.6, 36.8], "HR": [70.0]}
