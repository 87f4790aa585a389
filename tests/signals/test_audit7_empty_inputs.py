"""Session 7 audit: empty tables and EDF files with 0 / -1 data records get a precise reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals


def _edf_declaring(path: Path, n_records: int) -> None:
    import pyedflib

    head = pyedflib.highlevel.make_signal_header(
        "ECG", dimension="mV", sample_frequency=256, physical_min=-5, physical_max=5
    )
    pyedflib.highlevel.write_edf(str(path), [np.sin(np.arange(256 * 2) / 5.0)], [head])
    data = bytearray(path.read_bytes())
    data[236:244] = f"{n_records:<8d}".encode()
    path.write_bytes(bytes(data[: 256 * 2]) if n_records == 0 else bytes(data))


@pytest.fixture(scope="module")
def reasons(tmp_path_factory: pytest.TempPathFactory) -> pd.Series:
    d = tmp_path_factory.mktemp("empty_in")
    (d / "header_only.csv").write_text("time,HR\n")
    (d / "no_values.csv").write_text("time,HR\n2020-03-04 10:00,\n2020-03-04 10:01,\n")
    (d / "zero_bytes.csv").write_bytes(b"")
    _edf_declaring(d / "zero.edf", 0)
    _edf_declaring(d / "open.edf", -1)
    out = tmp_path_factory.mktemp("empty_out")
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"e" * 32))
    m = pd.read_parquet(out / "manifest_signals.parquet").set_index("path")
    return m["reason"].fillna("") + " | " + m["status"]


def test_header_only_table(reasons: pd.Series) -> None:
    # was: "KeyError: ... unexpected error while processing (0)" (before this session: "no parseable times")
    assert reasons["header_only.csv"].startswith("EmptyRecordError: header_only.csv: the table has a header")


def test_table_without_values(reasons: pd.Series) -> None:
    # was: ingested, with an HR series of 0 values
    assert reasons["no_values.csv"].endswith("| quarantined")
    assert reasons["no_values.csv"].startswith("EmptyRecordError: no_values.csv: every value column is empty")


def test_zero_byte_table(reasons: pd.Series) -> None:
    assert reasons["zero_bytes.csv"].startswith("EmptyRecordError: zero_bytes.csv: the file is empty")


def test_edf_with_zero_or_unfinished_record_count(reasons: pd.Series) -> None:
    # both were "TruncatedSignalError: EDF data shorter than its header declares ... re-copy the
    # complete file"
    assert reasons["zero.edf"].startswith(
        "EmptyRecordError: zero.edf: the EDF header declares 0 data records"
    )
    assert "recorder never finished writing the file" in reasons["open.edf"]
