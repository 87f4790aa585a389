"""Session 7 audit: RR intervals never span a stretch without signal (gap between segments, lead off)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals
from medmm.signals.process import Settings

FS = 250


def _record(d: Path, seconds: int) -> None:
    t = np.arange(seconds * FS) / FS
    x = np.zeros_like(t)
    for b in np.arange(0.4, seconds, 0.8):
        x += np.exp(-0.5 * ((t - b) / 0.012) ** 2)
    digital = np.round(x * 200).astype("<i2")
    digital[40 * FS : 60 * FS] = -32768  # 20 s without signal (WFDB's invalid-sample code: NaN)
    digital[int(20.0 * FS)] = -32768  # one invalid sample: the interval around it is still measured
    d.mkdir()
    digital.tofile(d / "gap.dat")
    (d / "gap.hea").write_text(f"gap 1 {FS} {t.size}\ngap.dat 16 200/mV 16 0 0 0 0 II\n")


@pytest.mark.parametrize(("seconds", "settings"), [(90, Settings()), (200, Settings(chunk_s=30.0))])
def test_rr_across_a_gap_is_nan(tmp_path: Path, seconds: int, settings: Settings) -> None:
    _record(tmp_path / "in", seconds)
    out = tmp_path / "out"
    run_signals(tmp_path / "in", out, settings=settings, workers=0, pseudonymizer=Pseudonymizer(b"r" * 32))
    beats = pd.read_parquet(out / "beats.parquet")
    feats = pd.read_parquet(out / "features.parquet")
    after = beats[beats["time_s"] > 60].iloc[0]
    before = beats[beats["time_s"] < 40].iloc[-1]
    # was: rr_prev_s 20.8 s, hr_bpm 2.9 (a "pause" that is missing data)
    assert np.isnan(after["rr_prev_s"]) and np.isnan(after["hr_bpm"]) and np.isnan(before["rr_next_s"])
    assert np.isnan(feats.loc[feats["sample"] == after["sample"], "rr_ratio"]).all()
    rr = beats["rr_prev_s"].dropna()
    assert rr.between(0.79, 0.81).all() and len(rr) == len(beats) - 2  # the single invalid sample breaks none
