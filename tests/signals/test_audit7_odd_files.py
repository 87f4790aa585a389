"""Session 7 audit: files from Windows / other-locale exports get the right reason, or are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    d = tmp_path_factory.mktemp("odd_in")
    x = (np.sin(np.arange(5000) / 8.0) * 400).astype("<i2")
    (d / "UP.HEA").write_text("UP 1 250 5000\nUP.DAT 16 200/mV 16 0 0 0 0 II\n")
    x.tofile(d / "UP.DAT")
    (d / "broken.hea").write_text("this is not a header\n")
    x.tofile(d / "broken.dat")
    (d / "latin.csv").write_bytes(
        "time,Temp [°C]\n2020-03-04 10:00,36.6\n2020-03-04 10:01,36.7\n".encode("cp1252")
    )
    (d / "tabs.tsv").write_text("time\tHR [bpm]\n2020-03-04 10:00\t80\n2020-03-04 10:01\t81\n")
    out = tmp_path_factory.mktemp("odd_out")
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"o" * 32))
    return pd.read_parquet(out / "manifest_signals.parquet").set_index("path"), out


def test_upper_case_header_extension(run: tuple[pd.DataFrame, Path]) -> None:
    m, _ = run
    # was: "header not found (/abs/path/UP.hea). Fix: restore the .hea file";
    # and UP.DAT: "no header names this file"
    assert m.loc["UP.HEA", "reason"] == (
        "HeaderError: UP.HEA: WFDB reads headers only with a lower-case .hea extension, not .HEA. "
        "Fix: rename it to UP.hea"
    )
    assert m.loc["UP.DAT", "reason"].startswith("part of UP.HEA, which is quarantined: HeaderError")


def test_data_file_of_an_unreadable_header_is_not_an_orphan(run: tuple[pd.DataFrame, Path]) -> None:
    m, _ = run
    # was: "MissingHeaderError: broken.dat: no WFDB header (.hea) names this file.
    # Fix: copy broken.hea beside it"
    assert m.loc["broken.dat", "reason"].startswith("part of broken.hea, which is quarantined: HeaderError")
    assert m.loc["broken.dat", "status"] == "quarantined"


def test_latin1_and_tab_separated_tables(run: tuple[pd.DataFrame, Path]) -> None:
    m, out = run
    assert m.loc["latin.csv", "status"] == "ingested"  # was: UnicodeDecodeError, quarantined
    assert m.loc["tabs.tsv", "status"] == "ingested"  # was: "no timestamp column"
    sig = pd.read_parquet(out / "signals.parquet").set_index("record")
    assert sig.loc["latin", "units"] == "°C" and sig.loc["tabs", "units"] == "bpm"


def test_signal_file_name_differing_in_case(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "rec.hea").write_text("rec 1 250 5000\nREC.DAT 16 200/mV 16 0 0 0 0 II\n")
    (np.sin(np.arange(5000) / 8.0) * 400).astype("<i2").tofile(d / "rec.dat")
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"o" * 32))
    m = pd.read_parquet(out / "manifest_signals.parquet").set_index("path")
    # was: "signal file REC.DAT is missing. Fix: copy REC.DAT beside the header" (and rec.dat an orphan)
    assert (
        "rec.dat differs from it only in letter case. Fix: rename rec.dat to REC.DAT"
        in m.loc["rec.hea", "reason"]
    )


def test_corrupt_annotation_file_costs_only_itself(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "rec.hea").write_text("rec 1 250 5000\nrec.dat 16 200/mV 16 0 0 0 0 II\n")
    (np.sin(np.arange(5000) / 8.0) * 400).astype("<i2").tofile(d / "rec.dat")
    (d / "rec.atr").write_bytes(b"garbage")  # a truncated / foreign annotation file
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"o" * 32))
    m = pd.read_parquet(out / "manifest_signals.parquet").set_index("path")
    # was: the whole record quarantined: "ValueError ... unexpected error while processing (cannot reshape"
    assert m.loc["rec.hea", "status"] == "ingested" and m.loc["rec.dat", "status"] == "companion"
    assert m.loc["rec.atr", "status"] == "quarantined"
    assert m.loc["rec.atr", "reason"].startswith(
        "AnnotationFileError: rec.atr: unreadable WFDB annotation file"
    )
