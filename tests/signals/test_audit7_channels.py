"""Session 7 audit: ECG leads and sensors labelled in other languages or monitor styles are recognised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.channels import normalize_channel
from medmm.signals.pipeline import run_signals


@pytest.mark.parametrize(
    ("label", "name", "kind"),
    [
        ("ECG II", "II", "ecg"),  # GE / Philips exports (was: 'ECGII', not one name with 'II')
        ("EKG V1", "V1", "ecg"),
        ("aVF-ECG", "aVF", "ecg"),
        ("ECG Lead 2", "II", "ecg"),
        ("Lead 2", "II", "ecg"),  # was: kind 'other' -> no beat detection
        ("Ableitung II", "II", "ecg"),  # German
        ("Dérivation aVL", "aVL", "ecg"),  # French
        ("DII", "II", "ecg"),  # Spanish / Portuguese / Italian notation
        ("SpO₂", "SpO2", "vital"),  # Unicode subscript
        ("ART1", "ABP1", "pressure"),  # numbered transducers: pressure quality band, not 'other'
        ("PLETH2", "PLETH2", "pleth"),
        ("NIBP sys", "NBPSys", "vital"),
        ("Herzfrequenz", "HR", "vital"),
        ("ECG 2", "ECG2", "ecg"),  # a channel number, not lead II
    ],
)
def test_labels(label: str, name: str, kind: str) -> None:
    got = normalize_channel(label)
    assert (got.name, got.kind) == (name, kind)


def test_localized_leads_get_beats(tmp_path: Path) -> None:
    import wfdb

    fs, seconds = 250, 30
    t = np.arange(fs * seconds) / fs
    x = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in np.arange(0.4, seconds, 0.8))
    d = tmp_path / "in"
    d.mkdir()
    wfdb.wrsamp(
        "loc",
        fs=fs,
        units=["mV"] * 3,
        sig_name=["Ableitung II", "Lead 2", "DII"],
        p_signal=np.column_stack([x, x, x]),
        fmt=["16"] * 3,
        adc_gain=[200.0] * 3,
        baseline=[0] * 3,
        write_dir=str(d),
    )
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"c" * 32))
    sig = pd.read_parquet(out / "signals.parquet")
    assert sig["kind"].tolist() == ["ecg"] * 3
    assert sig["channel"].tolist() == ["II", "II_2", "II_3"]
    assert (sig["n_beats"] >= 36).all()
