"""Session 7 audit: an EDF+ file whose date is anonymized ("Startdate X") gets no invented date."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals
from medmm.signals.readers import read_edf


def test_shared_edf_with_unknown_date(shared_data: Path) -> None:
    rec = read_edf(shared_data / "signals/wfdb_sample_data", "test_edfann.edf")  # "Startdate X X X X"
    assert not rec.start_has_date  # was: 2001-01-01 (the placeholder 01.01.01) taken as the real date


def test_pipeline_leaves_the_start_empty(tmp_path: Path) -> None:
    import pyedflib

    d = tmp_path / "in"
    d.mkdir()
    head = pyedflib.highlevel.make_signal_header(
        "ECG", dimension="mV", sample_frequency=256, physical_min=-5, physical_max=5
    )
    for name, anonymous in (("anon.edf", True), ("dated.edf", False)):
        path = d / name
        pyedflib.highlevel.write_edf(str(path), [np.sin(np.arange(256 * 30) / 5.0)], [head])
        if anonymous:  # what EDF+ anonymizers write: recording field "Startdate X ...", date 01.01.85
            data = bytearray(path.read_bytes())
            data[88:168] = b"Startdate X X X X".ljust(80)
            data[168:176] = b"01.01.85"
            path.write_bytes(bytes(data))
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"a" * 32))
    sig = pd.read_parquet(out / "signals.parquet").set_index("record")
    assert pd.isna(sig.loc["anon", "start"]) and pd.isna(sig.loc["anon", "start_abs_s"])
    assert not pd.isna(sig.loc["dated", "start"])  # a real EDF+ start date is still used
    win = pd.read_parquet(out / "windows.parquet")
    assert win[win["record"] == "anon"]["start_abs_s"].isna().all()
