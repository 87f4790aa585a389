"""Beat templates, beat table, HRV summary and reference matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.signals.beats import (
    BEAT_COLUMNS,
    TEMPLATE_FS,
    beat_table,
    beat_templates,
    detect_rpeaks,
    hrv_summary,
    match_reference,
    median_beat,
    nn_mask,
    simulate_ecg,
    template_center,
    template_times,
)

# --- match_reference ------------------------------------------------------------------------------


def test_match_counts_hand_made() -> None:
    fs = 100.0
    ref = np.array([100, 200, 300, 400])
    det = np.array([102, 195, 210, 460, 900])  # 210: second detection near 200; 460 > 15 samples off 400
    r = match_reference(det, ref, fs, tol_s=0.15)
    assert (r.tp, r.fp, r.fn) == (2, 3, 2)
    assert r.pairs.tolist() == [[0, 0], [1, 1]]  # 195 is closer to 200 than 210
    assert r.unmatched_detections.tolist() == [2, 3, 4]
    assert r.unmatched_references.tolist() == [2, 3]
    assert r.sensitivity == pytest.approx(0.5) and r.positive_predictivity == pytest.approx(0.4)


def test_match_tolerance_is_inclusive_and_one_to_one() -> None:
    r = match_reference(np.array([115]), np.array([100, 130]), 100.0, tol_s=0.15)
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)
    assert match_reference(np.array([116]), np.array([100]), 100.0, tol_s=0.15).tp == 0
    assert match_reference(np.array([115]), np.array([100]), 100.0, tol_s=0.15).tp == 1


def test_match_unsorted_and_empty() -> None:
    r = match_reference(np.array([300, 100]), np.array([101, 299]), 100.0)
    assert r.tp == 2 and sorted(map(tuple, r.pairs.tolist())) == [(0, 1), (1, 0)]
    e = match_reference(np.array([], dtype=int), np.array([5]), 100.0)
    assert (e.tp, e.fp, e.fn) == (0, 0, 1) and np.isnan(e.positive_predictivity)


@pytest.mark.shared_data
def test_match_agrees_with_wfdb_compare_annotations(shared_data: Path) -> None:
    wfdb = pytest.importorskip("wfdb")
    from wfdb import processing

    path = str(shared_data / "signals/mitdb_subset/105")
    sig = wfdb.rdrecord(path, channels=[0], sampto=360 * 600).p_signal[:, 0]
    ref = wfdb.rdann(path, "atr", sampto=360 * 600).sample
    det = detect_rpeaks(sig, 360.0)
    ours = match_reference(det, ref, 360.0, tol_s=0.15)
    theirs = processing.compare_annotations(ref, det, int(0.15 * 360))
    assert (ours.tp, ours.fp, ours.fn) == (theirs.tp, theirs.fp, theirs.fn)


# --- templates ------------------------------------------------------------------------------------


def test_template_shape_center_and_edges() -> None:
    fs = 250.0
    ecg, beats = simulate_ecg(fs, duration_s=20.0, seed=1, wander=0.0)
    peaks = np.r_[10, beats, ecg.size - 20]  # two peaks right at the edges
    tpl = beat_templates(ecg, fs, peaks)
    c = template_center()
    assert tpl.shape == (peaks.size, template_times().size) == (peaks.size, 176)
    assert np.isnan(tpl[0, : c - 10]).all() and np.isfinite(tpl[0, c:]).all()  # starts before the record
    assert np.isnan(tpl[-1, c + 20 :]).all() and np.isfinite(tpl[-1, : c + 1]).all()
    assert np.isfinite(tpl[1:-1]).all()
    assert (np.argmax(tpl[1:-1], axis=1) == c).all()  # R apex at the centre column


def test_templates_are_rate_independent() -> None:
    out = {}
    for fs in (250.0, 360.0, 1000.0):
        ecg, beats = simulate_ecg(fs, duration_s=10.0, seed=2, noise=0.0, wander=0.0, rr_jitter=0.0)
        out[fs] = beat_templates(ecg, fs, beats)[2]
    assert out[360.0].shape == out[1000.0].shape == out[250.0].shape
    assert np.max(np.abs(out[360.0] - out[250.0])) < 0.03
    assert np.max(np.abs(out[1000.0] - out[250.0])) < 0.03


def test_templates_nan_gap_and_custom_window() -> None:
    fs = 360.0
    ecg, beats = simulate_ecg(fs, duration_s=20.0, seed=3)
    ecg[beats[5] + 20 : beats[5] + 40] = np.nan
    tpl = beat_templates(ecg, fs, beats, before_s=0.1, after_s=0.2, fs_out=100.0)
    assert tpl.shape == (beats.size, 30)
    assert np.isnan(tpl[5]).any() and np.isfinite(np.delete(tpl, 5, axis=0)).all()
    assert beat_templates(ecg, fs, np.array([], dtype=int)).shape == (0, 176)
    assert TEMPLATE_FS == 250.0


def test_median_beat_ignores_incomplete_templates() -> None:
    t = np.array([[1.0, 2.0, 3.0], [1.0, 4.0, 3.0], [np.nan, 100.0, 100.0]])
    np.testing.assert_allclose(median_beat(t), [1.0, 3.0, 3.0])


# --- beat table -----------------------------------------------------------------------------------


def test_beat_table_columns_and_rhythm() -> None:
    fs = 360.0
    ecg, beats = simulate_ecg(fs, duration_s=30.0, hr_bpm=60.0, seed=4, rr_jitter=0.0)
    df = beat_table(ecg, fs, beats)
    assert list(df.columns) == BEAT_COLUMNS and len(df) == beats.size
    assert df["sample"].tolist() == beats.tolist()
    assert np.isnan(df["rr_prev_s"].iloc[0]) and np.isnan(df["rr_next_s"].iloc[-1])
    np.testing.assert_allclose(df["hr_bpm"].iloc[1:], 60.0, rtol=0.01)
    np.testing.assert_allclose(df["rr_ratio"].iloc[1:], 1.0, rtol=0.01)
    inner = df.iloc[2:-2]
    assert (inner["template_corr"] > 0.99).all() and inner["complete"].all()
    assert (inner["r_amplitude"] > 0.5).all()
    assert inner["qrs_width_s"].between(0.03, 0.1).all()


def test_beat_table_flags_a_wide_premature_beat() -> None:
    fs = 360.0
    ecg, beats = simulate_ecg(fs, duration_s=30.0, hr_bpm=60.0, seed=5, rr_jitter=0.0)
    t = np.arange(ecg.size) / fs
    k = 12  # replace beat k by a wide, inverted, premature beat
    pvc = beats[k] - int(0.3 * fs)
    ecg -= np.exp(-0.5 * ((t - beats[k] / fs) / 0.012) ** 2)
    ecg -= 1.2 * np.exp(-0.5 * ((t - pvc / fs) / 0.035) ** 2)
    peaks = beats.copy()
    peaks[k] = pvc
    df = beat_table(ecg, fs, peaks)
    others = df.drop(index=k).iloc[2:-2]
    assert df.loc[k, "rr_ratio"] < 0.8 and df.loc[k + 1, "rr_ratio"] > 1.2
    assert df.loc[k, "template_corr"] < others["template_corr"].min() - 0.2
    assert df.loc[k, "qrs_width_s"] > others["qrs_width_s"].max() * 1.5
    assert df.loc[k, "r_amplitude"] < 0 < others["r_amplitude"].min()


def test_beat_table_empty_and_unsorted() -> None:
    df = beat_table(np.zeros(1000), 360.0, np.array([], dtype=int))
    assert list(df.columns) == BEAT_COLUMNS and len(df) == 0
    with pytest.raises(ValueError, match="increasing"):
        beat_table(np.zeros(1000), 360.0, np.array([500, 100]))


@pytest.mark.shared_data
def test_beat_table_separates_pvcs_on_mitdb_116(shared_data: Path) -> None:
    wfdb = pytest.importorskip("wfdb")
    path = str(shared_data / "signals/mitdb_subset/116")
    sig = wfdb.rdrecord(path, channels=[0], sampto=360 * 900).p_signal[:, 0]
    ann = wfdb.rdann(path, "atr", sampto=360 * 900)
    df = beat_table(sig, 360.0, ann.sample)
    sym = pd.Series(ann.symbol)
    assert (sym == "V").sum() >= 20
    med = df.groupby(sym.to_numpy())[["qrs_width_s", "qrs_corr", "rr_ratio"]].median()
    assert med.loc["V", "qrs_width_s"] > 1.3 * med.loc["N", "qrs_width_s"]
    assert med.loc["V", "qrs_corr"] < 0.9 < med.loc["N", "qrs_corr"]
    assert med.loc["V", "rr_ratio"] < 0.85


# --- HRV ------------------------------------------------------------------------------------------


def _peaks(rr_s: list[float] | np.ndarray, fs: float = 1000.0) -> np.ndarray:
    return np.round(np.r_[0.0, np.cumsum(rr_s)] * fs).astype(np.int64)


def test_hrv_known_values() -> None:
    rr = np.tile([0.8, 0.9], 50)  # alternating: SDNN ~ 50 ms, RMSSD = 100 ms
    s = hrv_summary(_peaks(rr), 1000.0)
    assert s["n_beats"] == 101 and s["n_nn"] == 100
    assert s["mean_hr_bpm"] == pytest.approx(60 / 0.85)
    assert s["sdnn_ms"] == pytest.approx(np.std(rr, ddof=1) * 1000)
    assert s["rmssd_ms"] == pytest.approx(100.0)


def test_hrv_is_robust_to_ectopics_and_gaps() -> None:
    rng = np.random.default_rng(0)
    rr = 0.8 + 0.02 * rng.standard_normal(300)
    clean = hrv_summary(_peaks(rr), 1000.0)
    dirty_rr = rr.copy()
    for i in range(20, 300, 30):  # premature beat + compensatory pause
        dirty_rr[i], dirty_rr[i + 1] = 0.5, 1.1
    dirty_rr[150] = 6.0  # a recording gap
    dirty = hrv_summary(_peaks(dirty_rr), 1000.0)
    raw_rmssd = np.sqrt(np.mean(np.diff(dirty_rr) ** 2)) * 1000
    assert raw_rmssd > 5 * clean["rmssd_ms"]  # what the filter protects against
    assert dirty["rmssd_ms"] == pytest.approx(clean["rmssd_ms"], rel=0.15)
    assert dirty["sdnn_ms"] == pytest.approx(clean["sdnn_ms"], rel=0.15)
    assert dirty["n_nn"] == 300 - 21


def test_hrv_degenerate_and_mask() -> None:
    s = hrv_summary(np.array([100]), 360.0)
    assert s["n_beats"] == 1 and np.isnan(s["sdnn_ms"]) and np.isnan(s["mean_hr_bpm"])
    assert nn_mask(np.array([0.1, 3.0, np.nan])).tolist() == [False, False, False]
    with pytest.raises(ValueError):
        hrv_summary(np.array([1, 2]), 0.0)
