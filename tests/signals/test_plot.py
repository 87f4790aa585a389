"""ECG strip plot: writes a real PNG with the requested layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medmm.signals.beats import detect_rpeaks, simulate_ecg
from medmm.signals.plot import plot_ecg_strip


def test_strip_png_with_all_layers(tmp_path: Path) -> None:
    fs = 360.0
    ecg, beats = simulate_ecg(fs, duration_s=30.0, seed=0)
    ecg[int(12 * fs) : int(13 * fs)] = np.nan
    peaks = detect_rpeaks(ecg, fs)
    out = tmp_path / "sub" / "strip.png"
    fig = plot_ecg_strip(
        ecg,
        fs,
        peaks=peaks,
        ref_peaks=beats,
        ref_symbols=["V" if i == 3 else "N" for i in range(beats.size)],
        flagged_windows=[(11.0, 14.0), (100.0, 110.0)],
        flagged_beats=peaks[2:3],
        start_s=8.0,
        duration_s=10.0,
        title="synthetic",
        out=out,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    ax = fig.axes[0]
    assert ax.get_xlim() == (8.0, 18.0) and ax.get_title() == "synthetic"
    texts = [t.get_text() for t in ax.texts]
    in_view = beats[(beats >= 8 * fs) & (beats < 18 * fs)]
    assert len(texts) == in_view.size and set(texts) <= {"N", "V"}
    shown = ax.lines[1].get_xdata()  # detected R markers
    assert np.all((shown >= 8.0) & (shown < 18.0)) and len(shown) > 0


def test_strip_rejects_mismatched_symbols() -> None:
    with pytest.raises(ValueError, match="ref_symbols"):
        plot_ecg_strip(np.zeros(3600), 360.0, ref_peaks=np.array([1, 2]), ref_symbols=["N"])


@pytest.mark.shared_data
def test_strip_of_mitdb_pvc_record(shared_data: Path, tmp_path: Path) -> None:
    wfdb = pytest.importorskip("wfdb")
    path = str(shared_data / "signals/mitdb_subset/116")
    sig = wfdb.rdrecord(path, channels=[0], sampto=360 * 240).p_signal[:, 0]
    ann = wfdb.rdann(path, "atr", sampto=360 * 240)
    out = tmp_path / "116.png"
    plot_ecg_strip(
        sig,
        360.0,
        peaks=detect_rpeaks(sig, 360.0),
        ref_peaks=ann.sample,
        ref_symbols=ann.symbol,
        start_s=203.7,
        duration_s=10.0,
        out=out,
    )
    assert out.stat().st_size > 20_000
