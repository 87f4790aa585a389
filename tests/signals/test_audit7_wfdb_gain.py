"""Session 7 audit: WFDB signals with ADC gain 0 or no gain are uncalibrated, never "mV"; a signal line
without a description (optional in WFDB) is read, not an "unexpected error"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals
from medmm.signals.process import Settings

FS = 250


def _write(d: Path, seconds: int) -> None:
    t = np.arange(seconds * FS) / FS
    x = np.zeros_like(t)
    for b in np.arange(0.4, seconds, 0.8):
        x += np.exp(-0.5 * ((t - b) / 0.012) ** 2)
    digital = np.round(x * 200).astype("<i2")
    np.column_stack([digital, digital, digital]).tofile(d / "g.dat")
    (d / "g.hea").write_text(
        f"g 3 {FS} {t.size}\n"
        "g.dat 16 0 16 0 0 0 0 II\n"  # gain 0: uncalibrated (WFDB), wfdb-python assumes 200
        "g.dat 16 200/mV 16 0 0 0 0 V\n"
        "g.dat 16\n"  # no gain field at all: uncalibrated too
        "# comment: Jürgen\n".encode("latin-1").decode("latin-1")
    )


@pytest.mark.parametrize(("seconds", "settings"), [(60, Settings()), (150, Settings(chunk_s=30.0))])
def test_gain_zero_is_uncalibrated(tmp_path: Path, seconds: int, settings: Settings) -> None:
    d = tmp_path / "in"
    d.mkdir()
    _write(d, seconds)
    out = tmp_path / "out"
    run_signals(d, out, settings=settings, workers=0, pseudonymizer=Pseudonymizer(b"g" * 32))
    sig = pd.read_parquet(out / "signals.parquet")
    assert sig["units"].tolist() == ["uncalibrated", "mV", "uncalibrated"]  # was: mV, mV, mV
    assert sig["channel"].tolist() == ["II", "V", "signal2"]  # no description: was a TypeError
    assert (sig["n_beats"][:2] > 0).all()  # beats are still detected on an uncalibrated lead
