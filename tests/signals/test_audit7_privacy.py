"""Session 7 audit: patient identity in inputs never reaches the signals stage's outputs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals


def _all_output_text(out: Path) -> str:
    """Every table of the run as text, plus run.json (what a user would hand on)."""
    parts = [(out / "run.json").read_text()]
    for f in sorted(out.glob("*.parquet")):
        parts.append(pd.read_parquet(f).to_csv())
    return "\n".join(parts)


def test_csv_identifier_columns_are_not_vitals(tmp_path: Path) -> None:
    # a MIMIC-style wide chart export: the stay/admission ids and the MRN are numbers
    d = tmp_path / "in"
    d.mkdir()
    (d / "chart.csv").write_text(
        "charttime,subject_id,hadm_id,stay_id,MRN,Age (y),HR [bpm],SpO2 (%)\n"
        "2180-07-23 10:00:00,10001,20002,30003,4711234,81,80,97\n"
        "2180-07-23 10:01:00,10001,20002,30003,4711234,81,82,96\n"
    )
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"p" * 32))
    vit = pd.read_parquet(out / "vitals.parquet")
    assert sorted(vit["channel"].unique()) == ["HR", "SpO2"]
    text = _all_output_text(out)
    for raw in ("20002", "30003", "4711234", "10001"):
        assert raw not in text


def _edf_with_identity(path: Path) -> None:
    import pyedflib

    fs = 256
    t = np.arange(60 * fs) / fs
    ecg = sum(np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in np.arange(0.4, 60, 0.8))
    f = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    f.setSignalHeaders(
        [
            dict(
                label="ECG II",
                dimension="mV",
                sample_frequency=fs,
                physical_min=-5,
                physical_max=5,
                digital_min=-32768,
                digital_max=32767,
            )
        ]
    )
    f.setPatientName("Mueller_Juergen")
    f.setPatientCode("MRN-4711")
    f.setBirthdate("04.03.1909")
    f.setStartdatetime(datetime(2020, 3, 4, 10, 0, 0))
    f.writeSamples([ecg])
    f.writeAnnotation(10.0, -1, "Patient Jürgen Müller moved")
    f.writeAnnotation(20.0, -1, "MUELLER asked for water")  # EDF+ labels: <= 40 characters here
    f.writeAnnotation(25.0, -1, "id MRN-4711, born 04.03.1909")
    f.writeAnnotation(30.0, -1, "Lights off")
    f.close()


def test_edf_annotations_lose_the_header_identity(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    _edf_with_identity(d / "night.edf")
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"p" * 32))
    ev = pd.read_parquet(out / "events.parquet").sort_values("onset_s")
    assert ev["label"].tolist() == [
        "Patient [redacted] [redacted] moved",
        "[redacted] asked for water",
        "id [redacted], born [redacted]",
        "Lights off",
    ]
    text = _all_output_text(out).lower()
    for raw in ("müller", "mueller", "jürgen", "juergen", "4711", "1909"):
        assert raw not in text


def test_real_edf_annotations_unchanged(shared_data: Path, tmp_path: Path) -> None:
    from medmm.signals.readers import read_edf

    rec = read_edf(shared_data / "signals/wfdb_sample_data", "test_edfann.edf")
    labels = {e.label for e in rec.events}
    assert "Sleep stage W" in labels and not any("[redacted]" in x for x in labels)
