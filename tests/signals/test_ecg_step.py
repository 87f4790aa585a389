"""The ECG-beats step: chunked detection equals whole-record detection; reference symbols."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmm.signals.beats import detect_rpeaks
from medmm.signals.ecg import beat_reference, detect_chunked, ecg_beats
from medmm.signals.readers import Annotations, read_wfdb


def test_chunked_detection_matches_whole_record(shared_data: Path) -> None:
    rec = read_wfdb(shared_data / "signals/mitdb_subset", "105")  # the noisiest record of the subset
    x, fs = rec.channels[0].data[: 600 * 360], rec.channels[0].fs
    whole = detect_rpeaks(x, fs)
    chunked = detect_chunked(x, fs, chunk_s=60.0, overlap_s=10.0)  # 10 seams
    assert np.all(np.diff(chunked) > 0.2 * fs)  # no beat doubled at a seam
    same = np.isin(chunked, whole).sum()
    assert same >= 0.995 * whole.size and abs(chunked.size - whole.size) <= 0.005 * whole.size


def test_reference_symbols_and_rates() -> None:
    fs = 500.0
    t = np.arange(int(12 * fs)) / fs
    beats_s = np.arange(0.5, 12, 1.0)
    ecg = sum(np.exp(-0.5 * ((t - b) / 0.01) ** 2) for b in beats_s)
    # reference annotations at a 125 Hz frame rate (WFDB multi-frequency record), one non-beat mark
    ref_samples = np.rint(beats_s * 125).astype(np.int64)
    symbols = ["N"] * len(beats_s)
    symbols[3] = "V"
    ann = Annotations("atr", 125.0, np.r_[ref_samples, 700], [*symbols, "+"], [""] * (len(beats_s) + 1))
    ref = beat_reference([ann])
    assert ref is not None and "+" not in ref.symbol
    ref.sample, ref.symbol = ref.sample[:-2], ref.symbol[:-2]  # the last two beats have no reference
    out = ecg_beats(ecg, fs, ref)
    got = out.table["ref_symbol"].tolist()
    assert len(got) == len(beats_s) and got[3] == "V" and got[:3] == ["N"] * 3 and got[-2:] == ["", ""]
    assert out.ref_extension == "atr" and out.ref_sensitivity == 1.0
    assert out.ref_ppv is not None and abs(out.ref_ppv - 10 / 12) < 1e-9
    assert np.allclose(out.table["sample"] / fs, beats_s, atol=0.004)  # native 500 Hz indices
