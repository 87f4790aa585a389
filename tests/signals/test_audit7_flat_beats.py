"""Session 7 audit: no beats are reported on flat lines (lead off, disconnected or railed input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.pipeline import run_signals
from medmm.signals.process import Settings

FS = 360


def _ecg(seconds: int) -> np.ndarray:
    t = np.arange(seconds * FS) / FS
    beats = np.arange(0.4, seconds, 0.8)
    x = np.zeros_like(t)
    for b in beats:
        i = int(b * FS)
        a, z = max(0, i - 20), min(t.size, i + 20)
        x[a:z] += np.exp(-0.5 * ((t[a:z] - b) / 0.012) ** 2)
    rng = np.random.default_rng(0)
    return x + 0.01 * rng.standard_normal(t.size)


def _record(d: Path, seconds: int) -> None:
    import wfdb

    good = _ecg(seconds)
    flat = np.full(good.size, 0.5)  # a lead that is off the whole time
    gap = good.copy()
    gap[30 * FS : 50 * FS] = gap[30 * FS]  # 20 s lead-off in the middle
    wfdb.wrsamp(
        "flat",
        fs=FS,
        units=["mV"] * 3,
        sig_name=["II", "V1", "V5"],
        p_signal=np.column_stack([good, flat, gap]),
        fmt=["16"] * 3,
        adc_gain=[200.0] * 3,
        baseline=[0] * 3,
        write_dir=str(d),
    )


@pytest.mark.parametrize(("seconds", "settings"), [(90, Settings()), (200, Settings(chunk_s=40.0))])
def test_no_beats_on_flat_lines(tmp_path: Path, seconds: int, settings: Settings) -> None:
    d = tmp_path / "in"
    d.mkdir()
    _record(d, seconds)
    out = tmp_path / "out"
    run_signals(d, out, settings=settings, workers=0, pseudonymizer=Pseudonymizer(b"f" * 32))
    sig = pd.read_parquet(out / "signals.parquet").set_index("channel")
    beats = pd.read_parquet(out / "beats.parquet")
    expected = len(np.arange(0.4, seconds, 0.8))
    assert abs(int(sig.loc["II", "n_beats"]) - expected) <= 1
    assert sig.loc["V1", "flat_fraction"] == 1.0
    assert int(sig.loc["V1", "n_beats"]) == 0  # was 146 beats "at 135 bpm" on a constant line
    v5 = beats[beats["channel"] == "V5"]["time_s"].to_numpy()
    inside = v5[(v5 > 30.5) & (v5 < 49.5)]
    assert inside.size == 0
    assert v5.size >= expected - len(np.arange(0.4, 50, 0.8)) + len(np.arange(0.4, 30, 0.8)) - 2


def test_beat_table_from_templates_without_peaks() -> None:
    from medmm.signals.beats.features import BEAT_COLUMNS, beat_table_from_templates

    table = beat_table_from_templates(np.zeros(0, dtype=np.int64), 360.0, np.zeros((0, 176)))
    assert list(table.columns) == list(BEAT_COLUMNS) and len(table) == 0  # was: ValueError (lengths)
