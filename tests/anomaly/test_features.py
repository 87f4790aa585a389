"""Beat inputs: RR context signs, per-record normalisation, window resampling (synthetic truth)."""

from __future__ import annotations

import numpy as np
import pytest

from medmm.anomaly.features import (
    WindowSpec,
    bandpass,
    beat_inputs,
    beat_quality,
    extract_windows,
    qrs_residual,
    remove_baseline,
    rr_context,
)
from medmm.anomaly.threshold import robust_z, valley_threshold


def _synthetic_ecg(fs: float = 360.0, n_beats: int = 60, pvc_at: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian 'QRS' every 0.8 s; one wide, inverted, premature beat with a compensatory pause."""
    rr = np.full(n_beats, 0.8)
    rr[pvc_at] = 0.5  # early
    rr[pvc_at + 1] = 1.1  # pause
    peaks = (np.cumsum(rr) * fs).astype(int)
    t = np.arange(peaks[-1] + int(fs)) / fs
    sig = np.zeros_like(t)
    for i, p in enumerate(peaks):
        width, amp = (0.03, -1.5) if i == pvc_at else (0.01, 1.0)
        sig += amp * np.exp(-0.5 * ((t - p / fs) / width) ** 2)
    return sig, peaks


def test_rr_context_marks_premature_beat_with_pause() -> None:
    _, peaks = _synthetic_ecg()
    ctx = rr_context(peaks, 360.0)
    assert ctx[30, 0] < -0.3  # rr_prev much shorter than local
    assert ctx[30, 1] > 0.2  # compensatory pause
    assert np.argmax(ctx[:, 2]) == 30  # the RR-ratio baseline peaks there
    assert np.allclose(ctx[5:25], 0.0, atol=0.01)


def test_beat_inputs_residual_isolates_abnormal_beat() -> None:
    sig, peaks = _synthetic_ecg()
    bi = beat_inputs(sig, 360.0, peaks)
    energy = (bi.waves[:, 1] ** 2).mean(axis=1)
    assert int(np.argmax(energy)) == 30
    assert energy[30] > 50 * np.median(energy)
    # amplitude normalisation: scaling the record does not change the inputs
    bi2 = beat_inputs(sig * 7.0, 360.0, peaks)
    np.testing.assert_allclose(bi2.waves, bi.waves, atol=1e-4)


def test_beat_inputs_rate_independent_grid() -> None:
    sig, peaks = _synthetic_ecg(fs=360.0)
    sig250, peaks250 = _synthetic_ecg(fs=250.0)
    a, b = beat_inputs(sig, 360.0, peaks), beat_inputs(sig250, 250.0, peaks250)
    assert a.waves.shape == b.waves.shape
    assert np.corrcoef(a.waves[10, 0], b.waves[10, 0])[0, 1] > 0.98


def test_unsorted_samples_rejected() -> None:
    with pytest.raises(ValueError, match="sorted"):
        beat_inputs(np.zeros(1000), 100.0, np.array([500, 100]))


def test_extract_windows_pads_at_edges() -> None:
    w = extract_windows(
        np.arange(100.0), 100.0, np.array([0, 99]), WindowSpec(pre_s=0.1, post_s=0.1, n_points=8)
    )
    assert w[0, 0] == 0.0 and w[1, -1] == 99.0


def test_robust_z_floor_and_valley_fallback() -> None:
    assert np.all(np.isfinite(robust_z(np.ones(10), floor=0.01)))
    assert valley_threshold(np.abs(np.random.default_rng(0).normal(size=5000)), fallback=9.0) == 9.0


def test_beat_quality_marks_noise_burst_and_flat_lead_not_an_ectopic_qrs() -> None:
    sig, peaks = _synthetic_ecg()
    rng = np.random.default_rng(0)
    sig = sig + rng.normal(0, 0.005, sig.size)  # a realistic small noise floor
    noisy = sig.copy()
    a = peaks[10] - 100
    noisy[a : a + 200] += rng.normal(0, 0.2, 200)  # muscle-noise burst around beat 10
    noisy[peaks[20] - 30 : peaks[20] + 30] = 0.0  # drop-out: no QRS at beat 20
    q = beat_quality(noisy, 360.0, peaks)
    assert q.shape == (len(peaks), 4)
    assert np.all(q[:, 2] == 0.0)  # no raw lead given: nothing counts as clipped
    assert q[10, 0] > 3.0 and np.median(q[:, 0]) == pytest.approx(1.0)
    assert q[20, 1] < 0.3 and q[5, 1] == pytest.approx(1.0, abs=0.05)
    # the wide ectopic beat is not "noise": its QRS is excluded from the noise measure
    clean = beat_quality(sig, 360.0, peaks)
    assert clean[30, 0] < 2.0 and clean[30, 1] > 1.0
    # beat_inputs carries it; hand-built inputs default to "clean"
    assert beat_inputs(noisy, 360.0, peaks).quality[10, 0] > 3.0
    from medmm.anomaly.features import BeatInputs

    bi = BeatInputs(np.zeros((4, 2, 8), "f4"), np.zeros((4, 3), "f4"), np.zeros(4, np.int64))
    assert np.array_equal(bi.quality, np.tile(np.array([1.0, 1.0, 0.0, 1.0], "f4"), (4, 1)))


def test_saturated_fraction_marks_clipped_lead_only() -> None:
    sig, peaks = _synthetic_ecg()
    sig = sig + np.random.default_rng(0).normal(0, 0.005, sig.size)
    clipped = sig.copy()
    clipped[peaks[12] - 200 : peaks[12] + 200] = sig.min() - 1.0  # amplifier at its rail for ~1.1 s
    filt = bandpass(clipped, 360.0)
    q = beat_quality(filt, 360.0, peaks, raw=clipped)
    assert q[12, 2] > 0.5
    assert np.all(np.delete(q[:, 2], [11, 12, 13]) == 0.0)  # a single extreme sample is no clipping
    assert beat_quality(bandpass(sig, 360.0), 360.0, peaks, raw=sig)[:, 2].max() == 0.0
    assert beat_inputs(clipped, 360.0, peaks).quality[12, 2] > 0.5


def test_remove_baseline_keeps_qrs_and_removes_wander_step() -> None:
    sig, peaks = _synthetic_ecg()
    t = np.arange(sig.size) / 360.0
    wander = 0.8 * np.sin(2 * np.pi * 0.3 * t) + np.where(t > 10.1, 1.5, 0.0)  # wander + a step
    out = remove_baseline(sig + wander, 360.0)
    away = np.ones(sig.size, bool)
    for p in peaks:
        away[max(p - 72, 0) : p + 72] = False
    away[np.abs(t - 10.1) < 0.03] = False  # the step itself is smeared over one decimated sample
    assert np.abs(out[away]).max() < 0.25  # the wander and the step are gone between beats
    assert np.abs(out[peaks] - sig[peaks]).max() < 0.25  # the R peaks are kept
    assert np.array_equal(remove_baseline(sig, 360.0, ()), sig)


def test_qrs_residual_separates_ectopic_qrs_from_premature_normal_qrs() -> None:
    from medmm.anomaly.score import qrs_gate

    fs, n = 360.0, 60
    rr = np.full(n, 0.8)
    rr[15], rr[16] = 0.55, 0.9  # atrial premature beat: early, normal QRS, non-compensatory pause
    rr[30], rr[31] = 0.5, 1.1  # PVC: early, wide inverted QRS, compensatory pause
    peaks = (np.cumsum(rr) * fs).astype(int)
    t = np.arange(peaks[-1] + int(fs)) / fs
    rng = np.random.default_rng(0)
    sig = rng.normal(0, 0.01, t.size)
    for i, p in enumerate(peaks):
        jitter = rng.integers(-3, 4) / fs  # R-peak fiducial jitter must not look like a shape change
        width, amp = (0.03, -1.5) if i == 30 else (0.01, 1.0 + 0.05 * rng.normal())
        amp = 1.0 if i == 15 else amp  # the premature beat's QRS is the typical one
        sig += amp * np.exp(-0.5 * ((t - p / fs - jitter) / width) ** 2)
    res = qrs_residual(sig, fs, peaks)
    assert int(np.argmax(res)) == 30 and res[30] > 1.0
    assert res[15] <= np.median(res)
    gate = qrs_gate(res, 1.0)  # timing evidence counts only with an abnormal QRS
    assert gate[30] == 1.0 and gate[15] == 0.0


def test_noise_ratio_ignores_neighbouring_beats_qrs() -> None:
    fs = 360.0
    rr = np.full(60, 0.8)
    rr[25:35] = 0.35  # a fast run: the neighbours' QRS fall inside each beat's +-0.45 s window
    peaks = (np.cumsum(rr) * fs).astype(int)
    t = np.arange(peaks[-1] + int(fs)) / fs
    sig = np.random.default_rng(0).normal(0, 0.002, t.size)
    for p in peaks:
        sig += np.exp(-0.5 * ((t - p / fs) / 0.02) ** 2)
    q = beat_quality(bandpass(sig, fs), fs, peaks)
    # excluding only the beat's own QRS gave 1.8-2.5 here (counted as noise at noise_ratio 1.5)
    assert q[25:35, 0].max() < 1.5
    assert np.median(q[:, 0]) == pytest.approx(1.0)
